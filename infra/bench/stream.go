package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The stream step (issue 11): streamed /v1/chat/completions through Helix against the mock
// upstream streaming one word per -token-delay.
const (
	stepStream = "stream"

	// The time-to-first-content runs: ~50 words at 20 ms each, both ways at each concurrency,
	// alternating (direct, helix, then helix, direct, ...) over streamRounds rounds.
	streamTokenDelay = 20 * time.Millisecond
	streamTokens     = 50
	streamRounds     = 6
	// streamRunC1 and streamRunC64 are each run's measured load: a stream lasts about a second,
	// so at -c 1 a run gives a handful of samples.
	streamRunC1  = 6 * time.Second
	streamRunC64 = 4 * time.Second
	streamWarmup = 2 * time.Second

	// The open-streams runs: a slow provider (one word a second) and answers long enough for
	// every stream to be open at once, short enough to end inside the dev server's call deadline
	// (execute.DefaultPolicy: 25 s less a 2 s margin, from the request's start).
	streamSlowDelay  = time.Second
	streamSlowTokens = 15
	// streamHoldWindow is how long the open streams are watched once all of them have content.
	streamHoldWindow = 4 * time.Second
)

// streamHoldLevels are the numbers of streams held open at once, one fresh dev server each; the
// step stops at the first level with an error.
var streamHoldLevels = []int{100, 500, 1000}

// The streamed requests, as the gateway step's with stream and the usage chunk.
const (
	streamDirectBody = `{"model":"deepseek-chat","messages":[{"role":"user","content":"Hello"}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}`
	streamHelixBody  = `{"model":"auto","messages":[{"role":"user","content":"Hello"}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}`
)

// streamResult is what the stream step measured.
type streamResult struct {
	TokenDelay string `json:"token_delay"`
	Tokens     int    `json:"tokens_per_answer"`
	Rounds     int    `json:"rounds"`
	Users      string `json:"users"` // the user ids of this run start with it
	// TTFB is the time to the first chunk with content, per concurrency and path, over all rounds.
	TTFB []streamTTFB `json:"ttfb"`
	// HelixStreams and DirectStreams are the streams started each way (warm-ups included), and
	// UpstreamStreams the streams the mock served meanwhile: one provider call per stream.
	HelixStreams    int64   `json:"helix_streams"`
	DirectStreams   int64   `json:"direct_streams"`
	UpstreamStreams int64   `json:"upstream_streams"`
	Checks          []check `json:"checks"`

	SlowTokenDelay string       `json:"hold_token_delay"`
	SlowTokens     int          `json:"hold_tokens_per_answer"`
	Hold           []streamHold `json:"hold"`
}

// streamTTFB is one concurrency and path: every round's samples together, and each round's p50.
type streamTTFB struct {
	Concurrency int       `json:"concurrency"`
	Path        string    `json:"path"` // "direct" or "helix"
	TTFB        latencies `json:"ttfb"`
	Total       latencies `json:"whole_stream"`
	RoundP50MS  []float64 `json:"round_p50_ms"`
	Errors      int       `json:"errors"`
	FirstError  string    `json:"first_error,omitempty"`
}

// streamHold is one level of open streams on a fresh dev server.
type streamHold struct {
	Streams int `json:"streams"`
	// Opened is how long it took until every stream had its first content (or failed).
	OpenedMS float64 `json:"opened_ms"`
	// RSS of the dev server before the streams (after one warm-up stream) and the most seen
	// while all were open.
	RSSBeforeKB    int64   `json:"rss_before_kb"`
	RSSOpenKB      int64   `json:"rss_open_kb"`
	KBPerStream    float64 `json:"kb_per_stream"`
	MockOpen       int64   `json:"mock_open_streams"`       // the mock's open streams at the first sample
	KeptReceiving  int     `json:"streams_kept_receiving"`  // streams with more chunks at the window's end than at its start
	Completed      int     `json:"streams_completed"`       // every word, the usage and [DONE]
	PGBackends     int     `json:"postgres_backends_max"`   // backends on the bench database, most seen in the window
	PGActive       int     `json:"postgres_active_max"`     // of which running a query
	PGInTxn        int     `json:"postgres_in_transaction"` // of which idle in a transaction, most seen
	Errors         int     `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
	BookkeepingOK  bool    `json:"bookkeeping_ok"`
	BookkeepingMsg string  `json:"bookkeeping,omitempty"`
}

func (r *streamResult) ttfb(c int, path string) *streamTTFB {
	for i := range r.TTFB {
		if r.TTFB[i].Concurrency == c && r.TTFB[i].Path == path {
			return &r.TTFB[i]
		}
	}
	return nil
}

// streamOutcome is what reading one streamed answer gave.
type streamOutcome struct {
	ttfb, total time.Duration
	contents    int  // chunks with content
	usage       bool // a usage chunk came
	done        bool // data: [DONE] came
}

// readStream sends one streamed request and reads the answer to its end. chunks, when not nil, is
// incremented at each content chunk, and first is called once at the first. It fails unless
// the answer is complete: want content chunks, the usage, [DONE].
func readStream(ctx context.Context, client *http.Client, url, token, body string, want int, chunks *atomic.Int64, first func()) (streamOutcome, error) {
	var out streamOutcome
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	t0 := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 2048))
		return out, fmt.Errorf("status %d: %s", res.StatusCode, clip(string(raw), 300))
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return out, fmt.Errorf("Content-Type %q, not text/event-stream", ct)
	}
	err = scanEvents(res.Body, func(data []byte) error {
		if out.done {
			return errors.New("an event after [DONE]")
		}
		if string(data) == "[DONE]" {
			out.done = true
			return nil
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *json.RawMessage `json:"usage"`
			Error *json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("event %q: %w", clip(string(data), 200), err)
		}
		if c.Error != nil {
			return fmt.Errorf("error event: %s", clip(string(*c.Error), 300))
		}
		if c.Usage != nil && string(*c.Usage) != "null" {
			out.usage = true
		}
		if len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			if out.contents == 0 {
				out.ttfb = time.Since(t0)
				if first != nil {
					first()
				}
			}
			out.contents++
			if chunks != nil {
				chunks.Add(1)
			}
		}
		return nil
	})
	out.total = time.Since(t0)
	switch {
	case err != nil:
		return out, err
	case !out.done:
		return out, fmt.Errorf("the stream ended without [DONE] after %d content chunks", out.contents)
	case out.contents != want || !out.usage:
		return out, fmt.Errorf("%d content chunks (want %d), usage chunk %v", out.contents, want, out.usage)
	}
	return out, nil
}

// scanEvents calls fn with the data of each event of an SSE body (one data line per event, as
// OpenAI and Helix send).
func scanEvents(r io.Reader, fn func(data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 || line[0] == ':' {
			continue
		}
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // event:, id:, retry: lines carry nothing here
		}
		if err := fn(bytes.TrimPrefix(data, []byte(" "))); err != nil {
			return err
		}
	}
	return sc.Err()
}

// streamClient is a client for many concurrent streams to both servers.
func streamClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 4096, MaxIdleConnsPerHost: 2048,
		DisableCompression: true, IdleConnTimeout: time.Minute}}
}

// streamRun is one load of streams: samples of the complete ones, and the failures.
type streamRun struct {
	ttfb, total []time.Duration
	errors      int
	firstErr    error
	started     int64
}

// streamLoad runs c workers that each send streams one after another until d has passed (a
// stream started before the end is read to its end). Worker i uses tokens[i%len(tokens)].
func streamLoad(ctx context.Context, client *http.Client, url, body string, tokens []string, c int, d time.Duration, want int) streamRun {
	var mu sync.Mutex
	var run streamRun
	var started atomic.Int64
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := ""
			if len(tokens) > 0 {
				tok = tokens[i%len(tokens)]
			}
			for time.Now().Before(end) && ctx.Err() == nil {
				started.Add(1)
				o, err := readStream(ctx, client, url, tok, body, want, nil, nil)
				mu.Lock()
				if err != nil {
					run.errors++
					if run.firstErr == nil {
						run.firstErr = err
					}
				} else {
					run.ttfb = append(run.ttfb, o.ttfb)
					run.total = append(run.total, o.total)
				}
				mu.Unlock()
				if err != nil && ctx.Err() == nil {
					// A failing server must not be hammered in a loop: pace the worker.
					_ = sleep(ctx, 50*time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	run.started = started.Load()
	return run
}

// streamMockCounters are the mock's counters (GET /stats).
type streamMockCounters struct {
	Requests    int64 `json:"requests"`
	Streams     int64 `json:"streams"`
	OpenStreams int64 `json:"open_streams"`
}

func streamMockStats(ctx context.Context, mockURL string) (streamMockCounters, error) {
	var s streamMockCounters
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mockURL+"/stats", nil)
	if err != nil {
		return s, err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		return s, fmt.Errorf("read the mock's counters: %w", err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil || res.StatusCode != http.StatusOK {
		return s, fmt.Errorf("read the mock's counters: status %d, %v", res.StatusCode, err)
	}
	return s, nil
}

// startStreamMock starts the mock upstream streaming one word per tokenDelay, tokens words an
// answer, and reads its URL (the first line it prints). The caller stops it.
func (b *bench) startStreamMock(ctx context.Context, name string, tokenDelay time.Duration, tokens int) (*server, error) {
	s, err := b.startMockWith(ctx, name, "-delay", "0s", "-token-delay", tokenDelay.String(), "-stream-tokens", strconv.Itoa(tokens))
	if err != nil {
		return nil, err
	}
	b.printf("mock upstream on %s (pid %d, -token-delay %s, -stream-tokens %d)\n", s.url, s.cmd.Process.Pid, tokenDelay, tokens)
	return s, nil
}

// usersWithTokens are n users of this run (prefix-u0001...) and their tokens.
func (b *bench) usersWithTokens(prefix string, n int) (users, tokens []string, err error) {
	users = make([]string, n)
	tokens = make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s-u%04d", prefix, i+1)
		if tokens[i], err = b.tokens.token(users[i]); err != nil {
			return nil, nil, err
		}
	}
	return users, tokens, nil
}

// stream is the step: time to first content through Helix against the mock directly, then how
// many open streams one dev server holds with a slow provider.
func (b *bench) stream(ctx context.Context) error {
	r := &streamResult{TokenDelay: streamTokenDelay.String(), Tokens: streamTokens, Rounds: streamRounds,
		SlowTokenDelay: streamSlowDelay.String(), SlowTokens: streamSlowTokens}
	b.res.Stream = r
	prefix := "bench-st-" + strings.ToLower(b.stamp)
	r.Users = prefix + "-"
	errTTFB := b.streamTTFB(ctx, r, prefix+"-t")
	if ctx.Err() != nil {
		return errors.Join(errTTFB, ctx.Err())
	}
	errHold := b.streamHold(ctx, r, prefix+"-h")
	b.printf("\n")
	streamTable(b.out, r)
	return errors.Join(errTTFB, errHold)
}

// streamTTFB is the first part: direct and helix runs alternating at each concurrency.
func (b *bench) streamTTFB(ctx context.Context, r *streamResult, prefix string) error {
	mock, err := b.startStreamMock(ctx, "mockllm-stream", streamTokenDelay, streamTokens)
	if err != nil {
		return err
	}
	defer mock.stop()
	users, tokens, err := b.usersWithTokens(prefix, 64)
	if err != nil {
		return err
	}
	// The dev server first: it migrates a fresh bench database.
	srv, err := b.startDevServer(ctx, "stream", "HELIX_DB_EXEC_MODE=exec", "DEEPSEEK_API_KEY=bench", "DEEPSEEK_BASE_URL="+mock.url)
	if err != nil {
		return err
	}
	defer srv.stop()
	if !srv.waitLog(ctx, "deepseek: live", 2*time.Second) {
		return fmt.Errorf("the dev server does not call the mock for deepseek: %s", srv.logText())
	}
	if err := b.setBudgets(ctx, users); err != nil {
		return fmt.Errorf("set the bench users' budgets: %w", err)
	}
	direct, helix := mock.url+"/chat/completions", srv.url+"/v1/chat/completions"
	b.printf("users    %s-u0001..u%04d, one per worker (daily limit and warning threshold $1,000,000 each)\n", prefix, len(tokens))
	b.printf("direct   POST %s  %s\n", direct, streamDirectBody)
	b.printf("helix    POST %s  %s  (Authorization: Bearer $TOKEN)\n", helix, streamHelixBody)
	b.printf("measured the time from sending the request to the first chunk with a non-empty delta.content; every stream read to data: [DONE]\n")
	before, err := streamMockStats(ctx, mock.url)
	if err != nil {
		return err
	}
	client := streamClient()
	defer client.CloseIdleConnections()

	var errs []error
	for _, c := range concurrencies() {
		d := streamRunC1
		if c > 1 {
			d = streamRunC64
		}
		paths := []struct {
			name, url, body string
			tokens          []string
		}{{"direct", direct, streamDirectBody, nil}, {"helix", helix, streamHelixBody, tokens[:c]}}
		acc := map[string]*streamRun{"direct": {}, "helix": {}}
		rows := map[string]*streamTTFB{}
		for _, p := range paths {
			rows[p.name] = &streamTTFB{Concurrency: c, Path: p.name}
		}
		count := func(name string, run streamRun) {
			if name == "helix" {
				r.HelixStreams += run.started
			} else {
				r.DirectStreams += run.started
			}
		}
		b.printf("\n-c %d: warm-up %s each way, then %d rounds of %s each way, alternating\n", c, streamWarmup, streamRounds, d)
		for _, p := range paths {
			w := streamLoad(ctx, client, p.url, p.body, p.tokens, c, streamWarmup, streamTokens)
			count(p.name, w)
			if w.errors > 0 {
				errs = append(errs, fmt.Errorf("%s warm-up at -c %d: %d errors, the first: %v", p.name, c, w.errors, w.firstErr))
			}
		}
		for round := range streamRounds {
			order := paths
			if round%2 == 1 {
				order = []struct {
					name, url, body string
					tokens          []string
				}{paths[1], paths[0]}
			}
			var line []string
			for _, p := range order {
				run := streamLoad(ctx, client, p.url, p.body, p.tokens, c, d, streamTokens)
				count(p.name, run)
				a := acc[p.name]
				a.ttfb, a.total = append(a.ttfb, run.ttfb...), append(a.total, run.total...)
				a.errors += run.errors
				if a.firstErr == nil {
					a.firstErr = run.firstErr
				}
				s := summarizeLatencies(run.ttfb)
				rows[p.name].RoundP50MS = append(rows[p.name].RoundP50MS, roundTo(millis(s.P50), 3))
				line = append(line, fmt.Sprintf("%s n=%d p50 %.3f p99 %.3f ms errors %d", p.name, s.N, millis(s.P50), millis(s.P99), run.errors))
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			b.printf("  round %d: %s\n", round+1, strings.Join(line, "; "))
		}
		for _, p := range paths {
			a, row := acc[p.name], rows[p.name]
			row.TTFB, row.Total, row.Errors = summarizeLatencies(a.ttfb), summarizeLatencies(a.total), a.errors
			if a.firstErr != nil {
				row.FirstError = a.firstErr.Error()
				errs = append(errs, fmt.Errorf("%s at -c %d: %d errors, the first: %v", p.name, c, a.errors, a.firstErr))
			}
			r.TTFB = append(r.TTFB, *row)
		}
	}
	after, err := streamMockStats(ctx, mock.url)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	r.UpstreamStreams = after.Streams - before.Streams

	b.printf("\nbookkeeping in Postgres for the users %s* (warm-ups included):\n", prefix)
	checks, err := b.streamBookkeeping(ctx, prefix+"-", r.HelixStreams)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	r.Checks = append(checks, check{
		fmt.Sprintf("mock upstream: %d streams served for %d direct + %d helix streams (one provider call per Helix stream)",
			r.UpstreamStreams, r.DirectStreams, r.HelixStreams),
		r.UpstreamStreams == r.DirectStreams+r.HelixStreams})
	errs = append(errs, b.printChecks("stream books", r.Checks), srv.logErrors())
	return errors.Join(errs...)
}

// millis is a duration in milliseconds.
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// streamBookkeeping checks that every Helix stream of the users with prefix was logged once as
// a success by deepseek, its reservation settled, nothing left reserved, and the spend equal to
// the logged cost.
func (b *bench) streamBookkeeping(ctx context.Context, prefix string, want int64) ([]check, error) {
	var logged, failedRows, odd, cost, reserved, spent, settled, open int64
	var codes string
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		if err := conn.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success),
			       count(*) FILTER (WHERE success AND (provider IS DISTINCT FROM 'deepseek' OR fallback_used)),
			       COALESCE(sum(cost_nano), 0),
			       COALESCE(string_agg(DISTINCT error_code, ',') FILTER (WHERE NOT success), '')
			  FROM ai_operation_log WHERE starts_with(user_id, $1)`, prefix).Scan(&logged, &failedRows, &odd, &cost, &codes); err != nil {
			return fmt.Errorf("read ai_operation_log: %w", err)
		}
		if err := conn.QueryRow(ctx, `
			SELECT COALESCE(sum(reserved_nano), 0), COALESCE(sum(spent_nano), 0)
			  FROM budget_days WHERE starts_with(user_id, $1)`, prefix).Scan(&reserved, &spent); err != nil {
			return fmt.Errorf("read budget_days: %w", err)
		}
		return conn.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE status = 'settled'), count(*) FILTER (WHERE status <> 'settled')
			  FROM budget_reservations WHERE starts_with(user_id, $1)`, prefix).Scan(&settled, &open)
	})
	if err != nil {
		return nil, err
	}
	checks := []check{
		{fmt.Sprintf("ai_operation_log: %d successful rows for %d streams through Helix", logged, want), logged == want},
		{fmt.Sprintf("ai_operation_log: %d failed rows %s", failedRows, codes), failedRows == 0},
		{fmt.Sprintf("ai_operation_log: %d rows not answered by deepseek or marked as fallback", odd), odd == 0},
		{fmt.Sprintf("budget_reservations: %d settled, %d not settled", settled, open), settled == want && open == 0},
		{fmt.Sprintf("budget_days.reserved_nano summed over the users = %d", reserved), reserved == 0},
		{fmt.Sprintf("budget_days.spent_nano = %d, sum of logged cost_nano = %d", spent, cost), spent == cost && cost > 0},
	}
	return checks, nil
}

// streamHold is the second part: for each level, a fresh dev server, one warm-up stream, the RSS,
// then that many streams opened at once and watched while all are open.
func (b *bench) streamHold(ctx context.Context, r *streamResult, prefix string) error {
	mock, err := b.startStreamMock(ctx, "mockllm-slow", streamSlowDelay, streamSlowTokens)
	if err != nil {
		return err
	}
	defer mock.stop()
	top := slices.Max(streamHoldLevels)
	users, tokens, err := b.usersWithTokens(prefix, top+1)
	if err != nil {
		return err
	}
	b.printf("\nopen streams: %d words a stream at one a %s; users %s-u0001..u%04d, one per stream\n", streamSlowTokens, streamSlowDelay, prefix, len(tokens))
	for _, n := range streamHoldLevels {
		h, err := b.streamHoldLevel(ctx, mock, users, tokens, n)
		if h != nil {
			r.Hold = append(r.Hold, *h)
		}
		if err != nil {
			return fmt.Errorf("%d open streams: %w", n, err)
		}
	}
	return nil
}

// streamHoldLevel holds n streams on a dev server of its own. The users' rows of the level are
// told apart by the run of the server: the bookkeeping counts the calls from this level's start.
func (b *bench) streamHoldLevel(ctx context.Context, mock *server, users, tokens []string, n int) (*streamHold, error) {
	h := &streamHold{Streams: n}
	srv, err := b.startDevServer(ctx, "stream-hold-"+strconv.Itoa(n), "HELIX_DB_EXEC_MODE=exec", "DEEPSEEK_API_KEY=bench", "DEEPSEEK_BASE_URL="+mock.url)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	if !srv.waitLog(ctx, "deepseek: live", 2*time.Second) {
		return nil, fmt.Errorf("the dev server does not call the mock for deepseek: %s", srv.logText())
	}
	if err := b.setBudgets(ctx, users); err != nil {
		return nil, fmt.Errorf("set the bench users' budgets: %w", err)
	}
	url := srv.url + "/v1/chat/completions"
	pid := srv.cmd.Process.Pid
	client := streamClient()
	defer client.CloseIdleConnections()
	since := time.Now()

	// One stream first, so start-up allocations (pools, caches, the provider client) are in the
	// baseline, not in the per-stream figure.
	if _, err := readStream(ctx, client, url, tokens[len(tokens)-1], streamHelixBody, streamSlowTokens, nil, nil); err != nil {
		return nil, fmt.Errorf("warm-up stream: %w", err)
	}
	if h.RSSBeforeKB, err = rssKB(pid); err != nil {
		return nil, err
	}

	counts := make([]atomic.Int64, n)
	var firsts sync.WaitGroup
	firsts.Add(n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			firstDone := func() { once.Do(firsts.Done) }
			_, err := readStream(ctx, client, url, tokens[i], streamHelixBody, streamSlowTokens, &counts[i], firstDone)
			firstDone() // a failure before any content counts as opened, so the wait below ends
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				h.Errors++
				if h.FirstError == "" {
					h.FirstError = err.Error()
				}
			} else {
				h.Completed++
			}
		}()
	}
	firsts.Wait()
	h.OpenedMS = roundTo(millis(time.Since(t0)), 1)

	// Watch the window: RSS, the mock's open streams, the bench database's backends.
	start := make([]int64, n)
	for i := range counts {
		start[i] = counts[i].Load()
	}
	var sampleErr error
	for i := 0; ; i++ {
		rss, err := rssKB(pid)
		if err != nil {
			sampleErr = err
			break
		}
		h.RSSOpenKB = max(h.RSSOpenKB, rss)
		if i == 0 {
			if st, err := streamMockStats(ctx, mock.url); err == nil {
				h.MockOpen = st.OpenStreams
			}
		}
		total, active, inTxn, err := b.pgBackends(ctx)
		if err != nil {
			sampleErr = err
			break
		}
		h.PGBackends, h.PGActive, h.PGInTxn = max(h.PGBackends, total), max(h.PGActive, active), max(h.PGInTxn, inTxn)
		if time.Since(t0) >= time.Duration(h.OpenedMS*float64(time.Millisecond))+streamHoldWindow || ctx.Err() != nil {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			break
		}
	}
	for i := range counts {
		if counts[i].Load() > start[i] {
			h.KeptReceiving++
		}
	}
	wg.Wait()
	h.KBPerStream = roundTo(float64(h.RSSOpenKB-h.RSSBeforeKB)/float64(n), 1)
	b.printf("  %4d streams: all had content after %.0f ms; dev server RSS %d kB before, %d kB with them open (%.1f kB a stream); mock open streams %d; kept receiving over %s: %d; completed %d, errors %d; Postgres backends on the bench database: %d (active %d, idle in transaction %d)\n",
		n, h.OpenedMS, h.RSSBeforeKB, h.RSSOpenKB, h.KBPerStream, h.MockOpen, streamHoldWindow, h.KeptReceiving, h.Completed, h.Errors, h.PGBackends, h.PGActive, h.PGInTxn)
	if h.FirstError != "" {
		b.printf("        the first error: %s\n", clip(h.FirstError, 300))
	}

	// The books: every stream of this level (and the warm-up) logged, settled, nothing reserved.
	checks, err := b.streamHoldBookkeeping(ctx, since, int64(h.Completed)+1)
	if err == nil {
		err = b.printChecks(fmt.Sprintf("books after %d streams", n), checks)
	}
	h.BookkeepingOK = err == nil
	if err != nil {
		h.BookkeepingMsg = err.Error()
	}
	var errs []error
	if h.Errors > 0 {
		errs = append(errs, fmt.Errorf("%d of %d streams failed, the first: %s", h.Errors, n, h.FirstError))
	}
	return h, errors.Join(append(errs, sampleErr, err, srv.logErrors())...)
}

// streamHoldBookkeeping counts the hold users' log rows since the level started.
func (b *bench) streamHoldBookkeeping(ctx context.Context, since time.Time, want int64) ([]check, error) {
	var logged, failedRows, open int64
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		if err := conn.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success)
			  FROM ai_operation_log WHERE starts_with(user_id, $1) AND created_at >= $2`,
			b.streamHoldPrefix(), since).Scan(&logged, &failedRows); err != nil {
			return err
		}
		return conn.QueryRow(ctx, `SELECT count(*) FROM budget_reservations WHERE starts_with(user_id, $1) AND status <> 'settled'`,
			b.streamHoldPrefix()).Scan(&open)
	})
	if err != nil {
		return nil, fmt.Errorf("read the hold bookkeeping: %w", err)
	}
	checks := []check{
		{fmt.Sprintf("ai_operation_log: %d successful rows for %d complete streams (warm-up included), %d failed", logged, want, failedRows),
			logged == want && failedRows == 0},
		{fmt.Sprintf("budget_reservations: %d not settled", open), open == 0},
	}
	return checks, nil
}

func (b *bench) streamHoldPrefix() string { return "bench-st-" + strings.ToLower(b.stamp) + "-h-" }

// pgBackends counts the bench database's backends other than this connection: all, running a
// query, idle in a transaction.
func (b *bench) pgBackends(ctx context.Context) (total, active, inTxn int, err error) {
	err = b.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `
			SELECT count(*), count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE state LIKE 'idle in transaction%')
			  FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).
			Scan(&total, &active, &inTxn)
	})
	if err != nil {
		err = fmt.Errorf("read pg_stat_activity: %w", err)
	}
	return total, active, inTxn, err
}

// rssKB is a process's resident set size (VmRSS of /proc/<pid>/status), in kB.
func rssKB(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the dev server's RSS: %w", err)
	}
	return parseRSS(string(raw))
}

func parseRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no VmRSS line in kB")
}

// streamTable shows the time to first content both ways and what Helix adds, then the open
// streams.
func streamTable(w io.Writer, r *streamResult) {
	fmt.Fprintf(w, "streaming: time to the first content chunk, /v1/chat/completions stream: true through Helix vs the mock directly\n")
	fmt.Fprintf(w, "  (mock: %d words at %s each; %d rounds per path, alternating; every stream read to [DONE])\n", r.Tokens, r.TokenDelay, r.Rounds)
	fmt.Fprintf(w, "  %4s  %-8s %6s %10s %10s %12s %7s %s\n", "-c", "path", "n", "p50 ms", "p99 ms", "stream p50", "errors", "round p50s ms")
	for _, c := range concurrencies() {
		d, h := r.ttfb(c, "direct"), r.ttfb(c, "helix")
		for _, row := range []*streamTTFB{d, h} {
			if row == nil {
				continue
			}
			fmt.Fprintf(w, "  %4d  %-8s %6d %10.3f %10.3f %12.1f %7d %v\n", c, row.Path, row.TTFB.N, millis(row.TTFB.P50), millis(row.TTFB.P99),
				millis(row.Total.P50), row.Errors, row.RoundP50MS)
		}
		if d == nil || h == nil || d.TTFB.N == 0 || h.TTFB.N == 0 {
			fmt.Fprintf(w, "  %4d  %-8s (no result)\n", c, "added")
			continue
		}
		fmt.Fprintf(w, "  %4d  %-8s %6s %+10.3f %+10.3f\n", c, "added", "", millis(h.TTFB.P50-d.TTFB.P50), millis(h.TTFB.P99-d.TTFB.P99))
	}
	if len(r.Hold) == 0 {
		return
	}
	fmt.Fprintf(w, "open streams on one dev server (mock: %d words at one a %s; a fresh server per row)\n", r.SlowTokens, r.SlowTokenDelay)
	fmt.Fprintf(w, "  %7s %9s %11s %11s %9s %6s %6s %6s %6s %11s %s\n", "streams", "opened ms", "RSS0 MB", "RSS open MB", "kB/strm", "mock", "kept", "done", "errors", "PG backends", "books")
	for _, h := range r.Hold {
		books := "ok"
		if !h.BookkeepingOK {
			books = "WRONG"
		}
		fmt.Fprintf(w, "  %7d %9.0f %11.1f %11.1f %9.1f %6d %6d %6d %6d %5d (%d act) %s\n", h.Streams, h.OpenedMS,
			float64(h.RSSBeforeKB)/1024, float64(h.RSSOpenKB)/1024, h.KBPerStream, h.MockOpen, h.KeptReceiving, h.Completed, h.Errors,
			h.PGBackends, h.PGActive, books)
	}
	fmt.Fprintf(w, "  kept = streams with more content chunks at the end of a %s window than at its start, all streams open; PG backends = most client backends on the bench database in that window (the pool holds up to %d)\n",
		streamHoldWindow, serverMaxConns)
}
