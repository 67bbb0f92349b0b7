package auditapp_test

// These tests run the audit function's minute (Audit.Run) as the Lambda and the dev server do:
// auditapp.New over a core that app.Boot made from an environment the test controls, on a fresh
// migrated database. Every Discord channel's webhook is a local server speaking Discord's webhook
// API (discordtest), every provider a local server speaking its wire (llmtest), and synthesis
// jobs go to a fake queue that records them. RunSteps, the part that keeps one failing step from
// stopping the others, is tested on its own first.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/auditapp"
	"github.com/helixhq/helix/shared/app/auditapp/auditapptest"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/discord"
	"github.com/helixhq/helix/shared/discord/discordtest"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/outbox"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/synthesis"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// runTimeout is the deadline a minute runs under (the dev server's; the Lambda's is its Timeout).
const runTimeout = 50 * time.Second

// The keys the provider servers insist on, so the probes are seen sending what configuration set.

// The steps of a minute, in the order they run.
var allSteps = []string{"sweep_reservations", "synthesis_sweep", "provider_probes", "alerts", "integrate", "metrics",
	"heartbeat", "integrate_heartbeat", "checkpoint", "api_digest", "deliver"}

// ---- RunSteps ----

func TestRunStepsOneFailingStepDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{}) // lets the step that ignores its context end with the test
	t.Cleanup(func() { close(release) })
	var mu sync.Mutex
	var ran []string
	mark := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, name)
	}
	var deadlineOK bool
	steps := []auditapp.Step{
		{Name: "fails", Timeout: time.Second, Run: func(context.Context) error {
			mark("fails")
			return errors.New(`relation "budget_reservations" does not exist`)
		}},
		{Name: "panics", Timeout: time.Second, Run: func(context.Context) error {
			mark("panics")
			var steps []string
			i := 3
			_ = steps[i] // an index out of range: a real runtime panic
			return nil
		}},
		{Name: "ignores its context", Timeout: 30 * time.Millisecond, Run: func(context.Context) error {
			mark("ignores its context")
			<-release // a call without a deadline: it never returns while the run goes on
			return nil
		}},
		{Name: "honours its context", Timeout: 30 * time.Millisecond, Run: func(ctx context.Context) error {
			mark("honours its context")
			<-ctx.Done()
			return fmt.Errorf("query: %w", ctx.Err())
		}},
		{Name: "after them", Timeout: time.Minute, Run: func(ctx context.Context) error {
			mark("after them")
			d, ok := ctx.Deadline()
			deadlineOK = ok && time.Until(d) <= time.Minute
			return nil
		}},
	}
	var logBuf bytes.Buffer
	got := auditapp.RunSteps(context.Background(), steps, slog.New(slog.NewJSONHandler(&logBuf, nil)))

	want := map[string]string{
		"fails":               `relation "budget_reservations" does not exist`,
		"panics":              "panic: runtime error: index out of range [3] with length 0",
		"ignores its context": "timed out after 30ms",
		"honours its context": "timed out after 30ms",
		"after them":          "ok",
	}
	if len(got) != len(want) {
		t.Errorf("outcomes %v, want one per step", got)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("step %q: outcome %q, want %q", name, got[name], w)
		}
	}
	mu.Lock()
	order := slices.Clone(ran)
	mu.Unlock()
	if wantOrder := []string{"fails", "panics", "ignores its context", "honours its context", "after them"}; !slices.Equal(order, wantOrder) {
		t.Errorf("steps ran %v, want each once, in order %v", order, wantOrder)
	}
	if !deadlineOK {
		t.Error("a step's context does not carry its own time bound")
	}
	// Each failure is logged with the step's name; the step that went well is not.
	log := logBuf.String()
	for name := range want {
		logged := strings.Contains(log, fmt.Sprintf(`"step":%q`, name))
		if logged != (name != "after them") {
			t.Errorf("step %q logged as failed: %v\n%s", name, logged, log)
		}
	}
}

func TestRunStepsWithNoTimeLeft(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  func(t *testing.T) context.Context
		want map[string]string
	}{
		{
			name: "the run's deadline passes during a step: the later steps do not run",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			// The step's own bound is a minute; the run's deadline cut it.
			want: map[string]string{"first": "ok", "waits": "timed out", "later": "not run: no time left"},
		},
		{
			name: "a run with no time at all runs nothing",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			want: map[string]string{"first": "not run: no time left", "waits": "not run: no time left", "later": "not run: no time left"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			ran := map[string]bool{}
			step := func(name string, wait bool) auditapp.Step {
				return auditapp.Step{Name: name, Timeout: time.Minute, Run: func(ctx context.Context) error {
					mu.Lock()
					ran[name] = true
					mu.Unlock()
					if wait {
						<-ctx.Done()
						return ctx.Err()
					}
					return nil
				}}
			}
			got := auditapp.RunSteps(tt.ctx(t), []auditapp.Step{step("first", false), step("waits", true), step("later", false)},
				slog.New(slog.DiscardHandler))
			for name, w := range tt.want {
				if !strings.HasPrefix(got[name], w) {
					t.Errorf("step %q: outcome %q, want %q", name, got[name], w)
				}
				mu.Lock()
				if ran[name] == strings.HasPrefix(w, "not run") {
					t.Errorf("step %q ran: %v, its outcome says %q", name, ran[name], got[name])
				}
				mu.Unlock()
			}
		})
	}
}

// ---- the minute, over a database ----

// fakeQueue records the synthesis jobs sent.
type fakeQueue struct {
	mu   sync.Mutex
	jobs []synthesis.Job
}

func (q *fakeQueue) Enqueue(_ context.Context, j synthesis.Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, j)
	return nil
}

func (q *fakeQueue) Jobs() []synthesis.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.jobs)
}

// env is the audit minute booted as the function boots it, with its local servers.
type env struct {
	core                     *app.Core
	pool                     *pgxpool.Pool
	a                        *auditapp.Audit
	discord                  *discordtest.Server
	queue                    *fakeQueue
	verifier                 note.Verifier
	deepseek, gemini, claude *llmtest.Server
	log                      *auditapptest.LockedBuffer
}

// newEnv boots the minute with every channel's webhook and every provider pointing at local
// servers; extra are more variables of the environment ("NAME=value").
func newEnv(t *testing.T, extra ...string) *env {
	t.Helper()
	q := &fakeQueue{}
	x := auditapptest.New(t, auditapptest.Options{DatabaseURL: pg.NewDatabase(t), Extra: extra,
		Queue: func(*app.Core) synthesis.Queue { return q }})
	return &env{core: x.Core, pool: x.Pool, a: x.Audit, discord: x.Discord, queue: q, verifier: x.Verifier,
		deepseek: x.DeepSeek, gemini: x.Gemini, claude: x.Claude, log: x.Log}
}

// run is one minute under the run's deadline.
func (e *env) run(t *testing.T) auditapp.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	return e.a.Run(ctx)
}

func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.pool.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// logOperation writes an ai_operation_log row as the pipeline's settlement does (its trigger
// records the audit event).
func (e *env) logOperation(t *testing.T, requestID, operation string, success, fallback bool, errorCode string) {
	t.Helper()
	e.exec(t, `
		INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, input_tokens, output_tokens,
		                              cost_nano, latency_ms, success, error_code, fallback_used)
		VALUES ($1, $2, 'alice', 'deepseek', 'deepseek', 100, 50, 1000, 80, $3, NULLIF($4, ''), $5)`,
		requestID, operation, success, errorCode, fallback)
}

func (e *env) record(t *testing.T, ev auditlog.Event) {
	t.Helper()
	if err := auditstore.Record(t.Context(), e.pool, ev); err != nil {
		t.Fatal(err)
	}
}

// wantAllOK fails unless every step of the minute went well.
func wantAllOK(t *testing.T, steps map[string]string) {
	t.Helper()
	for _, name := range allSteps {
		if steps[name] != "ok" {
			t.Errorf("step %s: %q, want ok", name, steps[name])
		}
	}
	if len(steps) != len(allSteps) {
		t.Errorf("steps %v, want exactly %v", steps, allSteps)
	}
}

// outboxItems reads a channel's outbox, in delivery order, and how many are delivered.
func (e *env) outboxItems(t *testing.T, ch outbox.Channel) (items []outbox.Item, delivered int) {
	t.Helper()
	rows, _ := e.pool.Query(t.Context(), `SELECT id, kind, payload, attempts, created_at, delivered_at IS NOT NULL
		FROM discord_outbox WHERE channel = $1 ORDER BY id`, string(ch))
	var it outbox.Item
	var payload []byte
	var done bool
	if _, err := pgx.ForEachRow(rows, []any{&it.ID, &it.Kind, &payload, &it.Attempts, &it.CreatedAt, &done}, func() error {
		it.Channel, it.Payload = ch, json.RawMessage(slices.Clone(payload))
		items = append(items, it)
		if done {
			delivered++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return items, delivered
}

func footer(e discordtest.Embed) string {
	if e.Footer == nil {
		return ""
	}
	return e.Footer.Text
}

func field(e discordtest.Embed, name string) string {
	for _, f := range e.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// wantDeliveredOnceInOrder checks that each channel's webhook received each of its outbox
// messages exactly once, in the outbox's order, and that all of them are marked delivered.
func (e *env) wantDeliveredOnceInOrder(t *testing.T) {
	t.Helper()
	for _, ch := range outbox.Channels() {
		items, delivered := e.outboxItems(t, ch)
		got := e.discord.Received(string(ch))
		if delivered != len(items) {
			t.Errorf("%s: %d of %d messages delivered", ch, delivered, len(items))
		}
		if len(got) != len(items) {
			t.Errorf("%s: the webhook received %d embeds for %d messages", ch, len(got), len(items))
			continue
		}
		for i, it := range items {
			want := outbox.Render(it)
			if got[i].Title != want.Title || footer(got[i]) != want.Footer {
				t.Errorf("%s: embed %d is %q (%q), want %q (%q): out of order", ch, i, got[i].Title, footer(got[i]), want.Title, want.Footer)
			}
		}
	}
	if p := e.discord.Problems(); len(p) > 0 {
		t.Errorf("requests broke Discord's limits: %v", p)
	}
}

func TestKilledCallsReservationIsSweptWithinAMinute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	ttl := e.core.Config.Budget.ReservationTTL
	limits := budget.Limits{DailyLimit: e.core.Config.Budget.DefaultDailyLimit, Warning: e.core.Config.Budget.DefaultWarning}
	// Alice's calls began a TTL and half a minute ago: one finished and settled, the other's
	// instance was killed before it could settle or release, so its hold expired 30 s ago.
	then := postgres.NewLedger(e.pool, limits, func() time.Time { return time.Now().Add(-ttl - 30*time.Second) })
	if _, err := then.Reserve(ctx, budget.Reservation{RequestID: "r-settled", UserID: "alice", Amount: money.MustUSD(2), TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if err := then.Settle(ctx, "r-settled", money.MustUSD(0.5)); err != nil {
		t.Fatal(err)
	}
	if _, err := then.Reserve(ctx, budget.Reservation{RequestID: "r-killed", UserID: "alice", Amount: money.MustUSD(3), TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	// Bob's call is in flight now: its hold must survive the sweep.
	if _, err := e.core.Ledger().Reserve(ctx, budget.Reservation{RequestID: "r-live", UserID: "bob", Amount: money.MustUSD(1), TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	before, err := then.Today(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if before.Reserved != money.MustUSD(3) || before.Spent != money.MustUSD(0.5) {
		t.Fatalf("before the minute alice has spent %s and reserved %s, want 0.5 and 3", before.Spent, before.Reserved)
	}

	res := e.run(t)
	if res.Steps["sweep_reservations"] != "ok" {
		t.Errorf("sweep_reservations: %q", res.Steps["sweep_reservations"])
	}
	after, err := then.Today(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if after.Reserved != 0 || after.Spent != before.Spent || after.Remaining() != after.Limits.DailyLimit-money.MustUSD(0.5) {
		t.Errorf("after the minute alice has spent %s, reserved %s, remaining %s of %s; want her budget whole (spent 0.5, nothing held)",
			after.Spent, after.Reserved, after.Remaining(), after.Limits.DailyLimit)
	}
	status := map[string]string{}
	rows, _ := e.pool.Query(ctx, `SELECT request_id, status || CASE WHEN closed_at IS NULL THEN '' ELSE ' (closed)' END FROM budget_reservations`)
	var id, st string
	if _, err := pgx.ForEachRow(rows, []any{&id, &st}, func() error { status[id] = st; return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"r-settled": "settled (closed)", "r-killed": "expired (closed)", "r-live": "reserved"}
	for id, w := range want {
		if status[id] != w {
			t.Errorf("reservation %s is %q, want %q", id, status[id], w)
		}
	}
	bob, err := e.core.Ledger().Today(ctx, "bob")
	if err != nil || bob.Reserved != money.MustUSD(1) {
		t.Errorf("bob's call in flight: reserved %s (%v), want its 1 still held", bob.Reserved, err)
	}
}

func TestSynthesisSweepQueuesIdleConversations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "HELIX_SYNTHESIS_IDLE=3m")
	conv := func(user string, lastSeq, synthesized int64, idle time.Duration) string {
		id := uuid.NewString()
		e.exec(t, `INSERT INTO conversations (conversation_id, user_id, last_seq, synthesized_seq, enqueued_seq, last_activity_at)
			VALUES ($1, $2, $3, $4, $4, now() - make_interval(secs => $5))`, id, user, lastSeq, synthesized, idle.Seconds())
		for seq := int64(1); seq <= lastSeq; seq++ {
			role := map[bool]string{true: "user", false: "assistant"}[seq%2 == 1]
			e.exec(t, `INSERT INTO session_messages (conversation_id, seq, role, content) VALUES ($1, $2, $3, 'hello')`, id, seq, role)
		}
		return id
	}
	idle := conv("alice", 4, 0, 5*time.Minute)   // four messages, nothing learned, quiet for 5 minutes
	conv("bob", 4, 0, time.Minute)               // still talking (HELIX_SYNTHESIS_IDLE is 3 minutes)
	conv("carol", 4, 4, 20*time.Minute)          // all learned already
	partly := conv("dave", 6, 2, 10*time.Minute) // learned up to 2 of 6

	res := e.run(t)
	if res.Steps["synthesis_sweep"] != "ok" {
		t.Errorf("synthesis_sweep: %q", res.Steps["synthesis_sweep"])
	}
	jobs := e.queue.Jobs()
	slices.SortFunc(jobs, func(a, b synthesis.Job) int { return strings.Compare(a.UserID, b.UserID) })
	want := []synthesis.Job{{ConversationID: idle, UserID: "alice", ThroughSeq: 4}, {ConversationID: partly, UserID: "dave", ThroughSeq: 6}}
	if !slices.Equal(jobs, want) {
		t.Errorf("queued %+v, want %+v", jobs, want)
	}
	// A job sent is not sent again by the next minute.
	e.run(t)
	if n := len(e.queue.Jobs()); n != 2 {
		t.Errorf("after a second minute %d jobs were queued, want still 2", n)
	}
}

func TestProviderProbesFeedTheBreakers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Anthropic's breaker opened on earlier failures; a healthy probe closes it.
	e.exec(t, `INSERT INTO provider_breakers (provider, window_started_at, failures, open_until, last_error)
		VALUES ('anthropic', now() - interval '10 seconds', 5, now() + interval '20 seconds', 'overloaded')`)
	type breakerRow struct {
		failures int
		open     bool
		lastErr  string
	}
	breakers := func() map[string]breakerRow {
		out := map[string]breakerRow{}
		rows, _ := e.pool.Query(t.Context(), `SELECT provider, failures, open_until IS NOT NULL, last_error FROM provider_breakers`)
		var p string
		var b breakerRow
		if _, err := pgx.ForEachRow(rows, []any{&p, &b.failures, &b.open, &b.lastErr}, func() error { out[p] = b; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	probed := func(s *llmtest.Server) int {
		n := 0
		for _, r := range s.Requests() {
			if r.Method == "GET" && strings.HasSuffix(r.Path, "/models") {
				n++
			} else {
				t.Errorf("a probe sent %s %s: probes must only list models (free)", r.Method, r.Path)
			}
		}
		return n
	}
	servers := map[string]*llmtest.Server{"deepseek": e.deepseek, "gemini": e.gemini, "anthropic": e.claude}

	// All healthy.
	res := e.run(t)
	if res.Steps["provider_probes"] != "ok" {
		t.Errorf("provider_probes with every provider healthy: %q", res.Steps["provider_probes"])
	}
	for name, s := range servers {
		if n := probed(s); n != 1 {
			t.Errorf("%s was probed %d times, want once", name, n)
		}
	}
	if b := breakers()["anthropic"]; b.open || b.failures != 0 {
		t.Errorf("anthropic's breaker after a healthy probe: %+v, want closed", b)
	}

	// Gemini answers 503.
	e.gemini.Script(llmtest.Error(503, "The model is overloaded. Please try again later."))
	res = e.run(t)
	outcome := res.Steps["provider_probes"]
	if !strings.Contains(outcome, "gemini") || strings.Contains(outcome, "deepseek") || strings.Contains(outcome, "anthropic") {
		t.Errorf("provider_probes with gemini down: %q, want gemini named alone", outcome)
	}
	for _, name := range allSteps {
		if name != "provider_probes" && res.Steps[name] != "ok" {
			t.Errorf("step %s: %q, want ok (a failing probe holds nothing else)", name, res.Steps[name])
		}
	}
	got := breakers()
	if g := got["gemini"]; g.failures != 1 || !strings.HasPrefix(g.lastErr, "probe: ") {
		t.Errorf("gemini's breaker: %+v, want one probe failure recorded", g)
	}
	if _, ok := got["deepseek"]; ok {
		t.Errorf("deepseek's healthy probe wrote a breaker row: %+v", got["deepseek"])
	}
	for name, s := range servers {
		if n := probed(s); n != 2 {
			t.Errorf("%s was probed %d times in two minutes, want twice", name, n)
		}
	}
	// The heartbeat of the minute names the failure.
	var payload string
	if err := e.pool.QueryRow(t.Context(), `SELECT payload FROM audit_entries WHERE kind = 'heartbeat' ORDER BY seq DESC LIMIT 1`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var hb auditlog.HeartbeatFacts
	if err := json.Unmarshal([]byte(payload), &hb); err != nil || hb.Steps["provider_probes"] != outcome {
		t.Errorf("the heartbeat's steps %v (%v), want provider_probes: %q", hb.Steps, err, outcome)
	}
}

func TestDisabledProviderIsNotProbed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "DISABLE_ANTHROPIC=true")
	res := e.run(t)
	if res.Steps["provider_probes"] != "ok" {
		t.Errorf("provider_probes: %q", res.Steps["provider_probes"])
	}
	if n := e.claude.Count(); n != 0 {
		t.Errorf("the disabled provider got %d requests", n)
	}
	if e.deepseek.Count() != 1 || e.gemini.Count() != 1 {
		t.Errorf("enabled providers probed %d and %d times, want once each", e.deepseek.Count(), e.gemini.Count())
	}
}

// minuteOfActivity records, before run i, something for every channel: an admin change that
// reprices (commands and file-changes), a failed call (api) and a successful one (the digest), a
// synthesis run (consciousness) and an alert (alerts); the minute adds the heartbeat and the
// checkpoint (hash-chain).
func (e *env) minuteOfActivity(t *testing.T, i int) {
	t.Helper()
	e.record(t, auditlog.Event{Kind: auditlog.AdminChange, Actor: "ops", Payload: auditlog.Change{
		What: auditlog.ChangedModel, ID: fmt.Sprintf("model-%02d", i), Before: map[string]int{"price": i}, After: map[string]int{"price": i + 1}, Reprice: true}})
	e.logOperation(t, fmt.Sprintf("r-failed-%02d", i), fmt.Sprintf("run-%02d", i), false, false, "providers_unavailable")
	e.logOperation(t, fmt.Sprintf("r-ok-%02d", i), fmt.Sprintf("run-%02d", i), true, false, "")
	e.record(t, auditlog.Event{Kind: auditlog.Synthesis, Actor: "alice", Payload: auditlog.SynthesisRun{
		ConversationID: uuid.NewString(), ThroughSeq: int64(i), Status: "done", Messages: i, Added: 1, Layers: map[string]int{"semantic": 1}}})
	e.record(t, auditlog.Event{Kind: auditlog.Alert, Actor: "audit", Payload: auditlog.AlertEvent{
		Name: fmt.Sprintf("test_alert_%02d", i), State: auditlog.Fired, Detail: "raised by the test"}})
}

func TestDiscordOutageAcrossTenHeartbeatsLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := auditapptest.NewClock(time.Now())
	e.a.Deliverer.Now = c.Now
	for _, ch := range outbox.Channels() {
		e.discord.Default(string(ch), discordtest.Reply{Status: 503})
	}
	for i := 1; i <= 10; i++ {
		e.minuteOfActivity(t, i)
		res := e.run(t)
		wantAllOK(t, res.Steps) // an outage is the deliverer's business, not a failed step
		for ch, r := range res.Delivered {
			if r.Delivered != 0 {
				t.Fatalf("minute %d: %s delivered %d during the outage", i, ch, r.Delivered)
			}
		}
		c.Advance(time.Minute)
	}
	for _, ch := range outbox.Channels() {
		if n := len(e.discord.Received(string(ch))); n != 0 {
			t.Errorf("%s accepted %d embeds during the outage", ch, n)
		}
		if n := e.discord.Requests(string(ch)); n == 0 || n > 10 {
			t.Errorf("%s got %d requests in ten minutes of outage, want between 1 and 10 (one a minute at most, backing off)", ch, n)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM discord_outbox WHERE dead_at IS NOT NULL`); n != 0 {
		t.Fatalf("%d messages died in a ten-minute outage", n)
	}
	if n := e.count(t, `SELECT count(*) FROM discord_outbox WHERE channel = 'heartbeat'`); n != 10 {
		t.Fatalf("%d heartbeats queued in ten minutes, want 10", n)
	}

	// Discord is back; an hour later every backoff has passed.
	for _, ch := range outbox.Channels() {
		e.discord.Default(string(ch), discordtest.Reply{Status: 204})
	}
	c.Advance(time.Hour)
	e.minuteOfActivity(t, 11)
	wantAllOK(t, e.run(t).Steps)
	e.wantDeliveredOnceInOrder(t)

	// The heartbeats: the eleven of them, in the chain's order, each once.
	var seqs []int64
	rows, _ := e.pool.Query(t.Context(), `SELECT seq FROM audit_entries WHERE kind = 'heartbeat' ORDER BY seq`)
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	got := e.discord.Received("heartbeat")
	if len(got) != 11 || len(seqs) != 11 {
		t.Fatalf("the heartbeat webhook got %d heartbeats of %d in the log, want 11", len(got), len(seqs))
	}
	for i, hb := range got {
		if want := fmt.Sprintf("audit entry %d", seqs[i]); footer(hb) != want {
			t.Errorf("heartbeat %d says %q, want %q", i, footer(hb), want)
		}
	}
	// The api channel: each minute's failed call, then that minute's digest.
	var apiWant, apiGot []string
	for i := 1; i <= 11; i++ {
		apiWant = append(apiWant, fmt.Sprintf("Call failed: run-%02d", i), fmt.Sprintf("digest run-%02d 1", i))
	}
	for _, m := range e.discord.Received("api") {
		if strings.HasPrefix(m.Title, "Call failed") {
			apiGot = append(apiGot, m.Title)
		} else {
			apiGot = append(apiGot, "digest "+field(m, "by operation"))
		}
	}
	if !slices.Equal(apiGot, apiWant) {
		t.Errorf("the api channel got %q, want %q", apiGot, apiWant)
	}
	// Every checkpoint posted verifies with the public key, and the tree only grew.
	var last int64
	for i, m := range e.discord.Received("hash_chain") {
		cp, err := auditlog.OpenCheckpoint(signedNote(m.Description), e.verifier)
		if err != nil {
			t.Fatalf("checkpoint %d does not verify: %v", i, err)
		}
		if cp.Size <= last {
			t.Errorf("checkpoint %d has size %d after %d", i, cp.Size, last)
		}
		last = cp.Size
	}

	// Another minute sends only its own messages.
	before := map[outbox.Channel]int{}
	for _, ch := range outbox.Channels() {
		before[ch] = len(e.discord.Received(string(ch)))
	}
	wantAllOK(t, e.run(t).Steps)
	e.wantDeliveredOnceInOrder(t)
	if n := len(e.discord.Received("heartbeat")) - before[outbox.Heartbeat]; n != 1 {
		t.Errorf("the next minute posted %d heartbeats, want 1", n)
	}
	if n := len(e.discord.Received("commands")) - before[outbox.Commands]; n != 0 {
		t.Errorf("the next minute posted %d admin changes again", n)
	}
}

// signedNote is the signed checkpoint in a #helix-hash-chain message, as an auditor copies it.
func signedNote(description string) string {
	s := strings.TrimPrefix(description, "```\n")
	return strings.TrimSuffix(s, "```")
}

func TestGoneWebhookStopsItsChannelAndTheAlertReachesAlerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.discord.Default("commands", discordtest.Reply{Status: 404})
	e.record(t, auditlog.Event{Kind: auditlog.AdminChange, Actor: "ops", Payload: auditlog.Change{What: auditlog.ChangedToggle, ID: "DISABLE_GEMINI", Before: false, After: true}})

	// The first minute finds the webhook gone; the alert is recorded in the audit log.
	res := e.run(t)
	wantAllOK(t, res.Steps)
	if r := res.Delivered[outbox.Commands]; !strings.Contains(r.Note, "404") {
		t.Errorf("commands: %+v, want stopped on the 404", r)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_pending WHERE kind = 'alert' AND payload LIKE '%discord_webhook_gone%'`); n != 1 {
		t.Fatalf("%d gone-webhook alerts recorded, want 1", n)
	}
	// The next minute sequences it and delivers it to #helix-alerts.
	res = e.run(t)
	wantAllOK(t, res.Steps)
	// A third minute: the gone webhook is not called again, and the alert is not raised again.
	e.record(t, auditlog.Event{Kind: auditlog.AdminChange, Actor: "ops", Payload: auditlog.Change{What: auditlog.ChangedToggle, ID: "DISABLE_GEMINI", Before: true, After: false}})
	wantAllOK(t, e.run(t).Steps)

	if n := e.discord.Requests("commands"); n != 1 {
		t.Errorf("the gone webhook got %d requests, want 1 (then nothing)", n)
	}
	var alerts []discordtest.Embed
	for _, m := range e.discord.Received("alerts") {
		if strings.Contains(m.Title, "discord_webhook_gone") {
			alerts = append(alerts, m)
		}
	}
	if len(alerts) != 1 {
		t.Fatalf("#helix-alerts got %d gone-webhook alerts, want 1: %+v", len(alerts), e.discord.Received("alerts"))
	}
	if a := alerts[0]; a.Title != "Alert fired: discord_webhook_gone" || !strings.Contains(a.Description, "#helix-commands") ||
		!strings.Contains(a.Description, "DISCORD_WEBHOOK_COMMANDS") || strings.Contains(a.Description, "SECRET") || !strings.HasPrefix(footer(a), "audit entry ") {
		t.Errorf("the alert: %q / %q / %q, want it to name the channel and its variable, never the URL", a.Title, a.Description, footer(a))
	}
	items, delivered := e.outboxItems(t, outbox.Commands)
	if len(items) != 2 {
		t.Fatalf("commands outbox has %d items, want the 2 admin changes", len(items))
	}
	if delivered != 0 || items[0].Attempts != 0 {
		t.Errorf("commands outbox: %d items, %d delivered, first tried %d times; want both kept undelivered, untried",
			len(items), delivered, items[0].Attempts)
	}
	if n := e.count(t, `SELECT count(*) FROM discord_outbox WHERE dead_at IS NOT NULL`); n != 0 {
		t.Errorf("%d messages marked dead: a gone webhook keeps them", n)
	}

	// An operator sets a new webhook: the kept messages go to it, in order.
	e.a.Deliverer.Webhooks[outbox.Commands] = e.discord.Webhook("commands-new")
	wantAllOK(t, e.run(t).Steps)
	var got []string
	for _, m := range e.discord.Received("commands-new") {
		got = append(got, m.Title)
	}
	if want := []string{"toggle DISABLE_GEMINI changed by ops", "toggle DISABLE_GEMINI changed by ops"}; !slices.Equal(got, want) {
		t.Errorf("the new webhook got %q, want %q", got, want)
	}
	// The alert is cleared (in the log now, in #helix-alerts the next minute), once.
	wantAllOK(t, e.run(t).Steps)
	wantAllOK(t, e.run(t).Steps)
	var cleared int
	for _, m := range e.discord.Received("alerts") {
		if m.Title == "Alert cleared: discord_webhook_gone" {
			cleared++
		}
	}
	if cleared != 1 {
		t.Errorf("#helix-alerts got %d clearing messages, want 1", cleared)
	}
	if p := e.discord.Problems(); len(p) > 0 {
		t.Errorf("requests broke Discord's limits: %v", p)
	}
}

// The run's deadline can arrive while a step is still working (a webhook hanging while the
// Lambda's time runs out). The step is left behind, the run returns, and the step finishes on
// its own; what it writes must not race with what the run returned (go test -race).
func TestRunReturnsWhenItsDeadlineCutsDeliveryShort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A minute ahead: the heartbeat this run writes is due by then.
	c := auditapptest.NewClock(time.Now().Add(time.Minute))
	e.a.Deliverer.Now = c.Now
	e.discord.Script("heartbeat", discordtest.Reply{Hang: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	res := e.a.Run(ctx)
	for _, name := range allSteps[:len(allSteps)-1] {
		if res.Steps[name] != "ok" {
			t.Errorf("step %s: %q, want ok", name, res.Steps[name])
		}
	}
	if !strings.HasPrefix(res.Steps["deliver"], "timed out") {
		t.Errorf("deliver: %q, want timed out (the run's deadline came first)", res.Steps["deliver"])
	}
	if res.Size == 0 {
		t.Error("the result has no log size")
	}

	// The deliverer left behind records the heartbeat's failed attempt and lets go of the
	// channel. The test watches for that over a connection of its own: touching the function's
	// pool (or anything else the deliverer synchronizes with) would order the deliverer's last
	// writes after the run's return and hide a race from the detector.
	watch, err := pgx.Connect(t.Context(), e.core.Config.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	for deadline := time.Now().Add(10 * time.Second); ; {
		var done bool
		if err := watch.QueryRow(t.Context(), `
			SELECT coalesce((SELECT attempts = 1 FROM discord_outbox WHERE channel = 'heartbeat' ORDER BY id LIMIT 1), false)
			   AND NOT EXISTS (SELECT 1 FROM discord_leases)`).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delivery left behind never recorded the hanging webhook's attempt")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Not synchronization: the opposite. The deliverer has a few instructions left after letting
	// go of the lock; give them the time to run while nothing orders them.
	time.Sleep(100 * time.Millisecond)

	// The next minute, an hour later, delivers the heartbeat that was cut short and its own.
	c.Advance(time.Hour)
	wantAllOK(t, e.run(t).Steps)
	if n := len(e.discord.Received("heartbeat")); n != 2 {
		t.Errorf("the heartbeat webhook got %d heartbeats after the cut-short minute and the next, want 2", n)
	}
}

// Between minutes, a process that lives on (the dev server) sequences a backlog once it reaches
// the threshold, and leaves a shorter queue to the minute.
func TestIntegrateBacklogOnlyPastItsThreshold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	record := func(n int) {
		t.Helper()
		e.exec(t, `INSERT INTO audit_pending (kind, actor, payload)
			SELECT 'admin_change', 'ops', '{"what":"toggle"}' FROM generate_series(1, $1)`, n)
	}
	// The cold start recorded the function's deployment: sequence it first.
	if _, err := e.a.Log.IntegrateAll(t.Context(), 100); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		add       int
		wantDone  int
		wantQueue int64
	}{
		{"below the threshold: left to the minute", 99, 0, 99},
		{"at the threshold: all of it", 1, 100, 0},
		{"an empty queue", 0, 0, 0},
	}
	for _, c := range cases {
		record(c.add)
		n, err := e.a.IntegrateBacklog(t.Context(), 100)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n != c.wantDone {
			t.Errorf("%s: sequenced %d, want %d", c.name, n, c.wantDone)
		}
		if q := e.count(t, `SELECT count(*) FROM audit_pending`); q != c.wantQueue {
			t.Errorf("%s: %d left pending, want %d", c.name, q, c.wantQueue)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM audit_entries WHERE kind = 'admin_change'`); n != 100 {
		t.Errorf("%d admin changes sequenced, want 100", n)
	}
}

// The minute evaluates the alert rules: a condition lasting several minutes fires once, reaches
// #helix-alerts once and the rule's own webhook once; when it ends it clears once.
func TestAlertsFireOnceAcrossMinutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "HELIX_ALERT_WEBHOOK_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	// The rule's own webhook is the local server (a loopback address the real sender refuses).
	e.a.AlertSender = discord.New()
	own := e.discord.Webhook("own")
	if _, err := e.a.Alerts.Create(t.Context(), alerts.Rule{Name: "Daily Cost Alert", Type: alerts.DailySpend, Threshold: 100,
		Severity: alerts.Warning, Webhook: own}, "ops"); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC()
	e.exec(t, `INSERT INTO budget_days (user_id, day, limit_nano, spent_nano) VALUES ('alice', $1::date, 500e9, 250e9)`, today)
	for range 4 {
		wantAllOK(t, e.run(t).Steps)
	}
	e.exec(t, `UPDATE budget_days SET spent_nano = 10e9 WHERE user_id = 'alice'`)
	for range alerts.ClearAfter + 1 {
		wantAllOK(t, e.run(t).Steps)
	}
	var titles []string
	for _, m := range e.discord.Received("alerts") {
		if strings.HasPrefix(m.Title, "Alert ") {
			titles = append(titles, m.Title)
		}
	}
	slices.Sort(titles)
	want := []string{"Alert cleared: daily_spend", "Alert cleared: high_daily_spend", "Alert fired: daily_spend", "Alert fired: high_daily_spend"}
	if !slices.Equal(titles, want) {
		t.Errorf("#helix-alerts got %q, want %q", titles, want)
	}
	var mine []string
	for _, m := range e.discord.Received("own") {
		mine = append(mine, m.Title)
	}
	if want := []string{"Alert fired: Daily Cost Alert", "Alert cleared: Daily Cost Alert"}; !slices.Equal(mine, want) {
		t.Errorf("the rule's own webhook got %q, want %q", mine, want)
	}
}

// A channel whose messages wait because it has no webhook is not a backlog incident (it says so
// at start-up); a configured channel's old messages are.
func TestDiscordBacklogOnlyForConfiguredChannels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	delete(e.a.Deliverer.Webhooks, outbox.Commands)
	e.exec(t, `INSERT INTO discord_outbox (channel, kind, payload, created_at) VALUES
		('commands', 'admin_change', '{}', now() - interval '20 minutes'),
		('api', 'operation', '{}', now() - interval '20 minutes')`)
	wantAllOK(t, e.run(t).Steps)
	var subjects []string
	rows, err := e.pool.Query(t.Context(), `SELECT e.subject FROM alert_events e JOIN alert_rules r ON r.id = e.rule_id WHERE r.type = 'discord_backlog' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	subjects, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(subjects, []string{"api"}) {
		t.Errorf("backlog alerts for %v, want only the configured api channel", subjects)
	}
}
