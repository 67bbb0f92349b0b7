// Package load is Helix's HTTP load engine: c workers send the same request in a closed loop
// (each waits for its response before sending the next) for a fixed duration, every latency is
// recorded, and the run is summarized as throughput and latency percentiles. infra/loadgen is its
// command line; infra/bench calls it in process.
//
// A response counts as an error unless its status is 2xx; a transport failure (refused, reset,
// timed out) is an error too. Latencies of errors are recorded like any other. The workers stop
// starting requests when the duration is up and the run ends when the last response arrives, so
// no request is cut short; throughput is completed requests over that whole window.
//
// Besides the measured requests, a Summary counts every request the run sent, the first probe and
// the warm-up included (Sent, Succeeded), so a caller can check them against what the server
// recorded.
//
// Options.Tokens spreads the load over several users: worker i sends Tokens[i mod n] (so 64
// workers with 64 tokens give each worker a user of its own). Options.URLs does the same for the
// URL (each worker its own resource, say a chat session), and Options.BodyFunc makes every
// request's body anew (say with a fresh idempotency key), where Body sends the same one each time.
// Options.Headers adds headers to every request (say a gateway's routing headers).
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options describe a run. The zero values of Method and Timeout have defaults; the rest must be
// set (see Check).
type Options struct {
	URL    string
	URLs   []string // instead of URL: worker i sends to URLs[i%len(URLs)]
	Method string   // default POST with a Body or BodyFunc, else GET
	Token  string   // bearer token of every worker, or "" for none
	Tokens []string // instead of Token: worker i sends Tokens[i%len(Tokens)]
	Body   string   // request body, sent as application/json
	// Headers are sent with every request, after Content-Type (so they may replace it). An
	// Authorization header excludes Token and Tokens.
	Headers http.Header
	// BodyFunc, instead of Body, returns the body of worker's next request, sent as
	// application/json; it is called once per request (the first probe and the warm-up
	// included), from the workers' goroutines at once, so it must be safe for concurrent use.
	BodyFunc    func(worker int) string
	Concurrency int // workers, each with one request in flight
	Duration    time.Duration
	Warmup      time.Duration // unmeasured load before the measured run (0 for none)
	Timeout     time.Duration // per request; default DefaultTimeout
}

// DefaultTimeout is the per-request timeout of Options without one.
const DefaultTimeout = 10 * time.Second

// Check reports the first option a run cannot start with.
func (o Options) Check() error {
	switch {
	case o.URL == "" && len(o.URLs) == 0:
		return errors.New("the URL is required")
	case o.URL != "" && len(o.URLs) > 0:
		return errors.New("a URL and a URL list exclude each other")
	case slices.Contains(o.URLs, ""):
		return errors.New("the URL list holds an empty URL")
	case o.Body != "" && o.BodyFunc != nil:
		return errors.New("a body and a body function exclude each other")
	case o.Concurrency < 1:
		return errors.New("the concurrency must be at least 1")
	case o.Duration <= 0:
		return errors.New("the duration must be positive")
	case o.Warmup < 0:
		return errors.New("the warm-up must not be negative")
	case o.Timeout < 0:
		return errors.New("the timeout must not be negative")
	case o.Token != "" && len(o.Tokens) > 0:
		return errors.New("a token and a token list exclude each other")
	case o.headers().Get("Authorization") != "" && (o.Token != "" || len(o.Tokens) > 0):
		return errors.New("an Authorization header and a token exclude each other")
	}
	return nil
}

// method is the HTTP method the run sends.
func (o Options) method() string {
	switch {
	case o.Method != "":
		return o.Method
	case o.Body != "" || o.BodyFunc != nil:
		return http.MethodPost
	default:
		return http.MethodGet
	}
}

func (o Options) timeout() time.Duration {
	if o.Timeout == 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// ReadTokens reads a token file: one token a line, blank lines skipped.
func ReadTokens(path string) ([]string, error) {
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
func (o Options) authHeaders() []string {
	h := make([]string, o.Concurrency)
	for w := range h {
		switch {
		case len(o.Tokens) > 0:
			h[w] = "Bearer " + o.Tokens[w%len(o.Tokens)]
		case o.Token != "":
			h[w] = "Bearer " + o.Token
		}
	}
	return h
}

// headers returns o.Headers with canonical keys, so a request can take them without copying.
func (o Options) headers() http.Header {
	h := http.Header{}
	for k, vs := range o.Headers {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	return h
}

// urls returns the URL each worker sends to.
func (o Options) urls() []string {
	u := make([]string, o.Concurrency)
	for w := range u {
		if len(o.URLs) > 0 {
			u[w] = o.URLs[w%len(o.URLs)]
		} else {
			u[w] = o.URL
		}
	}
	return u
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
func newClient(o Options) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // measure the server, not an HTTP_PROXY from the environment
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.Concurrency,
		MaxIdleConnsPerHost: o.Concurrency,
		MaxConnsPerHost:     o.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: o.timeout()}
}

// result is what one worker saw.
type result struct {
	latencies []time.Duration
	errors    int
	statuses  map[string]int // "200", "503", "transport"
	sent      int            // requests sent, recorded or not
	ok        int            // of which 2xx
}

// sendFunc sends one request as worker and returns its status ("200", "transport") and whether
// it succeeded.
type sendFunc func(worker int) (status string, ok bool)

// Run loads o.URL as o describes. It fails when the options do not check, when the first request
// does not succeed (a wrong URL or token should fail in a second, not after the whole run), and
// when ctx ends before the run does.
func Run(ctx context.Context, o Options) (Summary, error) {
	if err := o.Check(); err != nil {
		return Summary{}, err
	}
	client := newClient(o)
	defer client.CloseIdleConnections()
	auth := o.authHeaders()
	send := newSender(ctx, client, o, auth)

	if status, ok := send(0); !ok {
		if err := ctx.Err(); err != nil {
			return Summary{}, err
		}
		return Summary{}, fmt.Errorf("first request to %s failed (status %s); check the URL, token and body", o.urls()[0], status)
	}
	sent, succeeded := 1, 1
	if o.Warmup > 0 {
		for _, r := range loop(ctx, o.Concurrency, o.Warmup, send, false) {
			sent += r.sent
			succeeded += r.ok
		}
	}
	start := time.Now()
	results := loop(ctx, o.Concurrency, o.Duration, send, true)
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return Summary{}, fmt.Errorf("the run was cut short: %w", err)
	}

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
	s.URL, s.Method, s.Concurrency = o.URL, o.method(), o.Concurrency
	if len(o.URLs) > 0 {
		s.URL, s.URLs = o.URLs[0], distinct(o.urls())
	}
	s.Statuses = statuses
	s.CPUs, s.GOMAXPROCS = runtime.NumCPU(), runtime.GOMAXPROCS(0)
	return s, nil
}

// newSender returns the function the workers send with.
func newSender(ctx context.Context, client *http.Client, o Options, auth []string) sendFunc {
	method := o.method()
	urls := o.urls()
	headers := o.headers()
	return func(worker int) (string, bool) {
		var body io.Reader
		hasBody := o.Body != ""
		switch {
		case o.BodyFunc != nil:
			body, hasBody = strings.NewReader(o.BodyFunc(worker)), true
		case hasBody:
			body = strings.NewReader(o.Body)
		}
		req, err := http.NewRequestWithContext(ctx, method, urls[worker], body)
		if err != nil {
			return "transport", false
		}
		if hasBody {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range headers {
			req.Header[k] = v // canonical keys; the values are only read
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
}

// loop runs conc workers that each send requests back to back until d has passed since the
// start (or ctx ends), and returns what each saw (only the counts of sent and 2xx requests when
// record is false).
func loop(ctx context.Context, conc int, d time.Duration, send sendFunc, record bool) []result {
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
			for ctx.Err() == nil && time.Now().Before(deadline) {
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
