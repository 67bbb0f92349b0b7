package main

// The monitoring step: GET /admin/spend for each group_by and the realtime feed, over a log of
// a million operations, through the budget function's handler in process (budgetapp.Mount on an
// app booted as the Lambda boots: no network between the client and the handler, so the numbers
// are the handler's and Postgres's).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/helixhq/helix/infra/migrations"
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/budgetapp"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/postgres"
)

const (
	stepMonitoring = "monitoring"
	// monitoringRows are the log's calls, over monitoringDays days ending now.
	monitoringRows = 1_000_000
	monitoringDays = 30
	// monitoringRequests are the timed requests of each query, after monitoringWarmup untimed.
	monitoringRequests = 50
	monitoringWarmup   = 3
)

// monitoringQuery is one timed request.
type monitoringQuery struct {
	name, path string
}

func (b *bench) monitoring(ctx context.Context) error {
	u, drop, err := b.createDatabase(ctx, "helix_bench_monitoring_"+strings.ToLower(b.stamp))
	if err != nil {
		return err
	}
	defer drop()
	if err := migrations.Up(ctx, u, nil); err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, postgres.PoolConfig{URL: u, MaxConns: 4, ApplicationName: "helix-bench-monitoring"})
	if err != nil {
		return err
	}
	defer pool.Close()
	// The audit trigger's events are not what this step measures.
	if _, err := pool.Exec(ctx, `ALTER TABLE ai_operation_log DISABLE TRIGGER helix_audit_operation`); err != nil {
		return err
	}
	end := time.Now().Add(-time.Minute)
	start := end.Add(-monitoringDays * 24 * time.Hour)
	step := monitoringDays * 24 * time.Hour / monitoringRows
	b.printf("$ INSERT INTO ai_operation_log ... SELECT ... FROM generate_series(1, %d)  # created_at %s .. %s; 5000 users, 6 operations\n",
		monitoringRows, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	t0 := time.Now()
	for first := int64(1); first <= monitoringRows; first += auditInsertChunk {
		last := min(monitoringRows, first+auditInsertChunk-1)
		if err := execOps(ctx, pool, first, last, start.Add(time.Duration(first-1)*step), step); err != nil {
			return err
		}
	}
	// Today's budget days, for the summary: every user who called today.
	if _, err := pool.Exec(ctx, `
		INSERT INTO budget_days (user_id, day, limit_nano, spent_nano)
		SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, 50000000000, sum(cost_nano)
		  FROM ai_operation_log GROUP BY 1, 2`); err != nil {
		return err
	}
	// As autovacuum would leave them.
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) ai_operation_log`); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) budget_days`); err != nil {
		return err
	}
	b.printf("  %d rows and their budget days in %.1fs, vacuumed and analyzed\n", monitoringRows, time.Since(t0).Seconds())

	environ := []string{"DATABASE_URL=" + u, "HELIX_JWT_SECRET=" + string(b.tokens.secret),
		"HELIX_JWT_ISSUER=" + b.tokens.issuer, "HELIX_JWT_AUDIENCE=" + b.tokens.audience}
	a, err := httpapp.Boot(ctx, app.Options{Function: "budget", Environ: environ, LogOut: io.Discard})
	if err != nil {
		return fmt.Errorf("cold start: %w", err)
	}
	defer a.Pool.Close()
	srv := a.NewServer(budgetapp.MaintenanceExempt...)
	budgetapp.Mount(a, srv)
	admin, err := auth.SignHS256(auth.TokenSpec{Secret: b.tokens.secret, Subject: "bench-admin", Issuer: b.tokens.issuer,
		Audience: b.tokens.audience, TTL: time.Hour, Claims: map[string]any{"role": "admin"}})
	if err != nil {
		return err
	}
	get := func(path string) ([]byte, time.Duration, error) {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		rec := httptest.NewRecorder()
		t := time.Now()
		srv.ServeHTTP(rec, req)
		d := time.Since(t)
		if rec.Code != http.StatusOK {
			return nil, d, fmt.Errorf("GET %s: %d %s", path, rec.Code, rec.Body.String())
		}
		return rec.Body.Bytes(), d, nil
	}

	// A cursor half way down the log, for a page deep in the feed.
	first, _, err := get(fmt.Sprintf("/monitoring/operations/realtime?limit=%d", 500))
	if err != nil {
		return err
	}
	var page struct {
		NextAfter string `json:"next_after"`
	}
	if err := json.Unmarshal(first, &page); err != nil || page.NextAfter == "" {
		return fmt.Errorf("the feed's first page has no cursor: %s", first)
	}
	queries := []monitoringQuery{}
	for _, by := range []string{"operation", "user", "model", "day"} {
		queries = append(queries, monitoringQuery{"spend by " + by + ", last 7 days", "/admin/spend?group_by=" + by})
	}
	queries = append(queries,
		monitoringQuery{"spend by operation, last 30 days", "/admin/spend?group_by=operation&from=" + start.UTC().Format(time.DateOnly)},
		monitoringQuery{"spend summary, today", "/admin/spend/summary"},
		monitoringQuery{"realtime, first page of 50", "/monitoring/operations/realtime"},
		monitoringQuery{"realtime, page of 500 after the first", "/monitoring/operations/realtime?limit=500&after=" + page.NextAfter},
		monitoringQuery{"me/usage by day, last 7 days", "/me/usage"},
	)
	b.printf("\n%-40s %6s %9s %9s %9s   %s\n", "GET (in process, 1M-row log)", "n", "p50 ms", "p99 ms", "max ms", "path")
	for _, q := range queries {
		var ds []time.Duration
		for i := range monitoringWarmup + monitoringRequests {
			_, d, err := get(q.path)
			if err != nil {
				return err
			}
			if i >= monitoringWarmup {
				ds = append(ds, d)
			}
		}
		l := summarizeLatencies(ds)
		b.printf("%-40s %6d %9.2f %9.2f %9.2f   %s\n", q.name, l.N, ms(l.P50), ms(l.P99), ms(l.Max), q.path)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
