package monitorstore

import (
	"context"
	"fmt"
	"github.com/helixhq/helix/shared/monitoring"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

var defaults = budget.Limits{DailyLimit: money.MustUSD(50), Warning: money.MustUSD(25)}

// op is one ai_operation_log row to seed.
type op struct {
	operation, user, model, provider string
	cost                             money.Nano
	latency                          int
	ok, fallback                     bool
	at                               time.Time
}

var seq int

func seed(t *testing.T, pool *pgxpool.Pool, ops ...op) {
	t.Helper()
	for _, o := range ops {
		seq++
		var model, provider any
		if o.model != "" {
			model = o.model
		}
		if o.provider != "" {
			provider = o.provider
		}
		if _, err := pool.Exec(t.Context(), `
			INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, cost_nano, latency_ms, success, fallback_used, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			fmt.Sprintf("req-%d", seq), o.operation, o.user, model, provider, int64(o.cost), o.latency, o.ok, o.fallback, o.at); err != nil {
			t.Fatal(err)
		}
	}
}

var day = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// spendFixture is one day of calls with neighbours that must stay out of it: the day before, the
// first instant of the day after (the range is half-open) and a second operation on other days
// (the seeds' cost query, missing its parentheses, counted every day's calls of one).
func spendFixture(t *testing.T) *Store {
	t.Helper()
	pool := pg.NewPool(t)
	ops := []op{
		{"email-compose", "alice", "deepseek", "deepseek", 200, 200, true, false, day}, // the first instant is in
		{"email-compose", "alice", "deepseek", "deepseek", 100, 100, true, false, day.Add(9 * time.Hour)},
		{"email-compose", "alice", "gemini_flash", "gemini", 300, 300, false, true, day.Add(23*time.Hour + 59*time.Minute)},
		{"calendar-prep", "bob", "gemini_flash", "gemini", 50, 50, true, false, day.Add(12 * time.Hour)},
		// Outside [day, day+1).
		{"calendar-prep", "bob", "gemini_flash", "gemini", 1000, 9000, false, true, day.Add(-time.Nanosecond * 1000)},
		{"calendar-prep", "bob", "gemini_flash", "gemini", 1000, 9000, false, true, day.AddDate(0, 0, -3)},
		{"email-compose", "carol", "deepseek", "deepseek", 7777, 7777, false, true, day.AddDate(0, 0, 1)},
	}
	// 20 calls of one operation with latencies 1..20 ms: p95 is 19 (the 19th of 20 values is the
	// smallest with 95% at or below it).
	for i := 1; i <= 20; i++ {
		ops = append(ops, op{"analytics-summary", "dave", "", "", 1, i, true, false, day.Add(time.Duration(i) * time.Minute)})
	}
	seed(t, pool, ops...)
	return New(pool, defaults)
}

func TestSpendGroups(t *testing.T) {
	s := spendFixture(t)
	type want struct {
		key                    string
		calls                  int64
		total, avg             money.Nano
		avgLat                 float64
		p95, max               int64
		errRate, fallbackRates float64
	}
	cases := []struct {
		name string
		q    monitoring.Query
		want []want
	}{
		{"by operation, one day", monitoring.Query{By: monitoring.ByOperation, From: day, To: day.AddDate(0, 0, 1)}, []want{
			{"email-compose", 3, 600, 200, 200, 300, 300, 1.0 / 3, 1.0 / 3},
			{"calendar-prep", 1, 50, 50, 50, 50, 50, 0, 0},
			{"analytics-summary", 20, 20, 1, 10.5, 19, 20, 0, 0},
		}},
		{"by user, one day", monitoring.Query{By: monitoring.ByUser, From: day, To: day.AddDate(0, 0, 1)}, []want{
			{"alice", 3, 600, 200, 200, 300, 300, 1.0 / 3, 1.0 / 3},
			{"bob", 1, 50, 50, 50, 50, 50, 0, 0},
			{"dave", 20, 20, 1, 10.5, 19, 20, 0, 0},
		}},
		{"by model, one day (no model is its own group)", monitoring.Query{By: monitoring.ByModel, From: day, To: day.AddDate(0, 0, 1)}, []want{
			{"gemini_flash", 2, 350, 175, 175, 300, 300, 0.5, 0.5},
			{"deepseek", 2, 300, 150, 150, 200, 200, 0, 0},
			{"", 20, 20, 1, 10.5, 19, 20, 0, 0},
		}},
		{"by day, three days in date order", monitoring.Query{By: monitoring.ByDay, From: day.AddDate(0, 0, -1), To: day.AddDate(0, 0, 2)}, []want{
			{"2026-03-01", 1, 1000, 1000, 9000, 9000, 9000, 1, 1},
			{"2026-03-02", 24, 670, 28, 860.0 / 24, 200, 300, 1.0 / 24, 1.0 / 24}, // p95: the 23rd of 24
			{"2026-03-03", 1, 7777, 7777, 7777, 7777, 7777, 1, 1},
		}},
		{"one user's rows only", monitoring.Query{By: monitoring.ByOperation, From: day.AddDate(0, 0, -7), To: day.AddDate(0, 0, 7), UserID: "bob"}, []want{
			{"calendar-prep", 3, 2050, 683, (50 + 9000 + 9000) / 3.0, 9000, 9000, 2.0 / 3, 2.0 / 3},
		}},
		{"limit keeps the most costly", monitoring.Query{By: monitoring.ByOperation, From: day, To: day.AddDate(0, 0, 1), Limit: 1}, []want{
			{"email-compose", 3, 600, 200, 200, 300, 300, 1.0 / 3, 1.0 / 3},
		}},
		{"an empty range", monitoring.Query{By: monitoring.ByOperation, From: day.AddDate(0, 0, 10), To: day.AddDate(0, 0, 11)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.q.Limit == 0 {
				c.q.Limit = 100
			}
			got, err := s.Spend(t.Context(), c.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d groups %+v, want %d", len(got), got, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.Key != w.key || g.Calls != w.calls || g.Total != w.total || g.AvgCost != w.avg ||
					!near(g.AvgLatencyMS, w.avgLat) || g.P95LatencyMS != w.p95 || g.MaxLatencyMS != w.max ||
					!near(g.ErrorRate, w.errRate) || !near(g.FallbackRate, w.fallbackRates) {
					t.Errorf("group %d = %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

func TestSpendRefusesBadQueries(t *testing.T) {
	s := New(pg.NewPool(t), defaults)
	for _, q := range []monitoring.Query{
		{By: "hour", From: day, To: day.AddDate(0, 0, 1), Limit: 1},
		{By: "operation; DROP TABLE ai_operation_log", From: day, To: day.AddDate(0, 0, 1), Limit: 1},
		{By: monitoring.ByDay, From: day, To: day, Limit: 1},
		{By: monitoring.ByDay, From: day, To: day.AddDate(0, 0, 1)},
	} {
		if _, err := s.Spend(t.Context(), q); err == nil {
			t.Errorf("Spend(%+v) = nil error", q)
		}
	}
}

func TestRecentPages(t *testing.T) {
	pool := pg.NewPool(t)
	for i := range 5 {
		seed(t, pool, op{fmt.Sprintf("op-%d", i), "u", "deepseek", "deepseek", money.Nano(i), i * 10, i != 2, i == 3, day.Add(time.Duration(i) * time.Second)})
	}
	s := New(pool, defaults)
	var got []string
	before := int64(0)
	for range 10 {
		page, err := s.Recent(t.Context(), before, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			got = append(got, o.OperationID)
		}
		before = page[len(page)-1].ID
	}
	if fmt.Sprint(got) != "[op-4 op-3 op-2 op-1 op-0]" {
		t.Errorf("pages = %v, want newest first, each once", got)
	}
	first, err := s.Recent(t.Context(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if o := first[0]; o.UserID != "u" || o.Model != "deepseek" || o.Cost != 4 || o.LatencyMS != 40 || !o.Success || o.Fallback ||
		!o.CreatedAt.Equal(day.Add(4*time.Second)) {
		t.Errorf("newest = %+v", o)
	}
}

func TestSummary(t *testing.T) {
	pool := pg.NewPool(t)
	now := day.Add(15 * time.Hour)
	var ops []op
	for i := range 5 {
		ops = append(ops, op{"chat_message", "alice", "deepseek", "deepseek", 1000, 10, i != 0, false, day.Add(time.Duration(i) * time.Hour)})
	}
	ops = append(ops,
		op{"memory_synthesis", "bob", "gemini_flash", "gemini", 500, 10, true, false, day.Add(time.Hour)},
		// Yesterday's and tomorrow's calls stay out.
		op{"chat_message", "bob", "claude", "anthropic", 99999, 10, true, true, day.Add(-time.Microsecond)},
		op{"chat_message", "bob", "claude", "anthropic", 99999, 10, true, true, day.AddDate(0, 0, 1)},
	)
	seed(t, pool, ops...)
	ctx := t.Context()
	mustExec(ctx, t, pool, `INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by) VALUES ('bob', $1, $2, 'admin')`,
		int64(money.MustUSD(20)), int64(money.MustUSD(10)))
	for _, d := range []struct {
		user  string
		day   time.Time
		spent money.Nano
	}{
		{"alice", day, money.MustUSD(10)},                  // default limit $50: 0.2
		{"bob", day, money.MustUSD(30)},                    // own limit $20: 1.5, over warning and limit
		{"carol", day, 0},                                  // nothing spent: not counted
		{"dave", day.AddDate(0, 0, -1), money.MustUSD(49)}, // yesterday
	} {
		mustExec(ctx, t, pool, `INSERT INTO budget_days (user_id, day, limit_nano, spent_nano) VALUES ($1, $2, 1, $3)`, d.user, d.day, int64(d.spent))
	}
	sum, err := New(pool, defaults).Summary(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Date.Equal(day) || sum.Calls != 6 || sum.Spend != 5500 || sum.Errors != 1 {
		t.Errorf("summary = %+v, want 6 calls, 5500 nano, 1 error on %s", sum, day)
	}
	if len(sum.Providers) != 2 || sum.Providers[0] != (monitoring.ProviderShare{Provider: "deepseek", Calls: 5, Share: 5.0 / 6}) || sum.Providers[1] != (monitoring.ProviderShare{Provider: "gemini", Calls: 1, Share: 1.0 / 6}) {
		t.Errorf("providers = %+v", sum.Providers)
	}
	u := sum.Budgets
	if u.Users != 2 || u.Spent != money.MustUSD(40) || u.Limit != money.MustUSD(70) || !near(u.Ratio, 40.0/70) ||
		u.OverWarning != 1 || u.AtLimit != 1 || !near(u.MaxRatio, 1.5) {
		t.Errorf("budgets = %+v", u)
	}
	if len(u.MostSpending) != 2 || u.MostSpending[0] != (monitoring.UserBudget{UserID: "bob", Spent: money.MustUSD(30), Limit: money.MustUSD(20), Ratio: 1.5}) ||
		u.MostSpending[1] != (monitoring.UserBudget{UserID: "alice", Spent: money.MustUSD(10), Limit: money.MustUSD(50), Ratio: 0.2}) {
		t.Errorf("most spending = %+v", u.MostSpending)
	}

	// A day without calls: no shares to divide, no users.
	empty, err := New(pool, defaults).Summary(ctx, day.AddDate(0, 0, 5))
	if err != nil {
		t.Fatal(err)
	}
	if empty.Calls != 0 || len(empty.Providers) != 0 || empty.Budgets.Users != 0 || empty.Budgets.MostSpending == nil {
		t.Errorf("empty day = %+v", empty)
	}
}

func mustExec(ctx context.Context, t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}
