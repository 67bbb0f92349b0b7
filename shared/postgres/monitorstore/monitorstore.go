// Package monitorstore is the monitoring API's read side of ai_operation_log and the budget
// ledger: the live operation feed, spend grouped by operation, user, model or day over a time
// range, and today's summary. Every query is served by an index (migration 00011 lists which);
// a test over a million rows checks their plans.
package monitorstore

import (
	"context"
	"errors"
	"fmt"
	"github.com/helixhq/helix/shared/monitoring"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/money"
)

// Store reads the monitoring figures. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// defaults are the limits of users without a user_budgets row, as the ledger applies them.
	defaults budget.Limits
}

// New returns the store; defaults are the configured default limits.
func New(pool *pgxpool.Pool, defaults budget.Limits) *Store {
	return &Store{pool: pool, defaults: defaults}
}

// recentSQL is the feed: newest first by id (the insertion order, a total order the primary
// key serves backward), below the cursor.
const recentSQL = `
SELECT id, operation_id, user_id, COALESCE(model_used, ''), cost_nano, latency_ms, success, fallback_used, created_at
  FROM ai_operation_log
 WHERE id < $1
 ORDER BY id DESC
 LIMIT $2`

// Recent returns up to limit operations older than before (an id; 0 for the newest), newest
// first.
func (s *Store) Recent(ctx context.Context, before int64, limit int) ([]monitoring.Operation, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	rows, err := s.pool.Query(ctx, recentSQL, before, limit)
	if err != nil {
		return nil, fmt.Errorf("recent operations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (monitoring.Operation, error) {
		var o monitoring.Operation
		var cost int64
		err := r.Scan(&o.ID, &o.OperationID, &o.UserID, &o.Model, &cost, &o.LatencyMS, &o.Success, &o.Fallback, &o.CreatedAt)
		o.Cost = money.Nano(cost)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("recent operations: %w", err)
	}
	return out, nil
}

// keyExpr is each grouping's key. Only these fixed expressions reach the SQL text; the caller's
// values are parameters.
var keyExpr = map[monitoring.GroupBy]string{
	monitoring.ByOperation: "operation_id",
	monitoring.ByUser:      "user_id",
	monitoring.ByModel:     "COALESCE(model_used, '')",
	monitoring.ByDay:       "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}

// spendSQL builds the statement for a grouping. Each predicate is parenthesized and every value
// a parameter, so a later AND or OR cannot rebind the range (the seeds' cost query counted every
// day's calls of a second operation that way).
func spendSQL(by monitoring.GroupBy, perUser bool) (string, error) {
	key, ok := keyExpr[by]
	if !ok {
		return "", fmt.Errorf("spend: unknown grouping %q", by)
	}
	where := `(created_at >= $1) AND (created_at < $2)`
	if perUser {
		where = `(user_id = $4) AND ` + where
	}
	order := `total DESC, k`
	if by == monitoring.ByDay {
		order = `k`
	}
	return `
SELECT ` + key + ` AS k,
       count(*) AS calls,
       COALESCE(sum(cost_nano), 0)::bigint AS total,
       avg(latency_ms)::float8,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms),
       max(latency_ms),
       count(*) FILTER (WHERE NOT success),
       count(*) FILTER (WHERE fallback_used)
  FROM ai_operation_log
 WHERE ` + where + `
 GROUP BY k
 ORDER BY ` + order + `
 LIMIT $3`, nil
}

// Spend returns q's groups.
func (s *Store) Spend(ctx context.Context, q monitoring.Query) ([]monitoring.Group, error) {
	if !q.To.After(q.From) {
		return nil, errors.New("spend: to must be after from")
	}
	if q.Limit <= 0 {
		return nil, errors.New("spend: limit must be positive")
	}
	sql, err := spendSQL(q.By, q.UserID != "")
	if err != nil {
		return nil, err
	}
	args := []any{q.From, q.To, q.Limit}
	if q.UserID != "" {
		args = append(args, q.UserID)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (monitoring.Group, error) {
		var g monitoring.Group
		var total int64
		var p95, max int32
		err := r.Scan(&g.Key, &g.Calls, &total, &g.AvgLatencyMS, &p95, &max, &g.Errors, &g.Fallbacks)
		g.Total, g.P95LatencyMS, g.MaxLatencyMS = money.Nano(total), int64(p95), int64(max)
		if g.Calls > 0 {
			g.AvgCost = money.Nano((total + g.Calls/2) / g.Calls)
			g.ErrorRate = float64(g.Errors) / float64(g.Calls)
			g.FallbackRate = float64(g.Fallbacks) / float64(g.Calls)
		}
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	return out, nil
}

// TopUsers is how many users Summary lists by name.
const TopUsers = 10

const providersSQL = `
SELECT COALESCE(provider, ''), count(*), COALESCE(sum(cost_nano), 0)::bigint, count(*) FILTER (WHERE NOT success)
  FROM ai_operation_log
 WHERE (created_at >= $1) AND (created_at < $2)
 GROUP BY 1
 ORDER BY 2 DESC, 1`

// budgetsSQL is every user with spend on day $1 against their limit; $2 and $3 are the defaults,
// $4 how many users to name.
const budgetsSQL = `
WITH u AS (
  SELECT d.user_id, d.spent_nano AS spent,
         COALESCE(ub.daily_limit_nano, $2::bigint) AS lim,
         COALESCE(ub.warning_threshold_nano, $3::bigint) AS warn
    FROM budget_days d
    LEFT JOIN user_budgets ub ON ub.user_id = d.user_id
   WHERE (d.day = $1) AND (d.spent_nano > 0)
)
SELECT count(*), COALESCE(sum(spent), 0)::bigint, COALESCE(sum(lim), 0)::bigint,
       count(*) FILTER (WHERE spent >= warn), count(*) FILTER (WHERE spent >= lim),
       COALESCE((SELECT json_agg(t) FROM (
           SELECT user_id, spent, lim FROM u
            ORDER BY (CASE WHEN lim > 0 THEN spent::float8 / lim ELSE 'Infinity'::float8 END) DESC, spent DESC, user_id
            LIMIT $4) t), '[]')
  FROM u`

// Summary returns the figures of the UTC day that contains day.
func (s *Store) Summary(ctx context.Context, day time.Time) (monitoring.Summary, error) {
	from := budget.DateOf(day)
	to := from.AddDate(0, 0, 1)
	sum := monitoring.Summary{Date: from, Providers: []monitoring.ProviderShare{}}
	rows, err := s.pool.Query(ctx, providersSQL, from, to)
	if err != nil {
		return monitoring.Summary{}, fmt.Errorf("summary: %w", err)
	}
	var spend int64
	for rows.Next() {
		var p monitoring.ProviderShare
		var cost, errs int64
		if err := rows.Scan(&p.Provider, &p.Calls, &cost, &errs); err != nil {
			rows.Close()
			return monitoring.Summary{}, fmt.Errorf("summary: %w", err)
		}
		sum.Calls += p.Calls
		sum.Errors += errs
		spend += cost
		sum.Providers = append(sum.Providers, p)
	}
	if err := rows.Err(); err != nil {
		return monitoring.Summary{}, fmt.Errorf("summary: %w", err)
	}
	sum.Spend = money.Nano(spend)
	for i := range sum.Providers {
		sum.Providers[i].Share = float64(sum.Providers[i].Calls) / float64(sum.Calls)
	}

	var u monitoring.Utilisation
	var spent, limit int64
	var top []struct {
		UserID string `json:"user_id"`
		Spent  int64  `json:"spent"`
		Lim    int64  `json:"lim"`
	}
	err = s.pool.QueryRow(ctx, budgetsSQL, from, int64(s.defaults.DailyLimit), int64(s.defaults.Warning), TopUsers).
		Scan(&u.Users, &spent, &limit, &u.OverWarning, &u.AtLimit, &top)
	if err != nil {
		return monitoring.Summary{}, fmt.Errorf("summary: budgets: %w", err)
	}
	u.Spent, u.Limit = money.Nano(spent), money.Nano(limit)
	u.Ratio = ratio(spent, limit)
	u.MostSpending = make([]monitoring.UserBudget, 0, len(top))
	for _, t := range top {
		b := monitoring.UserBudget{UserID: t.UserID, Spent: money.Nano(t.Spent), Limit: money.Nano(t.Lim), Ratio: ratio(t.Spent, t.Lim)}
		u.MostSpending = append(u.MostSpending, b)
		u.MaxRatio = max(u.MaxRatio, b.Ratio)
	}
	sum.Budgets = u
	return sum, nil
}

// ratio is spent over limit; a zero limit with spend counts as fully used (JSON has no infinity).
func ratio(spent, limit int64) float64 {
	switch {
	case limit > 0:
		return float64(spent) / float64(limit)
	case spent > 0:
		return 1
	}
	return 0
}
