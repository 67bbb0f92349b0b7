package alertstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/money"
)

// Outcomes that are not the service failing: a user over budget, a client that hung up.
const notServiceErrors = `('budget_exceeded', 'client_gone')`

// Readings is what a rule sees now. Rules that watch the system as a whole return one reading
// (subject ""); rules per user, provider or channel return one per subject whose condition holds.
// Every query is bounded by an index (created_at, day or the outbox's partial index).
func (s *Store) Readings(ctx context.Context, r alerts.Rule, now time.Time) ([]alerts.Reading, error) {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch r.Type {
	case alerts.HighDailySpend, alerts.DailySpend:
		var spent int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(spent_nano), 0)::bigint FROM budget_days WHERE day = $1::date`, day).Scan(&spent); err != nil {
			return nil, err
		}
		usd := money.Nano(spent).USD()
		return []alerts.Reading{{Active: usd > r.Threshold, Value: usd,
			Detail: fmt.Sprintf("all users' spend today is $%s (threshold $%g)", money.Nano(spent), r.Threshold)}}, nil

	case alerts.UserSpend:
		return s.perSubject(ctx, `SELECT user_id, spent_nano::float8 / 1e9 FROM budget_days WHERE day = $1::date AND spent_nano > $2`,
			func(subj string, v float64) string {
				return fmt.Sprintf("%s has spent $%.6g today (threshold $%g)", subj, v, r.Threshold)
			},
			day, int64(r.Threshold*1e9))

	case alerts.BudgetExceeded:
		// The limit in force: the user's own (changed today, perhaps), else the default the
		// day started with.
		return s.perSubject(ctx, `SELECT d.user_id, d.spent_nano::float8 / 1e9 FROM budget_days d
			LEFT JOIN user_budgets b ON b.user_id = d.user_id
			WHERE d.day = $1::date AND d.spent_nano > 0 AND d.spent_nano >= coalesce(b.daily_limit_nano, d.limit_nano)`,
			func(subj string, v float64) string {
				return fmt.Sprintf("%s reached their daily limit ($%.6g spent)", subj, v)
			}, day)

	case alerts.HighErrorRate, alerts.ErrorRate:
		var calls, failed int64
		if err := s.pool.QueryRow(ctx, `
			SELECT count(*), count(*) FILTER (WHERE NOT success AND coalesce(error_code, '') NOT IN `+notServiceErrors+`)
			  FROM ai_operation_log WHERE created_at >= $1 AND created_at < $2`, now.Add(-alerts.Window), now).Scan(&calls, &failed); err != nil {
			return nil, err
		}
		rate := 0.0
		if calls > 0 {
			rate = float64(failed) / float64(calls)
		}
		return []alerts.Reading{{Active: calls >= alerts.MinCalls && rate > r.Threshold, Value: rate,
			Detail: fmt.Sprintf("%d of %d operations failed in the last %s (%.1f%%, threshold %.1f%%)", failed, calls, alerts.Window, rate*100, r.Threshold*100)}}, nil

	case alerts.SlowOperations, alerts.Latency:
		var calls int64
		var avg float64
		if err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(avg(latency_ms), 0)::float8 FROM ai_operation_log
			WHERE created_at >= $1 AND created_at < $2 AND success`, now.Add(-alerts.Window), now).Scan(&calls, &avg); err != nil {
			return nil, err
		}
		return []alerts.Reading{{Active: calls >= alerts.MinCalls/4 && avg > r.Threshold, Value: avg,
			Detail: fmt.Sprintf("operations averaged %.0f ms over the last %s (%d calls, threshold %g ms)", avg, alerts.Window, calls, r.Threshold)}}, nil

	case alerts.ModelUnavailable:
		rows, err := s.pool.Query(ctx, `SELECT provider, last_error FROM provider_breakers WHERE open_until > $1 ORDER BY provider`, now)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(row pgx.CollectableRow) (alerts.Reading, error) {
			var rd alerts.Reading
			var last string
			err := row.Scan(&rd.Subject, &last)
			rd.Active, rd.Value = true, 1
			rd.Detail = fmt.Sprintf("provider %s is unavailable: its circuit breaker is open (calls or health probes failing; last error: %s)", rd.Subject, last)
			return rd, err
		})

	case alerts.CostAnomaly:
		// Today's spend so far against the mean of the last BaselineDays days' spend up to the
		// same time of day.
		var today, baseline int64
		if err := s.pool.QueryRow(ctx, `
			SELECT (SELECT coalesce(sum(cost_nano), 0) FROM ai_operation_log WHERE created_at >= $1 AND created_at < $2)::bigint,
			       (SELECT coalesce(sum(l.cost_nano), 0) FROM generate_series(1, $3::int) AS d(n)
			          JOIN ai_operation_log l ON l.created_at >= $1 - d.n * interval '1 day' AND l.created_at < $2 - d.n * interval '1 day')::bigint / $3`,
			day, now, alerts.BaselineDays).Scan(&today, &baseline); err != nil {
			return nil, err
		}
		t, b := money.Nano(today).USD(), money.Nano(baseline).USD()
		ratio := 0.0
		if b > 0 {
			ratio = t / b
		}
		active := t > alerts.AnomalyFloor && (b == 0 || t > r.Threshold*b)
		return []alerts.Reading{{Active: active, Value: t,
			Detail: fmt.Sprintf("today's spend so far is $%s against a baseline of $%s by this time of day (%.1f×, threshold %g×)",
				money.Nano(today), money.Nano(baseline), ratio, r.Threshold)}}, nil

	case alerts.DiscordBacklog:
		return s.perSubject(ctx, `SELECT channel, extract(epoch FROM $1::timestamptz - min(created_at))::float8 FROM discord_outbox
			WHERE delivered_at IS NULL AND dead_at IS NULL GROUP BY channel HAVING min(created_at) < $1::timestamptz - $2 * interval '1 second'`,
			func(subj string, v float64) string {
				return fmt.Sprintf("the %s channel's oldest undelivered message is %.0f s old (threshold %g s)", subj, v, r.Threshold)
			}, now, r.Threshold)

	case alerts.StepUpAttack:
		return s.perSubject(ctx, `SELECT user_id, count(*)::float8 FROM stepup_attempts
			WHERE NOT success AND attempted_at >= $1 GROUP BY user_id HAVING count(*) >= $2`,
			func(subj string, v float64) string {
				return fmt.Sprintf("%.0f failed step-up attempts as %s in the last %s (threshold %g)", v, subj, alerts.StepUpWindow, r.Threshold)
			}, now.Add(-alerts.StepUpWindow), r.Threshold)
	}
	return nil, fmt.Errorf("alert rule %s: unknown type %q", r.ID, r.Type)
}

// perSubject reads (subject, value) rows whose condition holds.
func (s *Store) perSubject(ctx context.Context, sql string, detail func(string, float64) string, args ...any) ([]alerts.Reading, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (alerts.Reading, error) {
		var rd alerts.Reading
		err := row.Scan(&rd.Subject, &rd.Value)
		rd.Active, rd.Detail = true, detail(rd.Subject, rd.Value)
		return rd, err
	})
}
