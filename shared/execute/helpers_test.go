package execute_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/toggles"
)

// Seeded prices in nano-USD per token (the table's per-1M prices divided by 1e6), for
// hand-computed costs: DeepSeek $0.28 / $0.42 / $0.028, Gemini Flash-Lite $0.10 / $0.40 / $0.01,
// Claude Haiku $1 / $5 / $0.10 per 1M tokens.
const (
	deepseekIn, deepseekOut, deepseekCached = 280, 420, 28
	geminiIn, geminiOut, geminiCached       = 100, 400, 10
	claudeIn, claudeOut, claudeCached       = 1000, 5000, 100
	// Claude's 1-hour cache writes cost $2 per 1M input tokens: a worst case prices Claude's
	// input at that, the dearest an input token can be there.
	claudeWorstIn = 2000

	composeMaxOutput = 1024 // email-compose's seeded max_output_tokens
	composeAvgOutput = 350  // and its avg_output_tokens
	chatAvgOutput    = 400  // chat_message's avg_output_tokens
)

var defaultLimits = budget.Limits{DailyLimit: money.MustUSD(50), Warning: money.MustUSD(25)}

// Breaker policy and cache TTLs of every test pipeline. The TTLs run on the test clock.
var breakerPolicy = breaker.Policy{Threshold: 2, Window: time.Minute, Cooldown: time.Minute}

const (
	stateTTL   = 30 * time.Second // toggles and breakers
	catalogTTL = time.Hour        // tests Invalidate after changing rows
)

func testPolicy() execute.Policy {
	return execute.Policy{
		DefaultTimeout:   10 * time.Second,
		FinishMargin:     100 * time.Millisecond,
		AttemptsPerModel: 2,
		InitialBackoff:   time.Millisecond,
		MaxBackoff:       2 * time.Millisecond,
		ReservationTTL:   5 * time.Minute,
		ApprovalTTL:      time.Hour,
	}
}

// clock is real time plus an offset that tests move forward, so cache TTLs and breaker
// cooldowns pass at once while deadlines derived from it stay consistent with real contexts.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// ---- fake providers ----

// step is one scripted answer of a fake provider.
type step struct {
	resp  llm.Response
	err   error
	block bool // wait until the call's context ends, then fail with its error
}

func okStep(u llm.Usage) step {
	return step{resp: llm.Response{Text: "answer", Usage: u, FinishReason: "stop"}}
}

func failStep(kind llm.ErrorKind) step {
	return step{err: &llm.Error{Kind: kind, StatusCode: 503, Message: "scripted " + string(kind)}}
}

func rateLimitedStep(retryAfter time.Duration) step {
	return step{err: &llm.Error{Kind: llm.KindRateLimited, StatusCode: 429, RetryAfter: retryAfter, Message: "slow down"}}
}

// fakeProvider implements llm.Provider: it answers each call with the next scripted step, or
// with its default once the script is used up, and records every request.
type fakeProvider struct {
	name string

	mu     sync.Mutex
	script []step
	def    step
	reqs   []llm.Request
	times  []time.Time
	dls    []time.Time // the deadline of each call's context (zero: none)
}

func newFake(name string) *fakeProvider {
	return &fakeProvider{name: name, def: okStep(llm.Usage{InputTokens: 100, OutputTokens: 50})}
}

func (f *fakeProvider) Name() string { return f.name }

func (f *fakeProvider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.times = append(f.times, time.Now())
	dl, _ := ctx.Deadline()
	f.dls = append(f.dls, dl)
	s := f.def
	if len(f.script) > 0 {
		s, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if s.block {
		<-ctx.Done()
		return llm.Response{}, ctx.Err()
	}
	var le *llm.Error
	if errors.As(s.err, &le) {
		c := *le // a fresh error per call, carrying this provider's name
		c.Provider = f.name
		return llm.Response{}, &c
	}
	return s.resp, s.err
}

// Script queues answers; Default sets the answer once the script is used up.
func (f *fakeProvider) Script(steps ...step) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, steps...)
}

func (f *fakeProvider) Default(s step) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.def = s
}

func (f *fakeProvider) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeProvider) Requests() []llm.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]llm.Request(nil), f.reqs...)
}

func (f *fakeProvider) CallTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

func (f *fakeProvider) Deadlines() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.dls...)
}

// registry is a fake execute.Providers.
type registry map[string]llm.Provider

func (r registry) Get(name string) (llm.Provider, bool) {
	p, ok := r[name]
	return p, ok
}

type fakes struct{ deepseek, gemini, claude *fakeProvider }

func newFakes() fakes {
	return fakes{deepseek: newFake("deepseek"), gemini: newFake("gemini"), claude: newFake("anthropic")}
}

func (f fakes) registry() registry {
	return registry{"deepseek": f.deepseek, "gemini": f.gemini, "anthropic": f.claude}
}

func (f fakes) calls() [3]int { return [3]int{f.deepseek.Calls(), f.gemini.Calls(), f.claude.Calls()} }

// ---- the pipeline over real Postgres ----

// instance is one Lambda instance's worth of pipeline: its own caches and breakers.
type instance struct {
	p        *execute.Pipeline
	catalog  *catalog.Cache
	toggles  *toggles.Service
	breakers *breaker.Breakers
}

type env struct {
	t         *testing.T
	pool      *pgxpool.Pool
	clock     *clock
	ledger    *postgres.Ledger
	approvals *postgres.Approvals
	// groupCommit: the ledger and every instance's operation log batch concurrent writes.
	groupCommit bool
	fakes
	*instance
}

type options struct {
	envToggles map[string]bool
	policy     *execute.Policy
	pool       *pgxpool.Pool
	// groupCommit batches the ledger's and the operation log's writes (shared/groupcommit).
	groupCommit bool
}

func newEnv(t *testing.T, opts ...func(*options)) *env {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	pool := o.pool
	if pool == nil {
		pool = pg.NewPool(t)
	}
	e := &env{
		t: t, pool: pool, clock: &clock{},
		ledger:      postgres.NewLedger(pool, defaultLimits, nil),
		approvals:   postgres.NewApprovals(pool, nil),
		fakes:       newFakes(),
		groupCommit: o.groupCommit,
	}
	if o.groupCommit {
		e.ledger.GroupCommit(groupcommit.Options{MaxBatch: 64, MaxInFlight: 1}, nil)
	}
	policy := testPolicy()
	if o.policy != nil {
		policy = *o.policy
	}
	e.instance = e.newInstance(e.fakes.registry(), o.envToggles, policy)
	return e
}

func withEnvToggles(m map[string]bool) func(*options) { return func(o *options) { o.envToggles = m } }
func withPolicy(p execute.Policy) func(*options)      { return func(o *options) { o.policy = &p } }
func withPool(p *pgxpool.Pool) func(*options)         { return func(o *options) { o.pool = p } }
func withGroupCommit(on bool) func(*options)          { return func(o *options) { o.groupCommit = on } }

// newInstance builds another pipeline on the same database and clock, with empty caches.
func (e *env) newInstance(providers execute.Providers, envToggles map[string]bool, policy execute.Policy) *instance {
	in := &instance{
		catalog:  catalog.NewCache(postgres.NewCatalog(e.pool, nil), catalogTTL, e.clock.Now),
		toggles:  toggles.NewService(postgres.NewToggles(e.pool), envToggles, stateTTL, e.clock.Now),
		breakers: breaker.New(postgres.NewBreakers(e.pool), breakerPolicy, stateTTL, e.clock.Now),
	}
	log := postgres.NewOperations(e.pool, nil)
	if e.groupCommit {
		log.GroupCommit(groupcommit.Options{MaxBatch: 64, MaxInFlight: 1}, nil)
	}
	in.p = &execute.Pipeline{
		Catalog:   in.catalog,
		Toggles:   in.toggles,
		Breakers:  in.breakers,
		Ledger:    e.ledger,
		Log:       log,
		Approvals: e.approvals,
		Providers: providers,
		Logger:    slog.New(slog.DiscardHandler),
		Now:       e.clock.Now,
		Policy:    policy,
	}
	return in
}

var composeMessages = []llm.Message{
	{Role: llm.RoleSystem, Content: "You write short, clear emails."},
	{Role: llm.RoleUser, Content: `{"subject":"Project Update","recipient_context":"Manager"}`},
}

// inputBound is the input upper bound the pipeline reserves for composeMessages.
func inputBound() int64 { return execute.InputUpperBound(composeMessages, nil) }

func composeCall(requestID string) execute.Call {
	return execute.Call{
		RequestID: requestID, UserID: "u1", OperationID: "email-compose",
		Messages: composeMessages, Fingerprint: []byte(`{"subject":"Project Update"}`),
	}
}

func (e *env) execute(c execute.Call) (execute.Result, error) {
	return e.p.Execute(context.Background(), c)
}

// mustExecute runs c and fails the test on error.
func (e *env) mustExecute(c execute.Call) execute.Result {
	e.t.Helper()
	res, err := e.execute(c)
	if err != nil {
		e.t.Fatalf("execute %s: %v", c.RequestID, err)
	}
	return res
}

// ---- reading the database ----

type logRow struct {
	Model, Provider, PriceVersion, ErrorCode, ProviderRequestID string // "" for NULL
	Input, Output, Cached, Reasoning, Cost, LatencyMS           int64
	Success, Fallback                                           bool
}

func (e *env) log(requestID string) (logRow, bool) {
	e.t.Helper()
	var r logRow
	err := e.pool.QueryRow(context.Background(), `
		SELECT COALESCE(model_used, ''), COALESCE(provider, ''), COALESCE(price_version, ''),
		       COALESCE(error_code, ''), COALESCE(provider_request_id, ''), input_tokens, output_tokens,
		       cached_input_tokens, reasoning_tokens, cost_nano, latency_ms, success, fallback_used
		  FROM ai_operation_log WHERE request_id = $1`, requestID).
		Scan(&r.Model, &r.Provider, &r.PriceVersion, &r.ErrorCode, &r.ProviderRequestID, &r.Input,
			&r.Output, &r.Cached, &r.Reasoning, &r.Cost, &r.LatencyMS, &r.Success, &r.Fallback)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return r, true
}

func (e *env) mustLog(requestID string) logRow {
	e.t.Helper()
	r, ok := e.log(requestID)
	if !ok {
		e.t.Fatalf("no ai_operation_log row for %s", requestID)
	}
	return r
}

func (e *env) count(sql string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// reservation returns the status and amount of a request's budget reservation ("" if none).
func (e *env) reservation(requestID string) (status string, amount money.Nano) {
	e.t.Helper()
	var a int64
	err := e.pool.QueryRow(context.Background(),
		`SELECT status, amount_nano FROM budget_reservations WHERE request_id = $1`, requestID).Scan(&status, &a)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return status, money.Nano(a)
}

func (e *env) day(user string) budget.Day {
	e.t.Helper()
	d, err := e.ledger.Today(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

type breakerRow struct {
	Failures  int
	OpenUntil pgtype.Timestamptz
}

func (e *env) breaker(provider string) (breakerRow, bool) {
	e.t.Helper()
	var r breakerRow
	err := e.pool.QueryRow(context.Background(),
		`SELECT failures, open_until FROM provider_breakers WHERE provider = $1`, provider).Scan(&r.Failures, &r.OpenUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return r, true
}

type approvalRow struct {
	Status, UsedRequestID string
}

func (e *env) approvalRow(id string) approvalRow {
	e.t.Helper()
	var r approvalRow
	err := e.pool.QueryRow(context.Background(),
		`SELECT status, COALESCE(used_request_id, '') FROM approvals WHERE approval_id = $1`, id).Scan(&r.Status, &r.UsedRequestID)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) setRoute(operationID string, change catalog.RouteChange) {
	e.t.Helper()
	if _, err := postgres.NewCatalog(e.pool, nil).UpdateRoute(context.Background(), operationID, change, "test"); err != nil {
		e.t.Fatal(err)
	}
	e.catalog.Invalidate()
}

// ---- counting Postgres round trips ----

// queryCounter is a pgx tracer that counts statements (a batch counts once: it is one round
// trip) and keeps their first words.
type queryCounter struct {
	mu    sync.Mutex
	count int
	sqls  []string
}

func (q *queryCounter) add(sql string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.count++
	q.sqls = append(q.sqls, sql)
}

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	q.add(d.SQL)
	return ctx
}
func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (q *queryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	q.add("<batch>")
	return ctx
}
func (q *queryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (q *queryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (q *queryCounter) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.count, q.sqls = 0, nil
}

func (q *queryCounter) snapshot() (int, []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count, append([]string(nil), q.sqls...)
}

var (
	_ pgx.QueryTracer = (*queryCounter)(nil)
	_ pgx.BatchTracer = (*queryCounter)(nil)
	_ llm.Provider    = (*fakeProvider)(nil)
)

func ptr[T any](v T) *T { return &v }
