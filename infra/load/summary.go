package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Summary is a run's outcome. Durations are in JSON as milliseconds.
type Summary struct {
	URL         string         `json:"url"`
	Method      string         `json:"method"`
	Concurrency int            `json:"concurrency"`
	Requests    int            `json:"requests"`
	Errors      int            `json:"errors"`
	Statuses    map[string]int `json:"statuses"`
	Elapsed     time.Duration  `json:"-"`
	RPS         float64        `json:"requests_per_second"`
	Min         time.Duration  `json:"-"`
	Mean        time.Duration  `json:"-"`
	P50         time.Duration  `json:"-"`
	P90         time.Duration  `json:"-"`
	P99         time.Duration  `json:"-"`
	Max         time.Duration  `json:"-"`
	CPUs        int            `json:"cpus"`
	GOMAXPROCS  int            `json:"gomaxprocs"`
	// Sent counts every request of the run (the first probe, the warm-up and the measured ones),
	// Succeeded those of them that got a 2xx: what the server should have served.
	Sent      int `json:"sent"`
	Succeeded int `json:"succeeded"`
	// Tokens is how many different bearer tokens the workers sent (0: none).
	Tokens int `json:"tokens"`
	// URLs is how many different URLs the workers sent to, with Options.URLs (URL is the
	// first); 0 when every worker sent to URL.
	URLs int `json:"urls,omitempty"`
}

// MarshalJSON writes the durations as milliseconds.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	return json.Marshal(struct {
		plain
		ElapsedS float64 `json:"elapsed_seconds"`
		MinMS    float64 `json:"min_ms"`
		MeanMS   float64 `json:"mean_ms"`
		P50MS    float64 `json:"p50_ms"`
		P90MS    float64 `json:"p90_ms"`
		P99MS    float64 `json:"p99_ms"`
		MaxMS    float64 `json:"max_ms"`
		Note     string  `json:"note"`
	}{plain(s), s.Elapsed.Seconds(), Millis(s.Min), Millis(s.Mean), Millis(s.P50), Millis(s.P90), Millis(s.P99), Millis(s.Max), s.note()})
}

// Millis is d in (fractional) milliseconds, the unit every latency is reported in.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s Summary) note() string {
	return fmt.Sprintf("the load generator runs on the same machine as the server (%d CPUs, GOMAXPROCS %d) and competes with it for them",
		s.CPUs, s.GOMAXPROCS)
}

// summarize computes throughput and latency statistics. It sorts lat in place.
func summarize(lat []time.Duration, errs int, elapsed time.Duration) Summary {
	s := Summary{Requests: len(lat), Errors: errs, Elapsed: elapsed}
	if elapsed > 0 {
		s.RPS = float64(len(lat)) / elapsed.Seconds()
	}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	s.Min, s.Max = lat[0], lat[len(lat)-1]
	s.Mean = sum / time.Duration(len(lat))
	s.P50 = percentile(lat, 50)
	s.P90 = percentile(lat, 90)
	s.P99 = percentile(lat, 99)
	return s
}

// percentile returns the nearest-rank p-th percentile of sorted: the smallest value such that
// at least p% of the values are less than or equal to it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// StatusList is the status counts as "200: 12, 503: 1", in status order.
func (s Summary) StatusList() string {
	keys := make([]string, 0, len(s.Statuses))
	for k := range s.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, s.Statuses[k])
	}
	return strings.Join(parts, ", ")
}

// WriteText writes the summary for a person to read.
func (s Summary) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s  concurrency %d  %.1fs", s.Method, s.URL, s.Concurrency, s.Elapsed.Seconds())
	if s.URLs > 1 {
		fmt.Fprintf(&b, " (and %d more URLs)", s.URLs-1)
	}
	if s.Tokens > 1 {
		fmt.Fprintf(&b, "  %d tokens", s.Tokens)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  requests   %d (%.0f req/s)\n", s.Requests, s.RPS)
	fmt.Fprintf(&b, "  errors     %d", s.Errors)
	if len(s.Statuses) > 0 {
		fmt.Fprintf(&b, "  (statuses %s)", s.StatusList())
	}
	b.WriteString("\n")
	if s.Sent > 0 {
		fmt.Fprintf(&b, "  in all     %d sent, %d succeeded (first request and warm-up included)\n", s.Sent, s.Succeeded)
	}
	fmt.Fprintf(&b, "  latency    min %s  mean %s  p50 %s  p90 %s  p99 %s  max %s\n",
		fmtDur(s.Min), fmtDur(s.Mean), fmtDur(s.P50), fmtDur(s.P90), fmtDur(s.P99), fmtDur(s.Max))
	fmt.Fprintf(&b, "  note       %s\n", s.note())
	_, err := w.Write(b.Bytes())
	return err
}

// fmtDur prints a latency in milliseconds with three decimals (microsecond resolution).
func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(Millis(d), 'f', 3, 64) + "ms"
}
