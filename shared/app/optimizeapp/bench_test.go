package optimizeapp_test

import (
	"context"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/app/optimizeapp"
	"github.com/helixhq/helix/shared/postgres/optimizestore"
)

// BenchmarkRunOverAMillionOperations is one optimizer run over a week of 1,000,000 operations
// (the seeded routes' 17 operations, deepseek and gemini, 1,000 users, spread evenly over the 7
// days and today's first six hours; 1% failures). The target: under 10 s a run.
//
//	go test ./shared/app/optimizeapp -run '^$' -bench RunOverAMillion -benchtime 3x
func BenchmarkRunOverAMillionOperations(b *testing.B) {
	pool := pg.NewPool(b)
	ctx := context.Background()
	from := runAt.AddDate(0, 0, -7).Truncate(24 * time.Hour)
	span := runAt.Sub(from)
	if _, err := pool.Exec(ctx, `
		INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, input_tokens,
		                              output_tokens, cached_input_tokens, cost_nano, latency_ms, success,
		                              fallback_used, created_at)
		SELECT 'bench-' || g, r.operation_id, 'user-' || (g % 1000),
		       CASE WHEN g % 10 = 0 THEN r.fallback ELSE r.primary_model END, 'p',
		       500 + g % 1000, 200 + g % 300, g % 50, 100000 + g % 100000, 100 + g % 900, g % 100 <> 0,
		       g % 10 = 0, $1::timestamptz + ($2::bigint * g / 1000000) * interval '1 microsecond'
		  FROM generate_series(0, 999999) g
		  JOIN (SELECT row_number() OVER (ORDER BY operation_id) - 1 AS i, operation_id, primary_model,
		               COALESCE(fallback_model, primary_model) AS fallback FROM ai_model_routes) r
		    ON r.i = g % 17`, from, span.Microseconds()); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE ai_operation_log`); err != nil {
		b.Fatal(err)
	}
	o := &optimizeapp.Optimizer{Store: optimizestore.New(pool), Now: func() time.Time { return runAt }}
	b.ResetTimer()
	for range b.N {
		res, err := o.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.TopCostly) != 5 {
			b.Fatalf("top costly %+v", res.TopCostly)
		}
	}
}
