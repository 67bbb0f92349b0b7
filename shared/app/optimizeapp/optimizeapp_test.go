package optimizeapp_test

// These tests run the daily optimizer over a seeded week of ai_operation_log on a migrated
// database, at a pinned clock (06:00 UTC on 2 December 2026), and compare what it finds and
// writes with numbers worked out by hand.

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/app/optimizeapp"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/optimize"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/optimizestore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

const usd = money.PerUSD

var runAt = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)

type row struct {
	op, user, model  string
	in, out, latency int64
	cost             money.Nano
	ok, fallback     bool
	at               time.Time
}

func insert(t *testing.T, pool *pgxpool.Pool, rows []row) {
	t.Helper()
	ctx := context.Background()
	for i, r := range rows {
		if _, err := pool.Exec(ctx, `
			INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, input_tokens,
			                              output_tokens, cost_nano, latency_ms, success, fallback_used, created_at)
			VALUES ($1, $2, $3, $4, 'p', $5, $6, $7, $8, $9, $10, $11)`,
			"req-"+r.at.Format(time.RFC3339Nano)+"-"+string(rune('a'+i%26))+r.op+r.user+r.model+itoa(i),
			r.op, r.user, r.model, r.in, r.out, int64(r.cost), r.latency, r.ok, r.fallback, r.at); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// seededWeek is the week the expectations below are worked out from.
//
//   - email-compose: 100 deepseek calls (98 ok, 400 ms, 100,000 in / 20,000 out, $0.05 each) and
//     40 gemini fallbacks (39 ok, 450 ms, 50,000 in / 12,500 out, $0.025 each), an hour apart
//     from the window's start: $6, 12,000,000 in and 2,500,000 out in all.
//   - alice's chat_message (800 ms, no tokens): $1 at 05:00 on each of the 7 days (the baseline of
//     today's first six hours: $7, $1 a day), $100 at 07:00 on each (outside them), and today $1
//     at 01:00, 02:00 and 03:00 ($3 so far), plus $50 at 07:00 today, after the run's clock.
//   - a $1,000 call the day before the window, which nothing may count.
func seededWeek() []row {
	from := runAt.AddDate(0, 0, -7).Truncate(24 * time.Hour)
	var rows []row
	for i := range 100 {
		rows = append(rows, row{"email-compose", "u" + itoa(i%5), "deepseek", 100_000, 20_000, 400, 50_000_000, i >= 2, false, from.Add(time.Duration(i) * time.Hour)})
	}
	for i := range 40 {
		rows = append(rows, row{"email-compose", "u" + itoa(i%5), "gemini_flash", 50_000, 12_500, 450, 25_000_000, i >= 1, true, from.Add(time.Duration(i)*time.Hour + 30*time.Minute)})
	}
	for d := range 7 {
		day := from.AddDate(0, 0, d)
		rows = append(rows,
			row{"chat_message", "alice", "deepseek", 0, 0, 800, 1 * usd, true, false, day.Add(5 * time.Hour)},
			row{"chat_message", "alice", "deepseek", 0, 0, 800, 100 * usd, true, false, day.Add(7 * time.Hour)})
	}
	today := runAt.Truncate(24 * time.Hour)
	for h := 1; h <= 3; h++ {
		rows = append(rows, row{"chat_message", "alice", "deepseek", 0, 0, 800, 1 * usd, true, false, today.Add(time.Duration(h) * time.Hour)})
	}
	rows = append(rows,
		row{"chat_message", "alice", "deepseek", 0, 0, 800, 50 * usd, true, false, today.Add(7 * time.Hour)},
		row{"email-compose", "bob", "deepseek", 100_000_000, 0, 9000, 1000 * usd, true, false, from.Add(-time.Minute)})
	return rows
}

func newOptimizer(t *testing.T) (*optimizeapp.Optimizer, *pgxpool.Pool) {
	pool := pg.NewPool(t)
	insert(t, pool, seededWeek())
	return &optimizeapp.Optimizer{Store: optimizestore.New(pool), Now: func() time.Time { return runAt }}, pool
}

func TestRunOverASeededWeek(t *testing.T) {
	o, pool := newOptimizer(t)
	ctx := context.Background()
	res, err := o.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Day != "2026-12-02" {
		t.Errorf("day %q", res.Day)
	}
	wantTop := []optimize.Costly{
		{OperationID: "chat_message", Calls: 14, Cost: 707 * usd},
		{OperationID: "email-compose", Calls: 140, Cost: 6 * usd},
	}
	if !slices.Equal(res.TopCostly, wantTop) {
		t.Errorf("top costly\n got %+v\nwant %+v", res.TopCostly, wantTop)
	}
	// email-compose averages (100×400 + 40×450)/140 = 414 ms: not slow.
	if want := []optimize.Slow{{OperationID: "chat_message", Calls: 14, AvgLatencyMS: 800}}; !slices.Equal(res.Slow, want) {
		t.Errorf("slow %+v, want %+v", res.Slow, want)
	}
	// $3 today against $7/7 = $1 for the same hours: both alice and chat_message, $2 above.
	wantAnomalies := []optimize.Anomaly{
		{Scope: "operation", Key: "chat_message", Today: 3 * usd, Baseline: 1 * usd},
		{Scope: "user", Key: "alice", Today: 3 * usd, Baseline: 1 * usd},
	}
	if !slices.Equal(res.Anomalies, wantAnomalies) {
		t.Errorf("anomalies\n got %+v\nwant %+v", res.Anomalies, wantAnomalies)
	}
	// 12,000,000 in and 2,500,000 out: $4.41 at deepseek, $2.20 at gemini; $2.21 a week,
	// 2.21 × 30 / 7 = $9.471428571 a month.
	if res.New != 1 || res.Refreshed != 0 || len(res.Recommendations) != 1 || res.MonthlySaving != 9_471_428_571 {
		t.Fatalf("recommendations: %+v", res)
	}
	recs, err := o.Store.List(ctx, "", 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("stored %d recommendations (%v)", len(recs), err)
	}
	r := recs[0]
	var p optimize.Proposal
	var ev optimize.Evidence
	if err := json.Unmarshal(r.Proposal, &p); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(r.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if r.Type != "model_switch" || r.Target != "email-compose" || r.Status != "pending" || r.MonthlySaving != 9_471_428_571 ||
		p != (optimize.Proposal{PrimaryModel: "gemini_flash", FallbackModel: "deepseek"}) ||
		ev.InputTokens != 12_000_000 || ev.OutputTokens != 2_500_000 || ev.WeeklyCurrent != 4_410_000_000 || ev.WeeklyCandidate != 2_200_000_000 ||
		ev.Current != (optimize.Perf{Model: "deepseek", Calls: 100, Successes: 98, AvgLatencyMS: 400}) ||
		ev.Candidate != (optimize.Perf{Model: "gemini_flash", Calls: 40, Successes: 39, AvgLatencyMS: 450}) ||
		r.AnalysisDay.Format(time.DateOnly) != "2026-12-02" || r.Reasoning == "" {
		t.Errorf("stored %+v\nproposal %+v\nevidence %+v", r, p, ev)
	}

	// The run's summary is in the audit log, for #helix-alerts: counts and aggregates only.
	var kind, payload string
	if err := pool.QueryRow(ctx, `SELECT kind, payload FROM audit_pending WHERE kind = 'optimizer'`).Scan(&kind, &payload); err != nil {
		t.Fatal(err)
	}
	var sum optimize.Summary
	if err := json.Unmarshal([]byte(payload), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Day != "2026-12-02" || sum.NewRecommendations != 1 || sum.MonthlySaving != 9_471_428_571 || len(sum.Anomalies) != 2 || len(sum.TopCostly) != 2 {
		t.Errorf("summary %s", payload)
	}

	// A second run the same day refreshes the pending recommendation, adds none.
	again, err := o.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.New != 0 || again.Refreshed != 1 || again.Recommendations[0] != res.Recommendations[0] {
		t.Errorf("second run: %+v", again)
	}
	if recs, _ := o.Store.List(ctx, "", 10); len(recs) != 1 {
		t.Errorf("%d recommendations after two runs", len(recs))
	}
}

// A pending switch the next run no longer supports (here: its route changed in between) becomes
// stale, with the reason.
func TestRunMarksStalePending(t *testing.T) {
	o, pool := newOptimizer(t)
	ctx := context.Background()
	if _, err := o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE ai_model_routes SET primary_model = 'gemini_flash', fallback_model = NULL WHERE operation_id = 'email-compose'`); err != nil {
		t.Fatal(err)
	}
	res, err := o.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.New != 0 || res.Stale != 1 {
		t.Errorf("second run: %+v", res)
	}
	recs, _ := o.Store.List(ctx, "stale", 10)
	if len(recs) != 1 || !strings.Contains(recs[0].StaleReason, "primary model is now gemini_flash") {
		t.Fatalf("stale: %+v", recs)
	}
}

// A pending switch whose evidence is gone (here: gemini's calls) becomes stale at the next run,
// saying so; the route is untouched.
func TestRunMarksUnsupportedPendingStale(t *testing.T) {
	o, pool := newOptimizer(t)
	ctx := context.Background()
	if _, err := o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM ai_operation_log WHERE model_used = 'gemini_flash'`); err != nil {
		t.Fatal(err)
	}
	res, err := o.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := o.Store.List(ctx, "stale", 10)
	if res.Stale != 1 || len(recs) != 1 || !strings.Contains(recs[0].StaleReason, "no longer proposes it") {
		t.Fatalf("second run %+v, stale %+v", res, recs)
	}
}
