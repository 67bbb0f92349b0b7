package monitorstore

import (
	"encoding/json"
	"github.com/helixhq/helix/shared/monitoring"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/budget"
)

// planRows is the log the plans are checked over: a million calls over 90 days (the last one
// now), 5,000 users, the seed's 17 operations, three models.
const (
	planRows = 1_000_000
	planDays = 90
)

// TestPlansUseIndexes seeds a million-row ai_operation_log and a month of budget days, ANALYZEs,
// and checks that no query the monitoring API runs reads ai_operation_log (or budget_days) with a
// sequential scan, with the parameters the API sends by default.
func TestPlansUseIndexes(t *testing.T) {
	pool := pg.NewPool(t)
	ctx := t.Context()
	now := time.Now().UTC()
	start := now.Add(-planDays * 24 * time.Hour)
	step := time.Duration(int64(planDays*24*time.Hour) / planRows)
	// The audit trigger would queue a million audit events: not what this test is about.
	mustExec(ctx, t, pool, `ALTER TABLE ai_operation_log DISABLE TRIGGER helix_audit_operation`)
	mustExec(ctx, t, pool, `
		INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, input_tokens, output_tokens,
		                              cost_nano, latency_ms, success, fallback_used, created_at)
		SELECT 'plan-' || i,
		       (ARRAY['chat_message','agent_execution','memory_synthesis','sentiment_analysis','video_understanding',
		              'audio_transcription','text_to_speech','email_analysis','email-compose','email-classify',
		              'email-respond','calendar-prep','calendar-time','task-prioritize','task-breakdown',
		              'analytics-summary','analytics-anomaly'])[1 + i % 17],
		       'user-' || (i::bigint * 7919) % 5000,
		       (ARRAY['deepseek','deepseek','deepseek','deepseek','gemini_flash','claude'])[1 + i % 6],
		       (ARRAY['deepseek','deepseek','deepseek','deepseek','gemini','anthropic'])[1 + i % 6],
		       500, 200, 100000 + i % 1000, 100 + (i * 31) % 2000, i % 50 <> 0, i % 20 = 0,
		       $1::timestamptz + i * $2::interval
		  FROM generate_series(1, $3::int) AS i`, start, step, planRows)
	mustExec(ctx, t, pool, `
		INSERT INTO budget_days (user_id, day, limit_nano, spent_nano)
		SELECT 'user-' || u, ($1::date - d), 50000000000, 1000000 * (u % 50)
		  FROM generate_series(0, 4999) AS u, generate_series(0, 29) AS d`, now)
	mustExec(ctx, t, pool, `ANALYZE ai_operation_log`)
	mustExec(ctx, t, pool, `ANALYZE budget_days`)

	to := budget.DateOf(now).AddDate(0, 0, 1)
	week := to.AddDate(0, 0, -7)
	type plan struct {
		name string
		sql  string
		args []any
	}
	plans := []plan{
		{"realtime, first page", recentSQL, []any{int64(math.MaxInt64), 50}},
		{"realtime, a later page", recentSQL, []any{int64(planRows / 2), 500}},
		{"summary: providers today", providersSQL, []any{budget.DateOf(now), to}},
		{"summary: budgets today", budgetsSQL, []any{budget.DateOf(now), int64(1), int64(1), TopUsers}},
	}
	for _, by := range []monitoring.GroupBy{monitoring.ByOperation, monitoring.ByUser, monitoring.ByModel, monitoring.ByDay} {
		sql, err := spendSQL(by, false)
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, plan{"admin spend by " + string(by) + ", last 7 days", sql, []any{week, to, 100}})
		if by == monitoring.ByDay || by == monitoring.ByOperation {
			user, err := spendSQL(by, true)
			if err != nil {
				t.Fatal(err)
			}
			plans = append(plans, plan{"me/usage by " + string(by) + ", last 30 days", user, []any{to.AddDate(0, 0, -30), to, 100, "user-42"}})
		}
	}
	for _, p := range plans {
		t.Run(p.name, func(t *testing.T) {
			var raw []byte
			if err := pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+p.sql, p.args...).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			var doc []struct {
				Plan node `json:"Plan"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil || len(doc) != 1 {
				t.Fatalf("EXPLAIN output %s: %v", raw, err)
			}
			var scans []string
			doc[0].Plan.walk(func(n node) {
				switch {
				case n.Relation == "ai_operation_log" || n.Relation == "budget_days":
					scans = append(scans, n.Type+" on "+n.Relation+" "+n.Index)
				case n.Type == "Bitmap Index Scan":
					scans = append(scans, n.Type+" "+n.Index)
				}
				if n.Type == "Seq Scan" && (n.Relation == "ai_operation_log" || n.Relation == "budget_days") {
					t.Errorf("sequential scan of %s:\n%s", n.Relation, raw)
				}
			})
			if len(scans) == 0 {
				t.Errorf("the plan reads neither table:\n%s", raw)
			}
			t.Logf("%s", strings.Join(scans, "; "))
		})
	}
}

// node is a plan node of EXPLAIN (FORMAT JSON).
type node struct {
	Type     string `json:"Node Type"`
	Relation string `json:"Relation Name"`
	Index    string `json:"Index Name"`
	Plans    []node `json:"Plans"`
}

func (n node) walk(f func(node)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}
