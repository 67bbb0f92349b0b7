package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond // 1ms..100ms
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value, p50", ms(7), 50, 7 * time.Millisecond},
		{"one value, p99", ms(7), 99, 7 * time.Millisecond},
		{"p0 is the minimum", ms(1, 2, 3), 0, 1 * time.Millisecond},
		{"p100 is the maximum", ms(1, 2, 3), 100, 3 * time.Millisecond},
		{"p50 of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p51 of four is the third", ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p99.9 of 1..100 rounds up to the max", hundred, 99.9, 100 * time.Millisecond},
		{"p99 of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		lat     []time.Duration
		errs    int
		elapsed time.Duration
		want    Summary
	}{
		{
			name: "nothing", elapsed: time.Second,
			want: Summary{Elapsed: time.Second},
		},
		{
			name: "unsorted input", lat: ms(5, 1, 4, 2, 3), errs: 1, elapsed: 2 * time.Second,
			want: Summary{
				Requests: 5, Errors: 1, Elapsed: 2 * time.Second, RPS: 2.5,
				Min: 1 * time.Millisecond, Mean: 3 * time.Millisecond, P50: 3 * time.Millisecond,
				P90: 5 * time.Millisecond, P99: 5 * time.Millisecond, Max: 5 * time.Millisecond,
			},
		},
		{
			name: "one slow outlier shows in p99 and max only", lat: append(ms(make([]int, 99)...), 1000*time.Millisecond),
			elapsed: 500 * time.Millisecond,
			want: Summary{
				Requests: 100, Elapsed: 500 * time.Millisecond, RPS: 200,
				Min: 0, Mean: 10 * time.Millisecond, P50: 0, P90: 0, P99: 0, Max: time.Second,
			},
		},
		{
			name: "zero elapsed has no rate", lat: ms(1), elapsed: 0,
			want: Summary{
				Requests: 1, Min: time.Millisecond, Mean: time.Millisecond, P50: time.Millisecond,
				P90: time.Millisecond, P99: time.Millisecond, Max: time.Millisecond,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(tt.lat, tt.errs, tt.elapsed)
			if got.Requests != tt.want.Requests || got.Errors != tt.want.Errors || got.Elapsed != tt.want.Elapsed ||
				got.RPS != tt.want.RPS || got.Min != tt.want.Min || got.Mean != tt.want.Mean ||
				got.P50 != tt.want.P50 || got.P90 != tt.want.P90 || got.P99 != tt.want.P99 || got.Max != tt.want.Max {
				t.Errorf("summarize = %+v\nwant        %+v", got, tt.want)
			}
		})
	}
}

func TestSummaryOutput(t *testing.T) {
	s := summarize(ms(1, 2, 3, 4), 0, time.Second)
	s.URL, s.Method, s.Concurrency, s.CPUs, s.GOMAXPROCS = "http://x/y", "POST", 4, 2, 2
	s.Statuses = map[string]int{"200": 4}

	var text bytes.Buffer
	s.writeText(&text)
	for _, want := range []string{"4 (4 req/s)", "p50 2.000ms", "p99 4.000ms", "statuses 200: 4", "same machine"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}

	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"requests": 4.0, "errors": 0.0, "requests_per_second": 4.0, "p50_ms": 2.0, "p99_ms": 4.0, "max_ms": 4.0, "concurrency": 4.0} {
		if got[k] != want {
			t.Errorf("json %s = %v, want %v (%s)", k, got[k], want, raw)
		}
	}
}
