package alertstore_test

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/alertstore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

const testKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

type env struct {
	pool  *pgxpool.Pool
	store *alertstore.Store
	now   time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := pg.NewPool(t)
	sealer, err := alerts.NewSealer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	// Noon: the spend rules read today's budget rows, and the test must not cross midnight.
	return &env{pool: pool, store: alertstore.New(pool, sealer), now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
}

func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (e *env) standing(t *testing.T, typ string) alerts.Rule {
	t.Helper()
	rules, err := e.store.Rules(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Standing && r.Type == typ {
			return r
		}
	}
	t.Fatalf("no standing rule %s", typ)
	return alerts.Rule{}
}

// evaluate runs one evaluation of the rules at the env's clock, a minute later each time.
func (e *env) evaluate(t *testing.T, rules ...alerts.Rule) []alerts.Event {
	t.Helper()
	var out []alerts.Event
	for _, r := range rules {
		rd, err := e.store.Readings(context.Background(), r, e.now)
		if err != nil {
			t.Fatalf("readings of %s: %v", r.Type, err)
		}
		ev, err := e.store.Apply(context.Background(), r, rd, e.now)
		if err != nil {
			t.Fatalf("apply %s: %v", r.Type, err)
		}
		out = append(out, ev...)
	}
	e.now = e.now.Add(time.Minute)
	return out
}

func (e *env) spend(t *testing.T, user string, usd float64) {
	t.Helper()
	e.exec(t, `INSERT INTO budget_days (user_id, day, limit_nano, spent_nano) VALUES ($1, $2::date, 500e9, $3)
		ON CONFLICT (user_id, day) DO UPDATE SET spent_nano = $3`, user, e.now, int64(usd*1e9))
}

func states(evs []alerts.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type+"/"+e.Subject+":"+e.State)
	}
	return out
}

// A condition lasting ten evaluations fires once and clears once; two rules watching the same
// thing each fire once; every fire and clear is in the audit log (and so reaches #helix-alerts).
func TestConditionFiresOnceAndClearsOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	high := e.standing(t, alerts.HighDailySpend)
	op, err := e.store.Create(ctx, alerts.Rule{Name: "Daily Cost Alert", Type: alerts.DailySpend, Threshold: 100, Severity: alerts.Warning}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range 10 {
		e.spend(t, "alice", 250+float64(i))
		got = append(got, states(e.evaluate(t, high, op))...)
	}
	if want := []string{"high_daily_spend/:fired", "daily_spend/:fired"}; !slices.Equal(got, want) {
		t.Fatalf("ten evaluations over both thresholds: %v, want %v", got, want)
	}
	e.spend(t, "alice", 150) // under $200, still over $100
	got = nil
	for range 5 {
		got = append(got, states(e.evaluate(t, high, op))...)
	}
	if want := []string{"high_daily_spend/:cleared"}; !slices.Equal(got, want) {
		t.Errorf("after the spend fell under $200: %v, want %v", got, want)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_pending WHERE kind = 'alert'`); n != 3 {
		t.Errorf("%d alert events in the audit log, want 3 (two fires, one clear)", n)
	}
	if n := e.count(t, `SELECT count(*) FROM alert_events`); n != 3 {
		t.Errorf("%d alert events, want 3", n)
	}
}

// A condition that comes and goes every minute does not spam: one fire, and one clear only
// once it has stayed away.
func TestFlappingDoesNotSpam(t *testing.T) {
	e := newEnv(t)
	high := e.standing(t, alerts.HighDailySpend)
	var got []string
	for i := range 12 {
		if i%2 == 0 {
			e.spend(t, "alice", 300)
		} else {
			e.spend(t, "alice", 10)
		}
		got = append(got, states(e.evaluate(t, high))...)
	}
	for range alerts.ClearAfter {
		got = append(got, states(e.evaluate(t, high))...)
	}
	if want := []string{"high_daily_spend/:fired", "high_daily_spend/:cleared"}; !slices.Equal(got, want) {
		t.Errorf("flapping: %v, want %v", got, want)
	}
}

// Per-subject rules keep one alert per subject.
func TestBudgetExceededPerUser(t *testing.T) {
	e := newEnv(t)
	r := e.standing(t, alerts.BudgetExceeded)
	e.exec(t, `INSERT INTO budget_days (user_id, day, limit_nano, spent_nano) VALUES
		('alice', $1::date, 50e9, 50e9), ('bob', $1::date, 50e9, 60e9), ('carol', $1::date, 50e9, 10e9)`, e.now)
	// carol's limit was lowered today by an admin (user_budgets), under what she spent: the day's
	// row still has the limit it started with, and the one in force is the admin's.
	e.exec(t, `INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by) VALUES ('carol', 5e9, 2e9, 'ops')`)
	got := states(e.evaluate(t, r))
	slices.Sort(got)
	if want := []string{"budget_exceeded/alice:fired", "budget_exceeded/bob:fired", "budget_exceeded/carol:fired"}; !slices.Equal(got, want) {
		t.Fatalf("first evaluation: %v, want %v", got, want)
	}
	// An admin raises alice's limit (as PUT /admin/budgets does): her alert clears.
	e.exec(t, `INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by) VALUES ('alice', 100e9, 50e9, 'ops')`)
	var later []string
	for range alerts.ClearAfter + 1 {
		later = append(later, states(e.evaluate(t, r))...)
	}
	if want := []string{"budget_exceeded/alice:cleared"}; !slices.Equal(later, want) {
		t.Errorf("alice's limit raised: %v, want %v", later, want)
	}
}

// Every standing rule reads its condition from the tables it watches.
func TestStandingRulesRead(t *testing.T) {
	e := newEnv(t)
	logOps := func(n int, success bool, latency int, at time.Time, cost int64) {
		e.exec(t, `INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, cost_nano, latency_ms, success, error_code, created_at)
			SELECT gen_random_uuid()::text, 'email-compose', 'alice', 'deepseek', 'deepseek', $5, $2, $1, CASE WHEN $1 THEN NULL ELSE 'provider_error' END, $3
			  FROM generate_series(1, $4)`, success, latency, at, n, cost)
	}
	recent := e.now.Add(-time.Minute)
	logOps(30, true, 2500, recent, 1e9) // slow, and $30 today
	logOps(5, false, 100, recent, 0)    // 5 of 35 failed: 14%
	e.exec(t, `INSERT INTO provider_breakers (provider, window_started_at, failures, open_until, last_error) VALUES ('gemini', $1, 5, $2, 'probe: HTTP 503')`, e.now, e.now.Add(time.Minute))
	e.exec(t, `INSERT INTO discord_outbox (channel, kind, payload, created_at) VALUES ('alerts', 'alert', '{}', $1)`, e.now.Add(-20*time.Minute))
	e.exec(t, `INSERT INTO stepup_attempts (user_id, success, attempted_at) SELECT 'creator', false, $1 FROM generate_series(1, 6)`, recent)
	cases := map[string]string{
		alerts.HighErrorRate:    "",
		alerts.SlowOperations:   "",
		alerts.ModelUnavailable: "gemini",
		alerts.CostAnomaly:      "", // $30 today, nothing on the previous days by this time
		alerts.DiscordBacklog:   "alerts",
		alerts.StepUpAttack:     "creator",
	}
	for typ, subject := range cases {
		rd, err := e.store.Readings(context.Background(), e.standing(t, typ), e.now)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if len(rd) != 1 || !rd[0].Active || rd[0].Subject != subject || rd[0].Detail == "" {
			t.Errorf("%s: %+v, want one active reading for %q", typ, rd, subject)
		}
	}
	// The same day a week of equal spend makes today ordinary.
	for d := 1; d <= 7; d++ {
		logOps(30, true, 100, recent.AddDate(0, 0, -d), 1e9)
	}
	rd, _ := e.store.Readings(context.Background(), e.standing(t, alerts.CostAnomaly), e.now)
	if len(rd) != 1 || rd[0].Active {
		t.Errorf("cost anomaly against an equal baseline: %+v, want inactive", rd)
	}
}

// An operator rule's webhook is sealed at rest, never in the audit log, and opens again.
func TestWebhookIsSealed(t *testing.T) {
	e := newEnv(t)
	const hook = "https://discord.com/api/webhooks/42/very-secret-token"
	r, err := e.store.Create(context.Background(), alerts.Rule{Name: "mine", Type: alerts.DailySpend, Threshold: 5, Severity: alerts.Warning, Webhook: hook}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	if err := e.pool.QueryRow(context.Background(), `SELECT webhook_sealed FROM alert_rules WHERE id::text = $1`, r.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("very-secret-token")) {
		t.Error("the webhook is stored in the clear")
	}
	if n := e.count(t, `SELECT count(*) FROM audit_pending WHERE payload LIKE '%very-secret%'`); n != 0 {
		t.Error("the audit log carries the webhook")
	}
	got, err := e.store.Rule(context.Background(), r.ID)
	if err != nil || got.Webhook != hook {
		t.Errorf("reopened webhook %q, %v", got.Webhook, err)
	}
	if err := e.store.Delete(context.Background(), e.standing(t, alerts.BudgetExceeded).ID, "ops"); err != alertstore.ErrStanding {
		t.Errorf("deleting a standing rule: %v, want ErrStanding", err)
	}
}
