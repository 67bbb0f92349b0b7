package main

// The audit log's steps: sequencing, verification, proofs and the audit function's minute over
// a log of a million entries (on a database of their own, built once and shared by the four
// steps), and the cost of the ai_operation_log trigger on /v1/chat/completions.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/helixhq/helix/infra/load"
	"github.com/helixhq/helix/infra/migrations"
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/auditapp"
	"github.com/helixhq/helix/shared/llm/providers"
	"github.com/helixhq/helix/shared/outbox"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/synthesis"
)

// The audit steps BENCH_ONLY can pick, in the order they run (after synthesis, before sizes).
const (
	stepAuditIntegrate = "audit_integrate"
	stepAuditVerify    = "audit_verify"
	stepAuditProof     = "audit_proof"
	stepAuditRun       = "audit_run"
	stepAuditV1        = "audit_v1"
)

// auditDataSteps are the steps over the big audit database, which any of them builds.
func auditDataSteps() []string {
	return []string{stepAuditIntegrate, stepAuditVerify, stepAuditProof, stepAuditRun}
}

// auditConfig is the audit steps' tunables.
type auditConfig struct {
	entries int // BENCH_AUDIT_ENTRIES: operations in the big log (default 1,000,000)
	proofs  int // BENCH_AUDIT_PROOFS: inclusion and consistency proofs timed, each (default 300)
	rounds  int // BENCH_AUDIT_V1_ROUNDS: /v1 runs with auditing on, and as many off (default 3)
}

const (
	auditInsertChunk = 100_000 // rows of the big log inserted per statement
	auditUsers       = 5000    // users its calls are spread over
	auditBatch       = 5000    // events per integration transaction, as the audit function's
	auditRecent      = 1000    // calls in the minute before an audit run
	auditPending     = 300     // of those, not yet sequenced when the run starts
	// auditRunTimeout is the audit function's deadline (template.yaml's Timeout).
	auditRunTimeout = 55 * time.Second
	// The targets: one audit run under a second; /v1 with auditing off at most 10%
	// faster than with it on.
	targetAuditRun     = time.Second
	targetAuditV1Ratio = 1.10
)

// loadConfigs reads config.go's tunables (BENCH_ONLY included, which knows the audit steps) and
// the audit steps' own. Every bad value is reported at once.
func loadConfigs(getenv func(string) string) (config, auditConfig, error) {
	var errs []string
	positive := func(name string, def int) int {
		v := orDefault(getenv(name), strconv.Itoa(def))
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Sprintf("%s=%q is not a positive number such as %d", name, v, def))
		}
		return n
	}
	ac := auditConfig{
		entries: positive("BENCH_AUDIT_ENTRIES", 1_000_000),
		proofs:  positive("BENCH_AUDIT_PROOFS", 300),
		rounds:  positive("BENCH_AUDIT_V1_ROUNDS", 3),
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return config{}, auditConfig{}, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return cfg, ac, nil
}

// ---- results ----

// auditResult is what the audit steps measured.
type auditResult struct {
	Database  string             `json:"database,omitempty"` // the big log's database (dropped at the end)
	Entries   int                `json:"entries"`            // BENCH_AUDIT_ENTRIES
	Setup     *auditSetup        `json:"setup,omitempty"`
	Integrate *auditIntegration  `json:"integrate,omitempty"`
	Verify    *auditVerification `json:"verify,omitempty"`
	Proofs    *auditProofs       `json:"proofs,omitempty"`
	Runs      []auditRunResult   `json:"runs,omitempty"`
	V1        *auditV1Result     `json:"v1,omitempty"`
}

// auditSetup is the building of the big log: its calls inserted, the trigger writing the events.
type auditSetup struct {
	Rows       int     `json:"ai_operation_log_rows"`
	Seconds    float64 `json:"insert_seconds"`
	RowsPerSec float64 `json:"insert_rows_per_second"` // with the trigger writing audit_pending
}

type auditIntegration struct {
	Entries       int     `json:"entries"`
	Batch         int     `json:"batch"`
	Seconds       float64 `json:"seconds"`
	EntriesPerSec float64 `json:"entries_per_second"`
	Size          int64   `json:"tree_size"`
	// What the log takes on disk afterwards (tables with their indexes).
	EntriesBytes    int64 `json:"audit_entries_bytes"`
	TreeHashBytes   int64 `json:"audit_tree_hashes_bytes"`
	TreeHashes      int64 `json:"audit_tree_hashes_rows"`
	OutboxQueued    int64 `json:"discord_outbox_rows"`
	PendingAfterAll int64 `json:"pending_after"`
}

type auditVerification struct {
	From          int64   `json:"from"`
	Checked       int64   `json:"checked"`
	Size          int64   `json:"size"`
	Root          string  `json:"root"`
	Seconds       float64 `json:"seconds"`
	EntriesPerSec float64 `json:"entries_per_second"`
}

type auditProofs struct {
	Size        int64     `json:"tree_size"`
	Inclusion   latencies `json:"inclusion"`
	Consistency latencies `json:"consistency"`
}

// auditRunResult is one audit minute.
type auditRunResult struct {
	Name          string                                  `json:"name"` // first (cold pool), warm, counted (through the round-trip counting proxy)
	Operations    int64                                   `json:"ai_operation_log_rows"`
	LastMinute    int64                                   `json:"operations_last_minute"`
	PendingBefore int64                                   `json:"pending_before"`
	Seconds       float64                                 `json:"seconds"`
	Steps         map[string]string                       `json:"steps"`
	Integrated    int                                     `json:"integrated"`
	Size          int64                                   `json:"tree_size"`
	Delivered     map[outbox.Channel]outbox.ChannelResult `json:"delivered"`
	Posts         int                                     `json:"webhook_posts"`
	Probes        int                                     `json:"provider_probes"` // model-list calls the probes made
	// FirstPostMS is when the first webhook post arrived, from the run's start: about where
	// the deliver step (the last) began.
	FirstPostMS float64   `json:"first_webhook_post_ms,omitempty"`
	RoundTrips  *pgCounts `json:"postgres_round_trips,omitempty"` // the counted run only
	TargetMet   bool      `json:"target_met"`
}

// auditV1Result is /v1/chat/completions with the audit trigger enabled and disabled.
type auditV1Result struct {
	Database    string         `json:"database"`
	Users       string         `json:"users"`
	Concurrency int            `json:"concurrency"`
	Runs        []auditV1Run   `json:"runs"`
	On          auditV1Medians `json:"on"`
	Off         auditV1Medians `json:"off"`
	// Ratio is the median req/s with the trigger disabled over the median with it enabled;
	// CPURatio the median CPU per request with it enabled over the median with it disabled.
	Ratio    float64 `json:"ratio_off_over_on"`
	Within   bool    `json:"within_10_percent"`
	CPURatio float64 `json:"cpu_per_request_ratio_on_over_off"`
	Checks   []check `json:"checks"`
}

type auditV1Run struct {
	Name    string       `json:"name"` // on-1, off-1, on-2, ...
	Audit   bool         `json:"audit"`
	Summary load.Summary `json:"summary"`
	// What the run left in Postgres: calls logged, operation events recorded (pending or
	// sequenced), and entries the dev server's own audit minute sequenced meanwhile.
	Logged     int64 `json:"ai_operation_log_rows"`
	Events     int64 `json:"operation_events"`
	Sequenced  int64 `json:"sequenced_meanwhile"`
	PendingEnd int64 `json:"pending_at_end"`
	// CPU time the dev server and its database's Postgres backends used per request sent
	// (warm-up included): unlike req/s, barely moved by other work on the machine.
	ServerCPUMS   float64 `json:"devserver_cpu_ms_per_request"`
	PostgresCPUMS float64 `json:"postgres_backends_cpu_ms_per_request"`
	LoadAvg       string  `json:"load_average_after"`
}

type auditV1Medians struct {
	RPS   float64 `json:"requests_per_second"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	// CPUMS is the dev server's and its Postgres backends' CPU ms per request.
	CPUMS float64 `json:"cpu_ms_per_request"`
}

func (b *bench) auditRes() *auditResult {
	if b.res.Audit == nil {
		b.res.Audit = &auditResult{Entries: b.audit.entries}
	}
	return b.res.Audit
}

// ---- databases ----

// databaseURL is serverURL with database name instead.
func databaseURL(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", errors.New("unparsable server URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// adminExec runs one statement on the server's maintenance database.
func (b *bench) adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, b.serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// createDatabase makes a database of the step's own and returns its URL and what drops it (also
// when ctx has ended: an interrupted run leaves nothing behind).
func (b *bench) createDatabase(ctx context.Context, name string) (string, func(), error) {
	u, err := databaseURL(b.serverURL, name)
	if err != nil {
		return "", nil, err
	}
	id := pgx.Identifier{name}.Sanitize()
	if err := b.adminExec(ctx, "CREATE DATABASE "+id); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	b.printf("database %s (created for this step; dropped at its end)\n", redact(u))
	drop := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := b.adminExec(dctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
			b.printf("  could not drop database %s: %v\n", name, err)
			return
		}
		b.printf("dropped database %s\n", name)
	}
	return u, drop, nil
}

// int64s scans a row of n integers.
func int64s(row pgx.Row, n int) ([]int64, error) {
	vals := make([]int64, n)
	dest := make([]any, n)
	for i := range dest {
		dest[i] = &vals[i]
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	return vals, nil
}

// insertOpsSQL inserts ai_operation_log rows $1..$2 (the trigger records each as an audit event)
// with the mix of a real day: most calls on deepseek, a third on Gemini, a few on Claude; 1% failed,
// 1% answered by the fallback. Row i is logged at $3 + (i-1) * $4 microseconds.
const insertOpsSQL = `
INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, input_tokens, output_tokens,
                              cached_input_tokens, reasoning_tokens, cost_nano, latency_ms, success, error_code,
                              fallback_used, created_at)
SELECT 'bench-audit-' || i,
       (ARRAY['chat_message', 'email-compose', 'email-classify', 'memory_synthesis', 'sentiment_analysis', 'task-prioritize'])[1 + i % 6],
       'bench-audit-u' || (i * 7919 % 5000), -- auditUsers
       (ARRAY['deepseek', 'deepseek', 'gemini_flash', 'deepseek', 'gemini_flash', 'deepseek', 'deepseek', 'gemini_flash', 'deepseek', 'deepseek',
              'gemini_flash', 'deepseek', 'deepseek', 'gemini_flash', 'deepseek', 'deepseek', 'gemini_flash', 'deepseek', 'deepseek', 'claude'])[1 + i % 20],
       (ARRAY['deepseek', 'deepseek', 'gemini', 'deepseek', 'gemini', 'deepseek', 'deepseek', 'gemini', 'deepseek', 'deepseek',
              'gemini', 'deepseek', 'deepseek', 'gemini', 'deepseek', 'deepseek', 'gemini', 'deepseek', 'deepseek', 'anthropic'])[1 + i % 20],
       200 + (i * 31) % 3000, 20 + (i * 17) % 800, ((i * 13) % 5) * 256, ((i * 7) % 4) * 50,
       2000 + (i * 997) % 900000, 150 + (i * 389) % 2500,
       i % 100 <> 0, CASE WHEN i % 100 = 0 THEN 'provider_error' END, i % 100 = 50,
       $3::timestamptz + ((i - 1) * $4::bigint) * interval '1 microsecond'
  FROM generate_series($1::bigint, $2::bigint) AS i`

// execOps logs calls first..last (row numbers), the first at firstAt and each next one step later.
func execOps(ctx context.Context, pool *pgxpool.Pool, first, last int64, firstAt time.Time, step time.Duration) error {
	base := firstAt.Add(-time.Duration(first-1) * step)
	_, err := pool.Exec(ctx, insertOpsSQL, first, last, base, step.Microseconds())
	if err != nil {
		return fmt.Errorf("insert ai_operation_log rows %d..%d: %w", first, last, err)
	}
	return nil
}

// ---- the big log (steps 1 to 4) ----

// auditData is the big log's database, built once for the steps over it.
type auditData struct {
	b     *bench
	url   string
	pool  *pgxpool.Pool
	drop  func()
	log   *auditstore.Log
	ready error // why the steps over it cannot run (nil: they can)
	// next is the next ai_operation_log row number; integrated says the setup's events are
	// sequenced.
	next       int64
	integrated bool
}

func (b *bench) newAuditData() *auditData {
	return &auditData{b: b, ready: errors.New("not run: the audit log's database was not built")}
}

// needs runs fn only when the big log is there.
func (a *auditData) needs(fn func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if a.ready != nil {
			return a.ready
		}
		return fn(ctx)
	}
}

// needsIntegrated runs fn only when the big log is there and sequenced.
func (a *auditData) needsIntegrated(fn func(context.Context) error) func(context.Context) error {
	return a.needs(func(ctx context.Context) error {
		if !a.integrated {
			return errors.New("not run: the audit log's events were not sequenced")
		}
		return fn(ctx)
	})
}

// close drops the database; it may be called again.
func (a *auditData) close() {
	if a.pool != nil {
		a.pool.Close()
		a.pool = nil
	}
	if a.drop != nil {
		a.drop()
		a.drop = nil
	}
}

// prepare creates the database, applies the migrations as `make migrate` does, and logs the
// setup's calls over the last day (a statement per auditInsertChunk rows, generate_series), so
// the trigger writes their audit events; when step 1 is not wanted it sequences them too.
func (a *auditData) prepare(ctx context.Context) error {
	b := a.b
	r := b.auditRes()
	u, drop, err := b.createDatabase(ctx, "helix_bench_audit_"+strings.ToLower(b.stamp))
	if err != nil {
		return err
	}
	a.url, a.drop = u, drop
	r.Database = redact(u)
	if err := migrations.Up(ctx, u, nil); err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, postgres.PoolConfig{URL: u, MaxConns: 4, ApplicationName: "helix-bench-audit"})
	if err != nil {
		return err
	}
	a.pool, a.log = pool, auditstore.New(pool)

	n := int64(b.audit.entries)
	// The day before now, ending two minutes ago: the audit run's last minute is its own.
	end := time.Now().Add(-2 * time.Minute)
	start := end.Add(-24 * time.Hour)
	step := 24 * time.Hour / time.Duration(n)
	b.printf("$ INSERT INTO ai_operation_log ... SELECT ... FROM generate_series(1, %d)  # %d rows a statement; created_at %s .. %s; %d users; 1%% failed, 1%% fallback\n",
		n, auditInsertChunk, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), auditUsers)
	t0 := time.Now()
	for first := int64(1); first <= n; first += auditInsertChunk {
		last := min(n, first+auditInsertChunk-1)
		if err := execOps(ctx, pool, first, last, start.Add(time.Duration(first-1)*step), step); err != nil {
			return err
		}
		if last%(5*auditInsertChunk) == 0 || last == n {
			b.printf("  %d rows (%.0fs)\n", last, time.Since(t0).Seconds())
		}
	}
	secs := time.Since(t0).Seconds()
	a.next = n + 1
	r.Setup = &auditSetup{Rows: int(n), Seconds: roundTo(secs, 2), RowsPerSec: roundTo(float64(n)/secs, 0)}
	pending, err := a.log.Pending(ctx)
	if err != nil {
		return err
	}
	b.printf("  %d ai_operation_log rows in %.1fs: %.0f rows/s, the trigger writing each one's event (%d pending)\n", n, secs, float64(n)/secs, pending)
	if pending != n {
		return fmt.Errorf("audit_pending holds %d events for %d logged calls: the trigger did not record each once", pending, n)
	}
	// Statistics as autovacuum would have them after such a load, so the plans are a day's.
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		return err
	}
	a.ready = nil
	if !b.cfg.wanted(stepAuditIntegrate) {
		b.printf("sequencing them (step %s not wanted: timed, not a step of its own)\n", stepAuditIntegrate)
		return a.integrate(ctx)
	}
	return nil
}

// integrate is step 1: IntegrateAll over every pending event, in auditapp's batches.
func (a *auditData) integrate(ctx context.Context) error {
	b := a.b
	pending, err := a.log.Pending(ctx)
	if err != nil {
		return err
	}
	b.printf("$ auditstore.Log.IntegrateAll(ctx, %d)  # %d pending events, an empty chain\n", auditBatch, pending)
	t0 := time.Now()
	got, err := a.log.IntegrateAll(ctx, auditBatch)
	secs := time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	it := &auditIntegration{Entries: got.Entries, Batch: auditBatch, Seconds: roundTo(secs, 2),
		EntriesPerSec: roundTo(float64(got.Entries)/secs, 0), Size: got.Size}
	b.auditRes().Integrate = it
	vals, err := int64s(a.pool.QueryRow(ctx, `SELECT pg_total_relation_size('audit_entries'), pg_total_relation_size('audit_tree_hashes'),
		(SELECT count(*) FROM audit_tree_hashes), (SELECT count(*) FROM discord_outbox), (SELECT count(*) FROM audit_pending)`), 5)
	if err != nil {
		return err
	}
	it.EntriesBytes, it.TreeHashBytes, it.TreeHashes, it.OutboxQueued, it.PendingAfterAll = vals[0], vals[1], vals[2], vals[3], vals[4]
	b.printf("  %d entries in %.2fs: %.0f entries/s; tree size %d\n", got.Entries, secs, it.EntriesPerSec, got.Size)
	b.printf("  on disk: audit_entries %s, audit_tree_hashes %s (%d hashes); %d Discord messages queued; %d still pending\n",
		mib(it.EntriesBytes), mib(it.TreeHashBytes), it.TreeHashes, it.OutboxQueued, it.PendingAfterAll)
	if int64(got.Entries) != pending || got.Size != pending || it.PendingAfterAll != 0 || got.Busy {
		return fmt.Errorf("sequenced %d of %d events (tree size %d, %d left, busy %v)", got.Entries, pending, got.Size, it.PendingAfterAll, got.Busy)
	}
	a.integrated = true
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// verify is step 2: the whole chain and tree re-walked from entry 0.
func (a *auditData) verify(ctx context.Context) error {
	b := a.b
	b.printf("$ auditstore.Log.Verify(ctx, 0, nil)  # no checkpoints yet\n")
	t0 := time.Now()
	rep, err := a.log.Verify(ctx, 0, nil)
	secs := time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	v := &auditVerification{From: rep.From, Checked: rep.Checked, Size: rep.Size, Root: rep.Root.String(),
		Seconds: roundTo(secs, 2), EntriesPerSec: roundTo(float64(rep.Checked)/secs, 0)}
	b.auditRes().Verify = v
	b.printf("  %d entries checked in %.2fs: %.0f entries/s; size %d, root %s\n", rep.Checked, secs, v.EntriesPerSec, rep.Size, v.Root)
	if rep.Broken != nil {
		return fmt.Errorf("verification found the log broken: %v", rep.Broken)
	}
	head, err := a.log.Head(ctx)
	if err != nil {
		return err
	}
	root, err := a.log.Root(ctx, head.Size)
	if err != nil {
		return err
	}
	if rep.Size != head.Size || rep.Checked != head.Size || rep.Root != root {
		return fmt.Errorf("verification walked %d of %d entries to root %s, the tree's is %s", rep.Checked, head.Size, rep.Root, root)
	}
	return nil
}

// proofs is step 3: inclusion proofs of random entries in the whole tree and consistency proofs
// between random sizes, each timed, then checked (untimed) as an auditor would.
func (a *auditData) proofs(ctx context.Context) error {
	b := a.b
	head, err := a.log.Head(ctx)
	if err != nil {
		return err
	}
	size, n := head.Size, b.audit.proofs
	rng := mrand.New(mrand.NewPCG(uint64(size), 6962)) // the same proofs for the same size
	b.printf("$ auditstore.Log.InclusionProof(ctx, seq, %d)  x %d random seqs\n", size, n)
	incl := make([]time.Duration, 0, n)
	for range n {
		seq := rng.Int64N(size)
		t0 := time.Now()
		proof, leaf, root, err := a.log.InclusionProof(ctx, seq, size)
		incl = append(incl, time.Since(t0))
		if err != nil {
			return fmt.Errorf("inclusion proof of %d in %d: %w", seq, size, err)
		}
		if err := tlog.CheckRecord(proof, size, root, seq, leaf); err != nil {
			return fmt.Errorf("inclusion proof of %d in %d does not check: %w", seq, size, err)
		}
	}
	b.printf("$ auditstore.Log.ConsistencyProof(ctx, from, to)  x %d random 1 <= from <= to <= %d\n", n, size)
	cons := make([]time.Duration, 0, n)
	for range n {
		from := 1 + rng.Int64N(size)
		to := from + rng.Int64N(size-from+1)
		t0 := time.Now()
		proof, fromRoot, toRoot, err := a.log.ConsistencyProof(ctx, from, to)
		cons = append(cons, time.Since(t0))
		if err != nil {
			return fmt.Errorf("consistency proof %d..%d: %w", from, to, err)
		}
		if err := tlog.CheckTree(proof, to, toRoot, from, fromRoot); err != nil {
			return fmt.Errorf("consistency proof %d..%d does not check: %w", from, to, err)
		}
	}
	p := &auditProofs{Size: size, Inclusion: summarizeLatencies(incl), Consistency: summarizeLatencies(cons)}
	b.auditRes().Proofs = p
	b.printf("\n")
	proofsTable(b.out, p)
	return nil
}

// webhookSink is a local Discord stand-in answering every webhook post 204, and the model list
// the deepseek probe asks for.
type webhookSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	posts  []time.Time
	probes []time.Time
}

func newWebhookSink() *webhookSink {
	s := &webhookSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/models"):
			s.mu.Lock()
			s.probes = append(s.probes, time.Now())
			s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"deepseek-chat","object":"model","owned_by":"deepseek"}]}`)
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/webhooks/"):
			s.mu.Lock()
			s.posts = append(s.posts, time.Now())
			s.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	return s
}

// since is the webhook posts received after t and when the first of them arrived, and the
// probes received after t.
func (s *webhookSink) since(t time.Time) (int, time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	probes := 0
	for _, p := range s.probes {
		if p.After(t) {
			probes++
		}
	}
	n, first := 0, time.Duration(0)
	for _, p := range s.posts {
		if p.After(t) {
			if n == 0 {
				first = p.Sub(t)
			}
			n++
		}
	}
	return n, first, probes
}

// discardQueue takes the synthesis sweep's jobs (the setup has no conversations: it sends none).
type discardQueue struct{}

func (discardQueue) Enqueue(context.Context, synthesis.Job) error { return nil }

// lockedWriter is the minute's log, written from its goroutines.
type lockedWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// run is step 4: the audit function's minute as the Lambda runs it (app.Boot, providers.New,
// auditapp.New, Run) over the big log in a steady state: the day's calls sequenced and their
// Discord messages delivered, the last minute's auditRecent calls logged and all but
// auditPending of them sequenced. Then the next minute on the same core (warm), and a third
// through the round-trip counting proxy.
func (a *auditData) run(ctx context.Context) error {
	b := a.b
	sink := newWebhookSink()
	defer sink.srv.Close()
	skey, vkey, err := note.GenerateKey(rand.Reader, "helix-audit-bench")
	if err != nil {
		return err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	logs := &lockedWriter{}
	boot := func(dbURL string) (*app.Core, *auditapp.Audit, error) {
		environ := []string{"DATABASE_URL=" + dbURL, "HELIX_AUDIT_SIGNING_KEY=" + skey,
			"DEEPSEEK_API_KEY=bench", "DEEPSEEK_BASE_URL=" + sink.srv.URL + "/deepseek"}
		for _, ch := range outbox.Channels() {
			environ = append(environ, ch.EnvVar()+"="+sink.srv.URL+"/api/webhooks/1/"+string(ch))
		}
		core, err := app.Boot(ctx, app.Options{Function: "audit", Environ: environ, LogOut: logs})
		if err != nil {
			return nil, nil, fmt.Errorf("cold start: %w", err)
		}
		registry, err := providers.New(ctx, core.Config.Providers, providers.NewHTTPClient())
		if err != nil {
			core.Pool.Close()
			return nil, nil, err
		}
		audit, err := auditapp.New(core, discardQueue{}, registry)
		if err != nil {
			core.Pool.Close()
			return nil, nil, err
		}
		return core, audit, nil
	}
	core, audit, err := boot(a.url)
	if err != nil {
		return err
	}
	defer core.Pool.Close()
	b.printf("audit function booted as the Lambda boots (app.Boot, providers.New, auditapp.New): webhooks on %s answering 204, deepseek probed there, signing key %s\n",
		sink.srv.URL, strings.SplitN(vkey, "+", 2)[0])

	// The steady state: the last minute's calls, all but auditPending sequenced by the previous
	// minute, whose Discord messages (and the day's) were delivered; tables vacuumed as
	// autovacuum keeps them over a day.
	for _, t := range []string{"audit_pending", "discord_outbox", "ai_operation_log", "audit_entries", "audit_tree_hashes", "budget_reservations"} {
		if _, err := a.pool.Exec(ctx, "VACUUM (ANALYZE) "+t); err != nil {
			return err
		}
	}
	from := time.Now().Add(-58 * time.Second) // the minute's window, with room for the preparation below
	step := 58 * time.Second / auditRecent
	sequenced := int64(auditRecent - auditPending)
	if err := execOps(ctx, a.pool, a.next, a.next+sequenced-1, from, step); err != nil {
		return err
	}
	if _, err := a.log.IntegrateAll(ctx, auditBatch); err != nil {
		return err
	}
	if _, err := a.pool.Exec(ctx, `UPDATE discord_outbox SET delivered_at = now(), attempts = 1 WHERE delivered_at IS NULL`); err != nil {
		return err
	}
	if err := execOps(ctx, a.pool, a.next+sequenced, a.next+auditRecent-1, from.Add(time.Duration(sequenced)*step), step); err != nil {
		return err
	}
	a.next += auditRecent

	minute := func(name string, audit *auditapp.Audit) (auditRunResult, error) {
		vals, err := int64s(a.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM ai_operation_log),
			(SELECT count(*) FROM ai_operation_log WHERE created_at > now() - interval '1 minute'), (SELECT count(*) FROM audit_pending)`), 3)
		if err != nil {
			return auditRunResult{}, err
		}
		r := auditRunResult{Name: name, Operations: vals[0], LastMinute: vals[1], PendingBefore: vals[2]}
		rctx, cancel := context.WithTimeout(ctx, auditRunTimeout)
		t0 := time.Now()
		res := audit.Run(rctx)
		d := time.Since(t0)
		cancel()
		var first time.Duration
		r.Posts, first, r.Probes = sink.since(t0)
		r.Seconds, r.Steps, r.Integrated, r.Size, r.Delivered = roundTo(d.Seconds(), 4), res.Steps, res.Integrated, res.Size, res.Delivered
		r.FirstPostMS = roundTo(load.Millis(first), 1)
		r.TargetMet = d < targetAuditRun
		return r, nil
	}
	runs := []struct {
		name string
		note string
	}{
		{"first", "the first minute after the cold start (the pool connects during it)"},
		{"warm", fmt.Sprintf("the next minute on the same core, %d more calls pending", auditPending)},
		{"counted", "a minute on a core of its own whose connections go through the round-trip counting proxy"},
	}
	// The counted minute's core: connections through the proxy (booted and closed with it).
	counted := func(run func(*auditapp.Audit, *pgProxy) error) error {
		proxy, err := startPGProxy(a.url)
		if err != nil {
			return err
		}
		defer proxy.close()
		viaProxy, err := proxy.url(a.url)
		if err != nil {
			return err
		}
		c, au, err := boot(viaProxy)
		if err != nil {
			return err
		}
		defer c.Pool.Close()
		return run(au, proxy)
	}
	var errs []error
	for i, rn := range runs {
		if i > 0 {
			// The next minute's calls, just logged.
			if err := execOps(ctx, a.pool, a.next, a.next+auditPending-1, time.Now().Add(-5*time.Second), 10*time.Millisecond); err != nil {
				return err
			}
			a.next += auditPending
		}
		b.printf("\n$ auditapp.Audit.Run(ctx)  # %s, deadline %s\n", rn.note, auditRunTimeout)
		var r auditRunResult
		if rn.name == "counted" {
			err = counted(func(au *auditapp.Audit, proxy *pgProxy) error {
				c0 := proxy.counts()
				var err error
				r, err = minute(rn.name, au)
				rt := proxy.counts().minus(c0)
				r.RoundTrips = &rt
				return err
			})
		} else {
			r, err = minute(rn.name, audit)
		}
		if err != nil {
			return err
		}
		b.auditRes().Runs = append(b.auditRes().Runs, r)
		b.printRun(r)
		for _, s := range slices.Sorted(maps.Keys(r.Steps)) {
			if r.Steps[s] != "ok" {
				errs = append(errs, fmt.Errorf("audit run %s: step %s: %s", rn.name, s, r.Steps[s]))
			}
		}
	}

	// The minute signed a checkpoint of the tree as it found it: it verifies with the key, and
	// the log walks from it to the end.
	cps, err := a.log.Checkpoints(ctx, 1)
	if err != nil {
		return err
	}
	if len(cps) == 1 {
		rep, err := a.log.Verify(ctx, cps[0].Size, note.VerifierList(verifier))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("verify from the last checkpoint: %w", err))
		case rep.Broken != nil:
			errs = append(errs, fmt.Errorf("verify from the last checkpoint: %v", rep.Broken))
		default:
			b.printf("\n  ok      the last checkpoint (size %d) verifies with the signing key, and the stored tree at its size has its root (%d entries after it)\n", cps[0].Size, rep.Checked)
		}
	} else {
		errs = append(errs, errors.New("no checkpoint was saved"))
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`) {
			b.printf("  log     %s\n", clip(line, 300))
		}
	}
	return errors.Join(errs...)
}

// runSteps is the minute's steps in the order they run.
var auditRunSteps = []string{"sweep_reservations", "synthesis_sweep", "provider_probes", "integrate",
	"heartbeat", "integrate_heartbeat", "checkpoint", "api_digest", "deliver"}

func (b *bench) printRun(r auditRunResult) {
	verdict := "target met"
	if !r.TargetMet {
		verdict = "target missed"
	}
	b.printf("  %.3f s (target < %s: %s); %d calls logged, %d in the last minute, %d pending before; %d sequenced, tree size %d\n",
		r.Seconds, targetAuditRun, verdict, r.Operations, r.LastMinute, r.PendingBefore, r.Integrated, r.Size)
	var parts []string
	for _, s := range auditRunSteps {
		if o, ok := r.Steps[s]; ok {
			parts = append(parts, s+" "+o)
		}
	}
	for s, o := range r.Steps {
		if !slices.Contains(auditRunSteps, s) {
			parts = append(parts, s+" "+o)
		}
	}
	b.printf("  steps   %s\n", strings.Join(parts, ", "))
	var del []string
	for _, ch := range outbox.Channels() {
		if d, ok := r.Delivered[ch]; ok && (d.Delivered > 0 || d.Failed > 0 || d.Note != "") {
			s := fmt.Sprintf("%s %d", ch, d.Delivered)
			if d.Failed > 0 {
				s += fmt.Sprintf(" (%d failed)", d.Failed)
			}
			if d.Note != "" {
				s += " (" + d.Note + ")"
			}
			del = append(del, s)
		}
	}
	b.printf("  discord %d webhook posts, the first %.0f ms into the run; delivered: %s; provider probes answered: %d\n",
		r.Posts, r.FirstPostMS, strings.Join(del, ", "), r.Probes)
	if r.RoundTrips != nil {
		b.printf("  postgres %s\n", r.RoundTrips)
	}
}

// ---- step 5: /v1 with the audit trigger on and off ----

// auditV1 loads /v1/chat/completions at concurrency 64, 64 users, as the gateway step's many-user
// run does, on a dev server over a database of its own, alternating the ai_operation_log trigger
// enabled (auditing on) and disabled (off) between runs, BENCH_AUDIT_V1_ROUNDS times each.
func (b *bench) auditV1(ctx context.Context) error {
	r := &auditV1Result{Concurrency: gatewayUsers}
	b.auditRes().V1 = r
	dbURL, drop, err := b.createDatabase(ctx, "helix_bench_audit_v1_"+strings.ToLower(b.stamp))
	if err != nil {
		return err
	}
	defer drop()
	r.Database = redact(dbURL)
	mock, err := b.startMock(ctx)
	if err != nil {
		return err
	}
	defer mock.stop()
	srv, err := b.startDevServerOn(ctx, "audit-v1", dbURL, "HELIX_DB_EXEC_MODE=exec", "DEEPSEEK_API_KEY=bench", "DEEPSEEK_BASE_URL="+mock.url)
	if err != nil {
		return err
	}
	defer srv.stop()
	if !srv.waitLog(ctx, "deepseek: live", 2*time.Second) {
		return fmt.Errorf("the dev server does not call the mock for deepseek: %s", srv.logText())
	}

	// The gateway step's users, budgets and request, on this database (the dev server migrated it).
	onDB := *b
	onDB.dbURL = dbURL
	prefix := "bench-audit-v1-" + strings.ToLower(b.stamp)
	r.Users = prefix + "-"
	users := make([]string, gatewayUsers)
	tokens := make([]string, gatewayUsers)
	for i := range users {
		users[i] = fmt.Sprintf("%s-u%02d", prefix, i+1)
		if tokens[i], err = b.tokens.token(users[i]); err != nil {
			return err
		}
	}
	if err := onDB.setBudgets(ctx, users); err != nil {
		return fmt.Errorf("set the bench users' budgets: %w", err)
	}
	helix := srv.url + "/v1/chat/completions"
	b.printf("helix    POST %s  %s  (%d users, one per worker)\n", helix, helixBody, len(users))
	if err := b.gatewaySample(ctx, helix, tokens[0]); err != nil {
		return err
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	setAudit := func(ctx context.Context, on bool) error {
		verb := "DISABLE"
		if on {
			verb = "ENABLE"
		}
		_, err := conn.Exec(ctx, "ALTER TABLE ai_operation_log "+verb+" TRIGGER helix_audit_operation")
		return err
	}
	// Whatever happens, the database is left auditing (it is dropped anyway).
	defer func() { _ = setAudit(context.WithoutCancel(ctx), true) }()
	counts := func() ([]int64, error) {
		return int64s(conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM ai_operation_log),
			(SELECT count(*) FROM audit_pending WHERE kind = 'operation') + (SELECT count(*) FROM audit_entries WHERE kind = 'operation'),
			(SELECT count(*) FROM audit_entries), (SELECT count(*) FROM audit_pending)`), 4)
	}

	devPid := srv.cmd.Process.Pid
	cpu := func() (cpuSample, error) {
		rows, _ := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return cpuSample{}, err
		}
		return sampleCPU(devPid, pids)
	}

	var errs []error
	for round := 1; round <= b.audit.rounds; round++ {
		for _, on := range []bool{true, false} {
			name := fmt.Sprintf("off-%d", round)
			if on {
				name = fmt.Sprintf("on-%d", round)
			}
			if err := setAudit(ctx, on); err != nil {
				return errors.Join(append(errs, fmt.Errorf("set the audit trigger: %w", err))...)
			}
			b.printf("\n$ psql -c 'ALTER TABLE ai_operation_log %s TRIGGER helix_audit_operation'  # %s\n",
				map[bool]string{true: "ENABLE", false: "DISABLE"}[on], name)
			c0, err := counts()
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			cpu0, err := cpu()
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			s, loadErr := b.load(ctx, load.Options{URL: helix, Body: helixBody, Tokens: tokens, Concurrency: gatewayUsers, Duration: b.cfg.gwDuration})
			errs = append(errs, loadErr)
			if err := ctx.Err(); err != nil {
				return errors.Join(append(errs, err)...)
			}
			cpu1, err := cpu()
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			c1, err := counts()
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			run := auditV1Run{Name: name, Audit: on, Summary: s, Logged: c1[0] - c0[0], Events: c1[1] - c0[1], Sequenced: c1[2] - c0[2], PendingEnd: c1[3],
				LoadAvg: loadAverage()}
			if s.Sent > 0 {
				server, pg := cpu1.minus(cpu0)
				run.ServerCPUMS = roundTo(load.Millis(server)/float64(s.Sent), 3)
				run.PostgresCPUMS = roundTo(load.Millis(pg)/float64(s.Sent), 3)
			}
			r.Runs = append(r.Runs, run)
			b.printf("  postgres: %d calls logged, %d operation events recorded, %d entries sequenced meanwhile by the dev server's integrator, %d pending\n",
				run.Logged, run.Events, run.Sequenced, run.PendingEnd)
			b.printf("  cpu per request: dev server %.3f ms, its Postgres backends %.3f ms; load average now %s\n", run.ServerCPUMS, run.PostgresCPUMS, run.LoadAvg)
		}
	}
	r.On, r.Off = v1Medians(r.Runs, true), v1Medians(r.Runs, false)
	if r.On.RPS > 0 {
		r.Ratio = roundTo(r.Off.RPS/r.On.RPS, 3)
		r.Within = r.Ratio <= targetAuditV1Ratio
	}
	if r.Off.CPUMS > 0 {
		r.CPURatio = roundTo(r.On.CPUMS/r.Off.CPUMS, 3)
	}
	b.printf("\n")
	v1Table(b.out, r)

	// The trigger did what each run claims: every call logged with auditing on has its event,
	// none logged with it off.
	var onLogged, onEvents, offLogged, offEvents int64
	for _, run := range r.Runs {
		if run.Audit {
			onLogged, onEvents = onLogged+run.Logged, onEvents+run.Events
		} else {
			offLogged, offEvents = offLogged+run.Logged, offEvents+run.Events
		}
	}
	r.Checks = []check{
		{fmt.Sprintf("auditing on: %d operation events for %d calls logged", onEvents, onLogged), onEvents == onLogged && onLogged > 0},
		{fmt.Sprintf("auditing off: %d operation events for %d calls logged", offEvents, offLogged), offEvents == 0 && offLogged > 0},
	}
	b.printf("\n")
	errs = append(errs, b.printChecks("audit trigger", r.Checks), srv.logErrors())
	return errors.Join(errs...)
}

// v1Medians is the median req/s, p50 and p99 of the runs with auditing on (or off).
func v1Medians(runs []auditV1Run, on bool) auditV1Medians {
	var rps, p50, p99, cpu []float64
	for _, r := range runs {
		if r.Audit == on && r.Summary.Requests > 0 {
			rps = append(rps, r.Summary.RPS)
			p50 = append(p50, load.Millis(r.Summary.P50))
			p99 = append(p99, load.Millis(r.Summary.P99))
			cpu = append(cpu, r.ServerCPUMS+r.PostgresCPUMS)
		}
	}
	return auditV1Medians{RPS: roundTo(median(rps), 1), P50MS: roundTo(median(p50), 3), P99MS: roundTo(median(p99), 3), CPUMS: roundTo(median(cpu), 3)}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ---- tables ----

func proofsTable(w io.Writer, p *auditProofs) {
	fmt.Fprintf(w, "proofs in the tree of %d entries (%d of each, random; each checked with tlog)\n", p.Size, p.Inclusion.N)
	fmt.Fprintf(w, "  %-12s %10s %10s %10s %10s\n", "", "p50 ms", "p90 ms", "p99 ms", "max ms")
	row := func(label string, l latencies) {
		fmt.Fprintf(w, "  %-12s %10.3f %10.3f %10.3f %10.3f\n", label, load.Millis(l.P50), load.Millis(l.P90), load.Millis(l.P99), load.Millis(l.Max))
	}
	row("inclusion", p.Inclusion)
	row("consistency", p.Consistency)
}

func v1Table(w io.Writer, r *auditV1Result) {
	fmt.Fprintf(w, "/v1/chat/completions at -c %d, %d users, audit trigger enabled vs disabled (alternating runs; medians)\n", r.Concurrency, gatewayUsers)
	fmt.Fprintf(w, "  %-10s %10s %10s %10s %12s %12s  %s\n", "run", "req/s", "p50 ms", "p99 ms", "cpu ms/req", "sequenced", "load after")
	for _, run := range r.Runs {
		s := run.Summary
		fmt.Fprintf(w, "  %-10s %10.0f %10.3f %10.3f %12.3f %12d  %s\n", run.Name, s.RPS, load.Millis(s.P50), load.Millis(s.P99),
			run.ServerCPUMS+run.PostgresCPUMS, run.Sequenced, run.LoadAvg)
	}
	fmt.Fprintf(w, "  %-10s %10.0f %10.3f %10.3f %12.3f\n", "median on", r.On.RPS, r.On.P50MS, r.On.P99MS, r.On.CPUMS)
	fmt.Fprintf(w, "  %-10s %10.0f %10.3f %10.3f %12.3f\n", "median off", r.Off.RPS, r.Off.P50MS, r.Off.P99MS, r.Off.CPUMS)
	verdict := "target missed: auditing on costs more than 10%"
	if r.Within {
		verdict = "target met: within 10%"
	}
	fmt.Fprintf(w, "  off/on req/s = %.3f (%s); cpu per request on/off = %.3f\n", r.Ratio, verdict, r.CPURatio)
	fmt.Fprintf(w, "  (cpu: the dev server's and its Postgres backends', per request sent; sequenced: entries the dev server's own integrator sequenced during the run)\n")
}

// auditTable is the audit steps' summary.
func (b *bench) auditTable(w io.Writer) {
	r := b.res.Audit
	if r.Setup != nil {
		fmt.Fprintf(w, "audit log (%d operations on a database of their own; batches of %d)\n", r.Entries, auditBatch)
	} else {
		fmt.Fprintln(w, "audit log")
	}
	if s := r.Setup; s != nil {
		fmt.Fprintf(w, "  %-34s %10.0f rows/s     (%d ai_operation_log rows in %.1f s, the trigger writing audit_pending)\n", "setup insert", s.RowsPerSec, s.Rows, s.Seconds)
	}
	if it := r.Integrate; it != nil {
		fmt.Fprintf(w, "  %-34s %10.0f entries/s  (%d entries in %.1f s)\n", "integrate (IntegrateAll)", it.EntriesPerSec, it.Entries, it.Seconds)
	}
	if v := r.Verify; v != nil {
		fmt.Fprintf(w, "  %-34s %10.0f entries/s  (%d entries in %.1f s)\n", "verify from 0 (Verify)", v.EntriesPerSec, v.Checked, v.Seconds)
	}
	if p := r.Proofs; p != nil {
		fmt.Fprintf(w, "  %-34s p50 %.3f ms, p99 %.3f ms\n", fmt.Sprintf("inclusion proof at %d", p.Size), load.Millis(p.Inclusion.P50), load.Millis(p.Inclusion.P99))
		fmt.Fprintf(w, "  %-34s p50 %.3f ms, p99 %.3f ms\n", fmt.Sprintf("consistency proof at %d", p.Size), load.Millis(p.Consistency.P50), load.Millis(p.Consistency.P99))
	}
	for _, run := range r.Runs {
		verdict := "target met"
		if !run.TargetMet {
			verdict = "target missed"
		}
		bad := 0
		for _, o := range run.Steps {
			if o != "ok" {
				bad++
			}
		}
		extra := ""
		if run.RoundTrips != nil {
			extra = fmt.Sprintf("; %d Postgres round trips", run.RoundTrips.roundTrips())
		}
		fmt.Fprintf(w, "  %-34s %10.3f s          (target < 1 s: %s; %d pending, %d steps of %d ok%s)\n",
			"audit run ("+run.Name+")", run.Seconds, verdict, run.PendingBefore, len(run.Steps)-bad, len(run.Steps), extra)
	}
	if v := r.V1; v != nil && len(v.Runs) > 0 {
		verdict := "target missed"
		if v.Within {
			verdict = "target met"
		}
		fmt.Fprintf(w, "  %-34s %10.0f req/s      (off %.0f req/s; off/on %.3f, within 10%%: %s; cpu ms/req on %.3f, off %.3f)\n",
			fmt.Sprintf("/v1 -c %d, auditing on", v.Concurrency), v.On.RPS, v.Off.RPS, v.Ratio, verdict, v.On.CPUMS, v.Off.CPUMS)
	}
}

// ---- CPU accounting (Linux /proc) ----

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times (100 on every Linux build Helix
// runs on).
const clockTicks = 100

// cpuSample is the CPU time, user plus system, of the dev server and of each Postgres backend.
type cpuSample struct {
	server   time.Duration
	backends map[int32]time.Duration
}

func sampleCPU(server int, backends []int32) (cpuSample, error) {
	s := cpuSample{backends: map[int32]time.Duration{}}
	var err error
	if s.server, err = procCPU(server); err != nil {
		return s, err
	}
	for _, pid := range backends {
		if d, err := procCPU(int(pid)); err == nil { // a backend may have exited since
			s.backends[pid] = d
		}
	}
	return s, nil
}

// minus is the dev server's and the backends' CPU time from o to s; a backend that started in
// between counts whole.
func (s cpuSample) minus(o cpuSample) (server, backends time.Duration) {
	for pid, d := range s.backends {
		backends += d - o.backends[pid]
	}
	return s.server - o.server, backends
}

// procCPU is a process's user and system time so far.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: the fields after it
	// start at the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
