package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/helixhq/helix/infra/load"
)

// routeBody is the routing request of step 1.
const routeBody = `{"operation_id":"email-compose","estimated_tokens":100}`

// routeExecModes are the HELIX_DB_EXEC_MODE values step 1 compares: the default, safe behind
// PgBouncer and RDS Proxy, and the fastest against Postgres directly.
func routeExecModes() []string { return []string{"exec", "cache_describe"} }

// concurrencies are the load levels of steps 1 and 2.
func concurrencies() []int { return []int{1, 64} }

// routeLoad loads /ai-router/route at each concurrency on a dev server with HELIX_DB_EXEC_MODE=mode.
// Each server is stopped when its run ends, so it does not compete with the next.
func (b *bench) routeLoad(ctx context.Context, mode string) error {
	srv, err := b.startDevServer(ctx, "route-"+mode, "HELIX_DB_EXEC_MODE="+mode)
	if err != nil {
		return err
	}
	defer srv.stop()
	token, err := b.tokens.token("bench-user")
	if err != nil {
		return err
	}
	u := srv.url + "/ai-router/route"
	b.printf("request  POST %s  %s\n", u, routeBody)
	if status, body, _, err := post(ctx, u, token, routeBody); err == nil {
		b.printf("sample   %d %s\n", status, clip(body, 300))
	} else {
		b.printf("sample   %v\n", err)
	}
	var errs []error
	for _, c := range concurrencies() {
		s, err := b.load(ctx, load.Options{URL: u, Body: routeBody, Token: token, Concurrency: c, Duration: b.cfg.duration})
		if s.Requests > 0 {
			b.res.Route = append(b.res.Route, routeRun{Mode: mode, Summary: s})
		}
		errs = append(errs, err)
	}
	errs = append(errs, srv.logErrors())
	return errors.Join(errs...)
}

// load runs the load generator with the bench's warm-up, printing the equivalent loadgen command
// and a one-line result. The summary is returned (for the tables) even when some requests
// failed, which is an error all the same: such a run does not measure the path it claims to.
func (b *bench) load(ctx context.Context, o load.Options) (load.Summary, error) {
	o.Warmup = b.cfg.warmup
	shown := fmt.Sprintf("go run ./infra/loadgen -url %s -body '%s' -c %d -d %s -warmup %s", o.URL, o.Body, o.Concurrency, o.Duration, o.Warmup)
	switch {
	case len(o.Tokens) > 0:
		shown += fmt.Sprintf(" -token-file TOKENS  # %d tokens, one user each", len(o.Tokens))
	case o.Token != "":
		shown += ` -token "$TOKEN"`
	}
	return b.runLoad(ctx, o, shown)
}

// runLoad runs the load generator as o says (its warm-up included), after printing shown, the
// command that does the same by hand.
func (b *bench) runLoad(ctx context.Context, o load.Options, shown string) (load.Summary, error) {
	b.printf("$ %s\n", shown)
	s, err := load.Run(ctx, o)
	if err != nil {
		b.printf("  no result: %v\n", err)
		return s, err
	}
	b.printf("  %d requests in %.1fs: %.0f req/s, p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms; errors %d (statuses %s)\n",
		s.Requests, s.Elapsed.Seconds(), s.RPS, load.Millis(s.P50), load.Millis(s.P90), load.Millis(s.P99), load.Millis(s.Max),
		s.Errors, s.StatusList())
	if s.Errors > 0 {
		return s, fmt.Errorf("%d of %d requests to %s failed", s.Errors, s.Requests, s.URL)
	}
	return s, nil
}

// post sends one JSON request with a bearer token and reads the whole answer.
func post(ctx context.Context, url, token, body string) (int, string, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: load.DefaultTimeout, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, string(raw), res.Header, err
}

// clip shortens s to n bytes for printing, without a trailing newline.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
