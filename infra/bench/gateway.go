package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/infra/load"
	"github.com/helixhq/helix/infra/migrations"
)

// The gateway step's requests: the same chat completion straight to the mock upstream (and
// through Portkey, which passes the model on), and through Helix (model "auto": the
// chat_message operation, whose primary is deepseek, the mock).
const (
	directBody = `{"model":"deepseek-chat","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}`
	helixBody  = `{"model":"auto","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}`
	// gatewayUsers is how many users the many-user run spreads the load over: one per worker.
	gatewayUsers = 64
)

// The gateway's targets (issue 3): reported, not enforced.
const (
	targetAddedP50C1    = 1 * time.Millisecond   // what Helix adds to the p50 at concurrency 1
	targetP99C64        = 100 * time.Millisecond // Helix's p99 at concurrency 64 (64 users)
	targetOverPortkeyRP = 5.0                    // Helix's req/s over Portkey's at concurrency 64
)

// statsFlushWait is how long the dev server's Postgres backends must have been idle for the
// bench database's counters to hold all they did: a backend flushes its pending statistics at
// most once a second while busy, and 10 s (PGSTAT_IDLE_INTERVAL) after it went idle otherwise.
const statsFlushWait = 11 * time.Second

// The gateway step's targets (gatewayRun.Path).
const (
	pathDirect  = "direct"
	pathPortkey = "portkey"
	pathHelix   = "helix"
)

// gatewayResult is what step 2 measured.
type gatewayResult struct {
	MockDelay string       `json:"mock_delay"`
	Duration  string       `json:"duration"` // per run, after its warm-up
	Rounds    int          `json:"rounds"`
	Users     string       `json:"users"` // the user ids of this run start with it
	Portkey   *portkeyInfo `json:"portkey"`
	// Runs are every load in the order run: per concurrency, Rounds rounds of direct, portkey,
	// helix (and at 64 the one-user Helix run last).
	Runs []gatewayRun `json:"runs"`
	// Medians are each target's medians over its rounds.
	Medians []gatewayMedian `json:"medians"`
	// HelixOverPortkey is Helix's median req/s at concurrency 64 (64 users) over Portkey's.
	HelixOverPortkey float64 `json:"helix_over_portkey_rps_c64,omitempty"`
	// RoundRatios is the same ratio per round: each round's Helix run (64 users) over that
	// round's Portkey run, seconds apart, so a drift in the machine's speed over the step
	// (a shared machine's) moves both sides of each ratio alike.
	RoundRatios []float64 `json:"helix_over_portkey_rps_c64_by_round,omitempty"`
	Checks      []check   `json:"checks"`
	// Requests is the successful requests through Helix, the sample included: what Postgres
	// must have recorded.
	Requests      int   `json:"helix_requests"`
	UpstreamCalls int64 `json:"upstream_calls"`
	UpstreamConns int64 `json:"upstream_new_connections"`
	// Portkey's provider calls to the mock during its runs, and its requests (probes and
	// warm-ups included): one call each.
	PortkeySent          int   `json:"portkey_requests"`
	PortkeyUpstreamCalls int64 `json:"portkey_upstream_calls"`
	PortkeyUpstreamConns int64 `json:"portkey_upstream_new_connections"`
	// Postgres over the Helix runs (see helixPG).
	PG *helixPG `json:"postgres,omitempty"`
}

// helixPG is what the bench database counted from just before the first Helix run to
// statsFlushWait after the last (the direct and Portkey runs in between, when the dev server only
// runs its background work, included), per successful Helix request in those runs (probes and
// warm-ups included).
type helixPG struct {
	Requests          int     `json:"requests"`
	Seconds           float64 `json:"seconds"`
	Commits           int64   `json:"xact_commit"`
	Rollbacks         int64   `json:"xact_rollback"`
	CommitsPerRequest float64 `json:"commits_per_request"`
	// WALSyncs is pg_stat_wal.wal_sync: the whole cluster's (other databases' too).
	WALSyncs           int64   `json:"wal_syncs,omitempty"`
	WALSyncsPerRequest float64 `json:"wal_syncs_per_request,omitempty"`
	WALError           string  `json:"wal_error,omitempty"`
	// Background is the commits in the window before the first Helix run (direct and Portkey
	// runs, the sample's leftovers included), over BackgroundSeconds: the dev server's own work.
	Background        int64   `json:"background_commits"`
	BackgroundSeconds float64 `json:"background_seconds"`
	// ByConcurrency splits the window where the concurrency changes: from just before the first
	// Helix run at one concurrency to just before the first at the next (at least statsFlushWait
	// after the last Helix run before it), the last to the end of the whole window.
	ByConcurrency []helixPGWindow `json:"by_concurrency"`
}

// helixPGWindow is helixPG's counts over the Helix runs at one concurrency.
type helixPGWindow struct {
	Concurrency        int     `json:"concurrency"`
	Requests           int     `json:"requests"`
	Seconds            float64 `json:"seconds"`
	Commits            int64   `json:"xact_commit"`
	CommitsPerRequest  float64 `json:"commits_per_request"`
	WALSyncs           int64   `json:"wal_syncs,omitempty"`
	WALSyncsPerRequest float64 `json:"wal_syncs_per_request,omitempty"`
}

// pgMark is a reading of the counters just before the first Helix run at a concurrency, and the
// successful requests of the Helix runs at that concurrency.
type pgMark struct {
	c        int
	stats    pgStats
	at       time.Time
	requests int
}

// pgWindows are the counts between successive marks, the last one ending at end.
func pgWindows(marks []pgMark, end pgStats, endAt time.Time) []helixPGWindow {
	out := make([]helixPGWindow, len(marks))
	for i, m := range marks {
		next, nextAt := end, endAt
		if i+1 < len(marks) {
			next, nextAt = marks[i+1].stats, marks[i+1].at
		}
		w := helixPGWindow{Concurrency: m.c, Requests: m.requests, Seconds: roundTo(nextAt.Sub(m.at).Seconds(), 1),
			Commits: next.Commits - m.stats.Commits}
		if next.WALErr == nil && m.stats.WALErr == nil {
			w.WALSyncs = next.WALSyncs - m.stats.WALSyncs
		}
		if m.requests > 0 {
			w.CommitsPerRequest = roundTo(float64(w.Commits)/float64(m.requests), 3)
			w.WALSyncsPerRequest = roundTo(float64(w.WALSyncs)/float64(m.requests), 3)
		}
		out[i] = w
	}
	return out
}

type gatewayRun struct {
	Name          string       `json:"name"` // direct-c1-r1, portkey-c1-r1, helix-c1-r1, ..., helix-c64-users-r1, helix-c64-r1
	Path          string       `json:"path"` // direct, portkey or helix
	Round         int          `json:"round"`
	Users         int          `json:"users,omitempty"`
	Summary       load.Summary `json:"summary"`
	UpstreamCalls int64        `json:"upstream_calls,omitempty"`
	UpstreamConns int64        `json:"upstream_new_connections,omitempty"`
}

// roundRatios is, per round at concurrency c, the req/s of the Helix run with c users over the
// Portkey run's, in round order; a round missing either run has no ratio.
func roundRatios(runs []gatewayRun, c int) []float64 {
	portkey, helix := map[int]float64{}, map[int]float64{}
	var rounds []int
	for _, r := range runs {
		if r.Summary.Concurrency != c {
			continue
		}
		switch {
		case r.Path == pathPortkey:
			portkey[r.Round] = r.Summary.RPS
			rounds = append(rounds, r.Round)
		case r.Path == pathHelix && r.Users == c:
			helix[r.Round] = r.Summary.RPS
		}
	}
	var out []float64
	for _, round := range rounds {
		if p, h := portkey[round], helix[round]; p > 0 && h > 0 {
			out = append(out, roundTo(h/p, 2))
		}
	}
	return out
}

// gatewayMedian is one target's medians over its rounds at one concurrency.
type gatewayMedian struct {
	Path        string  `json:"path"`
	Users       int     `json:"users,omitempty"`
	Concurrency int     `json:"concurrency"`
	Rounds      int     `json:"rounds"`
	RPS         float64 `json:"requests_per_second"`
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
	// AddedP50MS is the median p50 minus the direct runs' median p50 at the same concurrency.
	AddedP50MS *float64 `json:"added_p50_ms,omitempty"`
}

// check is one look at the database after the load.
type check struct {
	What string `json:"what"`
	OK   bool   `json:"ok"`
}

// medians groups runs by path, concurrency and users, in the order each group first ran, and
// takes each group's medians over its rounds; every group but the direct ones gets its added
// p50 against the direct group at its concurrency.
func medians(runs []gatewayRun) []gatewayMedian {
	type key struct {
		path     string
		c, users int
	}
	var order []key
	groups := map[key][]load.Summary{}
	for _, r := range runs {
		k := key{r.Path, r.Summary.Concurrency, r.Users}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r.Summary)
	}
	out := make([]gatewayMedian, 0, len(order))
	directP50 := map[int]float64{}
	for _, k := range order {
		var rps, p50, p99 []float64
		for _, s := range groups[k] {
			rps = append(rps, s.RPS)
			p50 = append(p50, load.Millis(s.P50))
			p99 = append(p99, load.Millis(s.P99))
		}
		m := gatewayMedian{Path: k.path, Users: k.users, Concurrency: k.c, Rounds: len(groups[k]),
			RPS: roundTo(median(rps), 1), P50MS: roundTo(median(p50), 3), P99MS: roundTo(median(p99), 3)}
		if k.path == pathDirect {
			directP50[k.c] = m.P50MS
		}
		out = append(out, m)
	}
	for i := range out {
		if d, ok := directP50[out[i].Concurrency]; ok && out[i].Path != pathDirect {
			added := roundTo(out[i].P50MS-d, 3)
			out[i].AddedP50MS = &added
		}
	}
	return out
}

// median returns the medians of path at concurrency c with users (0: any), or nil.
func (g *gatewayResult) median(path string, c, users int) *gatewayMedian {
	for i := range g.Medians {
		m := &g.Medians[i]
		if m.Path == path && m.Concurrency == c && (users == 0 || m.Users == users) {
			return m
		}
	}
	return nil
}

// gatewayRound is one round's runs at concurrency c.
type gatewayRound struct {
	c     int
	round int
}

// gateway starts the mock upstream, a dev server whose "deepseek" provider calls it, and Portkey's
// gateway (installed on first use) pointed at it, then at each concurrency runs rounds of direct,
// Portkey and Helix loads, interleaved so that a slow patch of the shared machine hits all three
// (at 64, Helix with 64 users, one per worker, and then with one user, whose budget row every
// request holds and settles: the worst case). It prints the medians, checks in Postgres that the
// load did what it claims, and the commits per Helix request.
func (b *bench) gateway(ctx context.Context) error {
	g := &gatewayResult{MockDelay: b.cfg.mockDelay.String(), Duration: b.cfg.gwDuration.String(), Rounds: b.cfg.gwRounds,
		Portkey: &portkeyInfo{Package: portkeyPackage, Version: portkeyVersion}}
	b.res.Gateway = g
	// The budgets below need the tables: a fresh bench database is migrated first (the dev
	// server would do it too, but only once it starts).
	sum, err := migrations.Apply(ctx, b.dbURL, nil)
	if err != nil {
		return fmt.Errorf("migrate the bench database: %w", err)
	}
	b.printf("database migrated: %d migrations applied now, version %d\n", len(sum.Applied), sum.Version)
	mock, err := b.startMock(ctx)
	if err != nil {
		return err
	}
	defer mock.stop()

	// Users of this run only, so the checks below count nothing of an earlier run.
	prefix := "bench-gw-" + strings.ToLower(b.stamp)
	g.Users = prefix + "-"
	one := prefix + "-one"
	many := make([]string, gatewayUsers)
	for i := range many {
		many[i] = fmt.Sprintf("%s-u%02d", prefix, i+1)
	}
	if err := b.setBudgets(ctx, append([]string{one}, many...)); err != nil {
		return fmt.Errorf("set the bench users' budgets: %w", err)
	}
	b.printf("users    %s, and %s-u01..u%02d (daily limit and warning threshold $1,000,000 each)\n", one, prefix, len(many))
	oneToken, err := b.tokens.token(one)
	if err != nil {
		return err
	}
	manyTokens := make([]string, len(many))
	for i, u := range many {
		if manyTokens[i], err = b.tokens.token(u); err != nil {
			return err
		}
	}

	srv, err := b.startDevServer(ctx, "gateway", "HELIX_DB_EXEC_MODE=exec", "DEEPSEEK_API_KEY=bench", "DEEPSEEK_BASE_URL="+mock.url)
	if err != nil {
		return err
	}
	defer srv.stop()
	// The dev server says which providers are live right after it starts listening.
	if !srv.waitLog(ctx, "deepseek: live", 2*time.Second) {
		return fmt.Errorf("the dev server does not call the mock for deepseek: %s", srv.logText())
	}
	direct, helix := mock.url+"/chat/completions", srv.url+"/v1/chat/completions"
	b.printf("direct   POST %s  %s\n", direct, directBody)
	b.printf("helix    POST %s  %s  (Authorization: Bearer $TOKEN)\n", helix, helixBody)
	if err := b.gatewaySample(ctx, helix, oneToken); err != nil {
		return err
	}
	g.Requests = 1
	r := gatewayRunner{b: b, g: g, mock: mock.url, lastHelix: time.Now()}

	// Portkey: not measured (and said why) when this machine cannot run it; Helix is measured anyway.
	var portkeyURL string
	portkeyH := portkeyHeaders(mock.url)
	if node, bin, err := b.preparePortkey(ctx, g.Portkey); err != nil {
		g.Portkey.Reason = err.Error()
		b.printf("portkey  NOT MEASURED: %v\n", err)
		if !errors.As(err, new(notMeasured)) {
			r.errs = append(r.errs, fmt.Errorf("portkey: %w", err))
		}
	} else if pk, err := b.startPortkey(ctx, node, bin); err != nil {
		g.Portkey.Reason = err.Error()
		b.printf("portkey  NOT MEASURED: %v\n", err)
		r.errs = append(r.errs, fmt.Errorf("portkey: %w", err))
	} else {
		defer pk.stop()
		portkeyURL = pk.url + "/v1/chat/completions"
		b.printf("portkey  POST %s  %s  %s\n", portkeyURL, directBody, headerLine(portkeyH))
		if err := b.portkeySample(ctx, portkeyURL, mock.url, portkeyH); err != nil {
			g.Portkey.Reason = err.Error()
			b.printf("portkey  NOT MEASURED: %v\n", err)
			r.errs = append(r.errs, fmt.Errorf("portkey: %w", err))
			pk.stop()
			portkeyURL = ""
		} else {
			g.Portkey.Measured, g.Portkey.URL, g.Portkey.Headers = true, portkeyURL, flatHeaders(portkeyH)
		}
	}

	// The window before the first Helix run shows the dev server's background work.
	if r.pg0, err = b.readPGStats(ctx); err != nil {
		return errors.Join(append(r.errs, err)...)
	}
	r.pg0at = time.Now()
	for _, c := range concurrencies() {
		for round := 1; round <= b.cfg.gwRounds; round++ {
			at := gatewayRound{c: c, round: round}
			b.printf("\n--- concurrency %d, round %d of %d\n", c, round, b.cfg.gwRounds)
			r.direct(ctx, at, load.Options{URL: direct, Body: directBody, Concurrency: c, Duration: b.cfg.gwDuration})
			if portkeyURL != "" {
				if err := r.portkey(ctx, at, load.Options{URL: portkeyURL, Body: directBody, Headers: portkeyH, Concurrency: c, Duration: b.cfg.gwDuration}); err != nil {
					return errors.Join(append(r.errs, err)...)
				}
			}
			helixRuns := []struct {
				users int
				o     load.Options
			}{{1, load.Options{URL: helix, Body: helixBody, Token: oneToken, Concurrency: c, Duration: b.cfg.gwDuration}}}
			if c == gatewayUsers {
				// The 64-user run is the target's; the one-user run, the worst case, comes after it.
				helixRuns = append([]struct {
					users int
					o     load.Options
				}{{gatewayUsers, load.Options{URL: helix, Body: helixBody, Tokens: manyTokens, Concurrency: c, Duration: b.cfg.gwDuration}}}, helixRuns...)
			}
			for _, h := range helixRuns {
				if err := r.helix(ctx, at, h.users, h.o); err != nil {
					return errors.Join(append(r.errs, err)...)
				}
			}
		}
	}
	g.Medians = medians(g.Runs)
	if h, p := g.median(pathHelix, gatewayUsers, gatewayUsers), g.median(pathPortkey, gatewayUsers, 0); h != nil && p != nil && p.RPS > 0 {
		g.HelixOverPortkey = roundTo(h.RPS/p.RPS, 2)
	}
	g.RoundRatios = roundRatios(g.Runs, gatewayUsers)
	if err := r.finishPG(ctx); err != nil {
		r.errs = append(r.errs, err)
	}
	b.printf("\n")
	b.gatewayTable(b.out)

	// Checked while the server still runs: the rows exist because each response waited for them.
	b.printf("\nbookkeeping in Postgres for the users %s* (the sample request included):\n", g.Users)
	if err := b.bookkeeping(ctx, g); err != nil {
		r.errs = append(r.errs, err)
	}
	if g.Portkey.Measured {
		c := check{fmt.Sprintf("mock upstream: %d calls during the Portkey runs for %d requests (one provider call each)", g.PortkeyUpstreamCalls, g.PortkeySent),
			g.PortkeyUpstreamCalls == int64(g.PortkeySent)}
		g.Checks = append(g.Checks, c)
		if c.OK {
			b.printf("  ok      %s\n", c.What)
		} else {
			b.printf("  WRONG   %s\n", c.What)
			r.errs = append(r.errs, errors.New(c.What))
		}
	}
	r.errs = append(r.errs, srv.logErrors())
	b.printf("  info    upstream TCP connections opened by Helix: %d for %d calls; by Portkey: %d for %d calls\n",
		g.UpstreamConns, g.UpstreamCalls, g.PortkeyUpstreamConns, g.PortkeyUpstreamCalls)
	return errors.Join(r.errs...)
}

// gatewaySample sends one request through Helix, shows it, and makes sure the mock answered it.
func (b *bench) gatewaySample(ctx context.Context, url, token string) error {
	status, body, header, err := post(ctx, url, token, helixBody)
	if err != nil {
		return fmt.Errorf("the sample request through Helix failed: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("the sample request through Helix answered %d: %s", status, clip(body, 400))
	}
	b.printf("sample   %s\n", clip(body, 400))
	var helixHeaders []string
	for k, v := range header {
		if strings.HasPrefix(strings.ToLower(k), "x-helix-") {
			helixHeaders = append(helixHeaders, k+": "+strings.Join(v, ","))
		}
	}
	slices.Sort(helixHeaders)
	b.printf("         %s\n", strings.Join(helixHeaders, "  "))
	var answer struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || answer.Model != "deepseek" {
		return fmt.Errorf("the sample was not answered by the deepseek model (the mock): model %q", answer.Model)
	}
	return nil
}

// gatewayRunner runs the loads of step 2 and collects the failures that do not stop it.
type gatewayRunner struct {
	b    *bench
	g    *gatewayResult
	mock string
	errs []error

	lastHelix time.Time // when the dev server last served a request (the sample, a Helix run)
	pg0       pgStats   // at the start of the rounds
	pg0at     time.Time
	pgMarks   []pgMark // just before the first Helix run at each concurrency
}

// direct loads the mock upstream itself.
func (r *gatewayRunner) direct(ctx context.Context, at gatewayRound, o load.Options) {
	s, err := r.b.load(ctx, o)
	r.errs = append(r.errs, err)
	if s.Requests > 0 {
		r.g.Runs = append(r.g.Runs, gatewayRun{Name: fmt.Sprintf("direct-c%d-r%d", at.c, at.round), Path: pathDirect, Round: at.round, Summary: s})
	}
}

// portkey loads Portkey, reading the mock's counters around the run: every request Portkey
// answered must have been one call to the mock. It returns an error only when the counters cannot
// be read.
func (r *gatewayRunner) portkey(ctx context.Context, at gatewayRound, o load.Options) error {
	o.Warmup = r.b.cfg.warmup
	s, up, err := r.aroundMock(ctx, func() (load.Summary, error) {
		return r.b.runLoad(ctx, o, fmt.Sprintf("load: POST %s -body '%s' -c %d -d %s -warmup %s %s",
			o.URL, o.Body, o.Concurrency, o.Duration, o.Warmup, headerLine(o.Headers)))
	})
	if err != nil {
		return err
	}
	run := gatewayRun{Name: fmt.Sprintf("portkey-c%d-r%d", at.c, at.round), Path: pathPortkey, Round: at.round, Summary: s,
		UpstreamCalls: up.Requests, UpstreamConns: up.Connections}
	if s.Requests > 0 {
		r.g.Runs = append(r.g.Runs, run)
	}
	r.g.PortkeySent += s.Sent
	r.g.PortkeyUpstreamCalls += run.UpstreamCalls
	r.g.PortkeyUpstreamConns += run.UpstreamConns
	r.b.printf("  upstream: %d calls from Portkey on %d new TCP connections, for %d requests sent\n", run.UpstreamCalls, run.UpstreamConns, s.Sent)
	return nil
}

// helix loads Helix, reading the mock's counters around the run to see how many provider calls
// and new connections it made. It returns an error only when the counters cannot be read: the
// checks would then count wrong.
func (r *gatewayRunner) helix(ctx context.Context, at gatewayRound, users int, o load.Options) error {
	if n := len(r.pgMarks); n == 0 || r.pgMarks[n-1].c != at.c {
		// What the dev server did before (the sample, the Helix runs at the previous
		// concurrency) must be in before the reading.
		if err := r.settle(ctx); err != nil {
			return err
		}
		s, err := r.b.readPGStats(ctx)
		if err != nil {
			return err
		}
		r.pgMarks = append(r.pgMarks, pgMark{c: at.c, stats: s, at: time.Now()})
	}
	s, up, err := r.aroundMock(ctx, func() (load.Summary, error) {
		s, err := r.b.load(ctx, o)
		r.lastHelix = time.Now()
		return s, err
	})
	if err != nil {
		return err
	}
	name := fmt.Sprintf("helix-c%d-r%d", at.c, at.round)
	if users > 1 {
		name = fmt.Sprintf("helix-c%d-users-r%d", at.c, at.round)
	}
	run := gatewayRun{Name: name, Path: pathHelix, Round: at.round, Users: users, Summary: s,
		UpstreamCalls: up.Requests, UpstreamConns: up.Connections}
	if s.Requests > 0 {
		r.g.Runs = append(r.g.Runs, run)
	}
	r.g.Requests += s.Succeeded
	r.pgMarks[len(r.pgMarks)-1].requests += s.Succeeded
	r.g.UpstreamCalls += run.UpstreamCalls
	r.g.UpstreamConns += run.UpstreamConns
	r.b.printf("  upstream: %d calls from Helix on %d new TCP connections\n", run.UpstreamCalls, run.UpstreamConns)
	return nil
}

// aroundMock runs a load and reads the mock's counters around it: what it returns is the calls
// and new connections the mock saw meanwhile. The load's own error joins r.errs (a failed load
// still counts what it did); the error returned is a counter that could not be read, or the
// step's end.
func (r *gatewayRunner) aroundMock(ctx context.Context, run func() (load.Summary, error)) (load.Summary, stats, error) {
	before, err := mockStats(ctx, r.mock)
	if err != nil {
		return load.Summary{}, stats{}, err
	}
	s, loadErr := run()
	r.errs = append(r.errs, loadErr)
	if err := ctx.Err(); err != nil {
		return s, stats{}, err
	}
	after, err := mockStats(ctx, r.mock)
	if err != nil {
		return s, stats{}, err
	}
	return s, stats{Requests: after.Requests - before.Requests, Connections: after.Connections - before.Connections}, nil
}

// settle waits until the dev server has been idle for statsFlushWait.
func (r *gatewayRunner) settle(ctx context.Context) error {
	if d := statsFlushWait - time.Since(r.lastHelix); d > 0 {
		r.b.printf("  (waiting %.1fs for the dev server's Postgres backends to report their statistics)\n", d.Seconds())
		return sleep(ctx, d)
	}
	return nil
}

// finishPG reads the counters once the last Helix run's statistics are in, and records the
// commits per Helix request.
func (r *gatewayRunner) finishPG(ctx context.Context) error {
	if len(r.pgMarks) == 0 {
		return nil
	}
	b := r.b
	b.printf("\n")
	if err := r.settle(ctx); err != nil {
		return err
	}
	end, err := b.readPGStats(ctx)
	if err != nil {
		return err
	}
	endAt := time.Now()
	first := r.pgMarks[0]
	p := &helixPG{Seconds: roundTo(endAt.Sub(first.at).Seconds(), 1),
		Commits: end.Commits - first.stats.Commits, Rollbacks: end.Rollbacks - first.stats.Rollbacks,
		Background: first.stats.Commits - r.pg0.Commits, BackgroundSeconds: roundTo(first.at.Sub(r.pg0at).Seconds(), 1),
		ByConcurrency: pgWindows(r.pgMarks, end, endAt)}
	for _, m := range r.pgMarks {
		p.Requests += m.requests
	}
	if p.Requests > 0 {
		p.CommitsPerRequest = roundTo(float64(p.Commits)/float64(p.Requests), 3)
	}
	if end.WALErr != nil || first.stats.WALErr != nil {
		p.WALError = errors.Join(end.WALErr, first.stats.WALErr).Error()
	} else {
		p.WALSyncs = end.WALSyncs - first.stats.WALSyncs
		if p.Requests > 0 {
			p.WALSyncsPerRequest = roundTo(float64(p.WALSyncs)/float64(p.Requests), 3)
		}
	}
	r.g.PG = p
	return nil
}

// stats are the mock upstream's counters (GET /stats).
type stats struct {
	Requests    int64 `json:"requests"`
	Connections int64 `json:"connections"`
}

func mockStats(ctx context.Context, mockURL string) (stats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mockURL+"/stats", nil)
	if err != nil {
		return stats{}, err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		return stats{}, fmt.Errorf("read the mock's counters: %w", err)
	}
	defer res.Body.Close()
	var s stats
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil || res.StatusCode != http.StatusOK {
		return stats{}, fmt.Errorf("read the mock's counters: status %d, %v", res.StatusCode, err)
	}
	return s, nil
}

// withConn runs fn on a connection of its own to the bench database.
func (b *bench) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

// setBudgets gives each user a limit no run can reach and the warning threshold as high
// (chat_message is HIGH criticality: above the warning it would wait for an approval instead of
// running).
func (b *bench) setBudgets(ctx context.Context, users []string) error {
	return b.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `
			INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by)
			SELECT u, 1000000000000000, 1000000000000000, 'bench' FROM unnest($1::text[]) AS u
			ON CONFLICT (user_id) DO UPDATE SET daily_limit_nano = EXCLUDED.daily_limit_nano,
				warning_threshold_nano = EXCLUDED.warning_threshold_nano, updated_by = EXCLUDED.updated_by, updated_at = now()`,
			users)
		return err
	})
}

// transactions is the bench database's committed and rolled back transactions so far.
func (b *bench) transactions(ctx context.Context) (int64, error) {
	var n int64
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("read pg_stat_database: %w", err)
	}
	return n, nil
}

// bookkeeping checks that every request Helix answered during the step was reserved, settled and
// logged, by the mock, with one provider call each. It is a check that the load measured what
// it claims; that the books balance under concurrency is tested in shared/app/routeapp.
func (b *bench) bookkeeping(ctx context.Context, g *gatewayResult) error {
	var logged, failedRows, odd, cost, reserved, spent, settled, open int64
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		if err := conn.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success),
			       count(*) FILTER (WHERE success AND (provider IS DISTINCT FROM 'deepseek' OR fallback_used)),
			       COALESCE(sum(cost_nano), 0)
			  FROM ai_operation_log WHERE starts_with(user_id, $1)`, g.Users).Scan(&logged, &failedRows, &odd, &cost); err != nil {
			return fmt.Errorf("read ai_operation_log: %w", err)
		}
		if err := conn.QueryRow(ctx, `
			SELECT COALESCE(sum(reserved_nano), 0), COALESCE(sum(spent_nano), 0)
			  FROM budget_days WHERE starts_with(user_id, $1)`, g.Users).Scan(&reserved, &spent); err != nil {
			return fmt.Errorf("read budget_days: %w", err)
		}
		if err := conn.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE status = 'settled'), count(*) FILTER (WHERE status <> 'settled')
			  FROM budget_reservations WHERE starts_with(user_id, $1)`, g.Users).Scan(&settled, &open); err != nil {
			return fmt.Errorf("read budget_reservations: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	want := int64(g.Requests)
	g.Checks = []check{
		{fmt.Sprintf("ai_operation_log: %d successful rows for %d successful requests", logged, want), logged == want},
		{fmt.Sprintf("ai_operation_log: %d failed rows", failedRows), failedRows == 0},
		{fmt.Sprintf("ai_operation_log: %d rows not answered by deepseek or marked as fallback", odd), odd == 0},
		{fmt.Sprintf("budget_reservations: %d settled, %d not settled", settled, open), settled == want && open == 0},
		{fmt.Sprintf("budget_days.reserved_nano summed over the users = %d", reserved), reserved == 0},
		{fmt.Sprintf("budget_days.spent_nano = %d, sum of logged cost_nano = %d", spent, cost), spent == cost},
		{fmt.Sprintf("mock upstream: %d calls during the Helix runs for %d requests (one provider call each)", g.UpstreamCalls, want-1),
			g.UpstreamCalls+1 == want},
	}
	var wrong []string
	for _, c := range g.Checks {
		verdict := "ok     "
		if !c.OK {
			verdict = "WRONG  "
			wrong = append(wrong, c.What)
		}
		b.printf("  %s %s\n", verdict, c.What)
	}
	if len(wrong) > 0 {
		return fmt.Errorf("bookkeeping: %s", strings.Join(wrong, "; "))
	}
	return nil
}

// pgStats are the bench database's transaction counters and the cluster's WAL syncs.
type pgStats struct {
	Commits, Rollbacks int64
	WALSyncs           int64
	WALErr             error // pg_stat_wal could not be read (Postgres before 14)
}

// readPGStats reads pg_stat_database for the bench database and pg_stat_wal.
func (b *bench) readPGStats(ctx context.Context) (pgStats, error) {
	var s pgStats
	err := b.withConn(ctx, func(conn *pgx.Conn) error {
		if err := conn.QueryRow(ctx, `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).
			Scan(&s.Commits, &s.Rollbacks); err != nil {
			return fmt.Errorf("read pg_stat_database: %w", err)
		}
		if err := conn.QueryRow(ctx, `SELECT wal_sync FROM pg_stat_wal`).Scan(&s.WALSyncs); err != nil {
			s.WALErr = fmt.Errorf("read pg_stat_wal: %w", err)
		}
		return nil
	})
	return s, err
}
