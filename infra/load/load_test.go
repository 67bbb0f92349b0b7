package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	s.Sent, s.Succeeded = 9, 8

	var text bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4 (4 req/s)", "p50 2.000ms", "p99 4.000ms", "statuses 200: 4", "same machine", "9 sent, 8 succeeded"} {
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
	for k, want := range map[string]any{"requests": 4.0, "errors": 0.0, "requests_per_second": 4.0, "p50_ms": 2.0, "p99_ms": 4.0, "max_ms": 4.0, "concurrency": 4.0, "sent": 9.0, "succeeded": 8.0} {
		if got[k] != want {
			t.Errorf("json %s = %v, want %v (%s)", k, got[k], want, raw)
		}
	}
}

// The run's totals (first request, warm-up and measured requests) match what the server saw,
// failures included.
func TestRunCountsEveryRequest(t *testing.T) {
	var seen, failed, authorized atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := seen.Add(1)
		if r.Header.Get("Authorization") == "Bearer tok" && r.Header.Get("Content-Type") == "application/json" {
			authorized.Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if n > 1 && n%5 == 0 { // the first request must succeed, or the run stops at once
			failed.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()

	o := Options{URL: srv.URL, Token: "tok", Body: `{"x":1}`, Concurrency: 3, Duration: 100 * time.Millisecond,
		Warmup: 50 * time.Millisecond, Timeout: 5 * time.Second}
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(s.Sent); got != seen.Load() {
		t.Errorf("sent = %d, the server saw %d", got, seen.Load())
	}
	if got := int64(s.Sent - s.Succeeded); got != failed.Load() {
		t.Errorf("sent - succeeded = %d, the server failed %d", got, failed.Load())
	}
	if authorized.Load() != seen.Load() {
		t.Errorf("%d of %d requests carried the token and the JSON content type", authorized.Load(), seen.Load())
	}
	if s.Sent <= s.Requests {
		t.Errorf("sent %d is not more than the %d measured requests (the first request and warm-up count too)", s.Sent, s.Requests)
	}
	if s.Errors != s.Statuses["503"] || s.Requests != s.Statuses["200"]+s.Statuses["503"] {
		t.Errorf("errors %d, requests %d, statuses %v do not add up", s.Errors, s.Requests, s.Statuses)
	}
	if s.Method != http.MethodPost || s.Concurrency != 3 || s.Tokens != 1 {
		t.Errorf("method %q concurrency %d tokens %d, want POST, 3 and 1", s.Method, s.Concurrency, s.Tokens)
	}
}

func TestRunStopsWhenTheFirstRequestFails(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		seen.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	o := Options{URL: srv.URL, Concurrency: 4, Duration: time.Minute, Timeout: 5 * time.Second}
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Errorf("Run = %v, want the first request's 401", err)
	}
	if seen.Load() != 1 {
		t.Errorf("the server saw %d requests, want 1", seen.Load())
	}
}

// With a token list each worker sends its own token (worker i: Tokens[i mod n]).
func TestRunSpreadsTokens(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()

	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("t0\n\n  t1  \nt2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := ReadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tokens, []string{"t0", "t1", "t2"}) {
		t.Fatalf("readTokens = %q, want t0 t1 t2", tokens)
	}
	o := Options{URL: srv.URL, Tokens: tokens, Concurrency: 5, Duration: 50 * time.Millisecond, Timeout: 5 * time.Second}
	if err := o.Check(); err != nil {
		t.Fatal(err)
	}
	if got, want := o.authHeaders(), []string{"Bearer t0", "Bearer t1", "Bearer t2", "Bearer t0", "Bearer t1"}; !slices.Equal(got, want) {
		t.Errorf("authHeaders = %q, want %q", got, want)
	}
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for h, n := range seen {
		if h != "Bearer t0" && h != "Bearer t1" && h != "Bearer t2" {
			t.Errorf("unexpected Authorization %q (%d requests)", h, n)
		}
		total += n
	}
	if s.Tokens != 3 {
		t.Errorf("summary tokens = %d, want 3", s.Tokens)
	}
	if len(seen) != 3 || total != s.Sent {
		t.Errorf("server saw %v (%d requests), the run sent %d; want all three tokens", seen, total, s.Sent)
	}
}

func TestTokenOptions(t *testing.T) {
	o := Options{URL: "http://x", Concurrency: 1, Duration: time.Second, Timeout: time.Second, Token: "a", Tokens: []string{"b"}}
	if err := o.Check(); err == nil {
		t.Error("Check accepted a token with a token list")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokens(empty); err == nil {
		t.Error("readTokens accepted a file without tokens")
	}
	if _, err := ReadTokens(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("readTokens accepted a missing file")
	}
	single := Options{Concurrency: 2, Token: "a"}
	if got := single.authHeaders(); !slices.Equal(got, []string{"Bearer a", "Bearer a"}) {
		t.Errorf("authHeaders with a token = %q", got)
	}
	none := Options{Concurrency: 1}
	if got := none.authHeaders(); !slices.Equal(got, []string{""}) {
		t.Errorf("authHeaders without a token = %q", got)
	}
}

// A run whose context ends stops at once instead of loading until its duration is up, and
// reports that it was cut short rather than a summary of part of a run.
func TestRunStopsWhenTheContextEnds(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		seen.Add(1)
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for seen.Load() < 10 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{URL: srv.URL, Concurrency: 2, Duration: time.Hour})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run kept going after its context ended")
	}
}

func TestOptions(t *testing.T) {
	ok := Options{URL: "http://x", Concurrency: 1, Duration: time.Second}
	if err := ok.Check(); err != nil {
		t.Errorf("Check(%+v) = %v", ok, err)
	}
	if ok.method() != http.MethodGet || ok.timeout() != DefaultTimeout {
		t.Errorf("defaults: method %q timeout %v, want GET and %v", ok.method(), ok.timeout(), DefaultTimeout)
	}
	withBody := ok
	withBody.Body = "{}"
	if withBody.method() != http.MethodPost {
		t.Errorf("method with a body = %q, want POST", withBody.method())
	}
	for name, change := range map[string]func(*Options){
		"no URL":           func(o *Options) { o.URL = "" },
		"no workers":       func(o *Options) { o.Concurrency = 0 },
		"no duration":      func(o *Options) { o.Duration = 0 },
		"negative warm-up": func(o *Options) { o.Warmup = -time.Second },
		"negative timeout": func(o *Options) { o.Timeout = -time.Second },
	} {
		o := ok
		change(&o)
		if err := o.Check(); err == nil {
			t.Errorf("Check accepted options with %s", name)
		}
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run accepted options with %s", name)
		}
	}
}

// Options.Headers reach the server on every request, whatever the case of their names, beside the
// body's Content-Type; an Authorization header there excludes a token.
func TestRunSendsHeaders(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.Join([]string{r.Header.Get("X-Portkey-Provider"), r.Header.Get("x-portkey-custom-host"),
			r.Header.Get("Authorization"), r.Header.Get("Content-Type"), strings.Join(r.Header.Values("X-Multi"), "+")}, "|")
		mu.Lock()
		seen[key]++
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()

	h := http.Header{"x-portkey-provider": {"openai"}, "X-Portkey-Custom-Host": {"http://mock/v1"},
		"Authorization": {"Bearer bench"}, "X-Multi": {"a", "b"}}
	s, err := Run(context.Background(), Options{URL: srv.URL, Body: "{}", Headers: h, Concurrency: 3,
		Duration: 50 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "openai|http://mock/v1|Bearer bench|application/json|a+b"
	if len(seen) != 1 || seen[want] != s.Sent {
		t.Errorf("server saw %v, want %d requests with %q", seen, s.Sent, want)
	}

	for name, o := range map[string]Options{
		"token":      {Token: "t"},
		"token list": {Tokens: []string{"t"}},
	} {
		o.URL, o.Concurrency, o.Duration = "http://x", 1, time.Second
		o.Headers = http.Header{"authorization": {"Bearer x"}}
		if err := o.Check(); err == nil {
			t.Errorf("Check accepted an Authorization header with a %s", name)
		}
	}
	ok := Options{URL: "http://x", Concurrency: 1, Duration: time.Second, Token: "t", Headers: http.Header{"X-Other": {"1"}}}
	if err := ok.Check(); err != nil {
		t.Errorf("Check refused a token with another header: %v", err)
	}
}
