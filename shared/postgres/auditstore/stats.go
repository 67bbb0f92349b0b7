package auditstore

import (
	"context"
	"fmt"
	"time"
)

// Activity is what the operation log shows for a window.
type Activity struct {
	Operations   int64
	Errors       int64
	P95LatencyMS int64
}

// Activity counts the operations logged in (from, to], those that failed, and their p95
// latency (one index range scan: idx_ai_ops_created).
func (l *Log) Activity(ctx context.Context, from, to time.Time) (Activity, error) {
	var a Activity
	var p95 *float64
	err := l.pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE NOT success),
		       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
		  FROM ai_operation_log WHERE created_at > $1 AND created_at <= $2`, from, to).Scan(&a.Operations, &a.Errors, &p95)
	if err != nil {
		return a, fmt.Errorf("audit activity: %w", err)
	}
	if p95 != nil {
		a.P95LatencyMS = int64(*p95 + 0.5)
	}
	return a, nil
}
