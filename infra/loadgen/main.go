// Command loadgen is Helix's HTTP load generator: c workers send the same request in a closed
// loop (each waits for its response before sending the next) for a fixed duration, every
// latency is recorded, and the run is summarized as throughput and latency percentiles.
//
//	go run ./infra/loadgen -url http://127.0.0.1:3000/ai-router/route -token "$TOKEN" \
//	    -body '{"operation_id":"email-compose","estimated_tokens":100}' -c 64 -d 15s
//
// A response counts as an error unless its status is 2xx; a transport failure (refused, reset,
// timed out) is an error too. Latencies of errors are recorded like any other. The workers stop
// starting requests when the duration is up and the run ends when the last response arrives, so
// no request is cut short; throughput is completed requests over that whole window.
//
// Besides the measured requests, the summary counts every request the run sent, the first probe
// and the warm-up included ("sent", "succeeded" in -json), so a script can check them against
// what the server recorded.
//
// -token-file spreads the load over several users: worker i sends the token on line
// i mod n of the file (so -c 64 with 64 tokens gives each worker a user of its own).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type options struct {
	url     string
	method  string
	token   string
	tokens  []string // from -token-file; worker i uses tokens[i%len(tokens)]
	body    string
	conc    int
	dur     time.Duration
	warmup  time.Duration
	timeout time.Duration
	json    bool
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "", "URL to load (required)")
	flag.StringVar(&o.method, "method", "", "HTTP method (default POST with -body, else GET)")
	flag.StringVar(&o.token, "token", "", "bearer token sent as Authorization: Bearer <token>")
	tokenFile := flag.String("token-file", "", "file of bearer tokens, one a line: worker i sends line i mod n (instead of -token)")
	flag.StringVar(&o.body, "body", "", "request body, sent as application/json")
	flag.IntVar(&o.conc, "c", 64, "concurrency: workers, each with one request in flight")
	flag.DurationVar(&o.dur, "d", 15*time.Second, "measured duration")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before the measured run (0 for none)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	flag.BoolVar(&o.json, "json", false, "print the summary as JSON")
	flag.Parse()
	if *tokenFile != "" {
		tokens, err := readTokens(*tokenFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		o.tokens = tokens
	}
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		flag.Usage()
		os.Exit(2)
	}
	s, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	} else {
		s.writeText(os.Stdout)
	}
	if s.Errors > 0 {
		// The numbers are printed, but a run with failed requests does not measure the path it
		// claims to measure.
		fmt.Fprintf(os.Stderr, "loadgen: %d of %d requests failed\n", s.Errors, s.Requests)
		os.Exit(1)
	}
}

func (o *options) check() error {
	switch {
	case o.url == "":
		return errors.New("-url is required")
	case o.conc < 1:
		return errors.New("-c must be at least 1")
	case o.dur <= 0:
		return errors.New("-d must be positive")
	case o.warmup < 0:
		return errors.New("-warmup must not be negative")
	case o.timeout <= 0:
		return errors.New("-timeout must be positive")
	case o.token != "" && len(o.tokens) > 0:
		return errors.New("-token and -token-file exclude each other")
	}
	if o.method == "" {
		o.method = http.MethodGet
		if o.body != "" {
			o.method = http.MethodPost
		}
	}
	return nil
}

// readTokens reads one token a line, skipping blank lines.
func readTokens(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tokens []string
	for _, line := range strings.Split(string(raw), "\n") {
		if t := strings.TrimSpace(line); t != "" {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s holds no token", path)
	}
	return tokens, nil
}

// authHeaders returns the Authorization header value of each worker ("" for none).
func (o *options) authHeaders() []string {
	h := make([]string, o.conc)
	for w := range h {
		switch {
		case len(o.tokens) > 0:
			h[w] = "Bearer " + o.tokens[w%len(o.tokens)]
		case o.token != "":
			h[w] = "Bearer " + o.token
		}
	}
	return h
}

// distinct counts the different non-empty values.
func distinct(values []string) int {
	seen := map[string]bool{}
	for _, v := range values {
		if v != "" {
			seen[v] = true
		}
	}
	return len(seen)
}

// newClient returns a client that keeps one idle keep-alive connection per worker, so the
// measured loop reuses connections instead of dialing.
func newClient(o options) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // measure the server, not an HTTP_PROXY from the environment
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.conc,
		MaxIdleConnsPerHost: o.conc,
		MaxConnsPerHost:     o.conc,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: o.timeout}
}

// result is what one worker saw.
type result struct {
	latencies []time.Duration
	errors    int
	statuses  map[string]int // "200", "503", "transport"
	sent      int            // requests sent, recorded or not
	ok        int            // of which 2xx
}

func run(ctx context.Context, o options) (Summary, error) {
	client := newClient(o)
	defer client.CloseIdleConnections()
	auth := o.authHeaders()
	send := func(worker int) (status string, ok bool) {
		var body io.Reader
		if o.body != "" {
			body = strings.NewReader(o.body)
		}
		req, err := http.NewRequestWithContext(ctx, o.method, o.url, body)
		if err != nil {
			return "transport", false
		}
		if o.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if auth[worker] != "" {
			req.Header.Set("Authorization", auth[worker])
		}
		resp, err := client.Do(req)
		if err != nil {
			return "transport", false
		}
		// Read the whole body so the connection goes back to the pool for reuse.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return "transport", false
		}
		return strconv.Itoa(resp.StatusCode), resp.StatusCode >= 200 && resp.StatusCode < 300
	}

	// One request first: a wrong URL or token should fail in a second, not after the whole run.
	if status, ok := send(0); !ok {
		return Summary{}, fmt.Errorf("first request to %s failed (status %s); check -url, -token and -body", o.url, status)
	}
	sent, succeeded := 1, 1
	if o.warmup > 0 {
		for _, r := range loop(o.conc, o.warmup, send, false) {
			sent += r.sent
			succeeded += r.ok
		}
	}
	start := time.Now()
	results := loop(o.conc, o.dur, send, true)
	elapsed := time.Since(start)

	var all []time.Duration
	errs := 0
	statuses := map[string]int{}
	for _, r := range results {
		all = append(all, r.latencies...)
		errs += r.errors
		for k, v := range r.statuses {
			statuses[k] += v
		}
		sent += r.sent
		succeeded += r.ok
	}
	s := summarize(all, errs, elapsed)
	s.Sent, s.Succeeded = sent, succeeded
	s.Tokens = distinct(auth)
	s.URL, s.Method, s.Concurrency = o.url, o.method, o.conc
	s.Statuses = statuses
	s.CPUs, s.GOMAXPROCS = runtime.NumCPU(), runtime.GOMAXPROCS(0)
	return s, nil
}

// loop runs conc workers that each send requests back to back until d has passed since the
// start, and returns what each saw (only the counts of sent and 2xx requests when record is
// false).
func loop(conc int, d time.Duration, send func(worker int) (string, bool), record bool) []result {
	deadline := time.Now().Add(d)
	results := make([]result, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			if record {
				r.latencies = make([]time.Duration, 0, 4096)
				r.statuses = map[string]int{}
			}
			for time.Now().Before(deadline) {
				t0 := time.Now()
				status, ok := send(w)
				lat := time.Since(t0)
				r.sent++
				if ok {
					r.ok++
				}
				if !record {
					continue
				}
				r.latencies = append(r.latencies, lat)
				r.statuses[status]++
				if !ok {
					r.errors++
				}
			}
		}()
	}
	wg.Wait()
	return results
}

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
}

// MarshalJSON writes the durations as milliseconds.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
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
	}{plain(s), s.Elapsed.Seconds(), ms(s.Min), ms(s.Mean), ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), s.note()})
}

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

func (s Summary) writeText(w io.Writer) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s  concurrency %d  %.1fs", s.Method, s.URL, s.Concurrency, s.Elapsed.Seconds())
	if s.Tokens > 1 {
		fmt.Fprintf(&b, "  %d tokens", s.Tokens)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  requests   %d (%.0f req/s)\n", s.Requests, s.RPS)
	fmt.Fprintf(&b, "  errors     %d", s.Errors)
	if len(s.Statuses) > 0 {
		keys := make([]string, 0, len(s.Statuses))
		for k := range s.Statuses {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s: %d", k, s.Statuses[k])
		}
		fmt.Fprintf(&b, "  (statuses %s)", strings.Join(parts, ", "))
	}
	b.WriteString("\n")
	if s.Sent > 0 {
		fmt.Fprintf(&b, "  in all     %d sent, %d succeeded (first request and warm-up included)\n", s.Sent, s.Succeeded)
	}
	fmt.Fprintf(&b, "  latency    min %s  mean %s  p50 %s  p90 %s  p99 %s  max %s\n",
		fmtDur(s.Min), fmtDur(s.Mean), fmtDur(s.P50), fmtDur(s.P90), fmtDur(s.P99), fmtDur(s.Max))
	fmt.Fprintf(&b, "  note       %s\n", s.note())
	_, _ = w.Write(b.Bytes())
}

// fmtDur prints a latency in milliseconds with three decimals (microsecond resolution).
func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}
