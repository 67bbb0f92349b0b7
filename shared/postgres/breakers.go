package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/breaker"
)

// Breakers reads and writes provider_breakers.
type Breakers struct{ pool *pgxpool.Pool }

var _ breaker.Store = (*Breakers)(nil)

// NewBreakers returns the breaker repository.
func NewBreakers(pool *pgxpool.Pool) *Breakers { return &Breakers{pool: pool} }

// LoadBreakers implements breaker.Store: only breakers with an open period on record matter.
func (s *Breakers) LoadBreakers(ctx context.Context) (map[string]breaker.State, error) {
	rows, _ := s.pool.Query(ctx, `SELECT provider, open_until FROM provider_breakers WHERE open_until IS NOT NULL`)
	out := map[string]breaker.State{}
	var provider string
	var until time.Time
	_, err := pgx.ForEachRow(rows, []any{&provider, &until}, func() error {
		out[provider] = breaker.State{OpenUntil: until}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load breakers: %w", err)
	}
	return out, nil
}

// recordFailureSQL counts one failure in one statement, concurrency-safe on the provider's row:
//   - a window older than @window_start restarts the count at 1;
//   - reaching @threshold, or failing a trial call after the cooldown (open_until set and past),
//     opens the breaker until @open_until.
const recordFailureSQL = `
INSERT INTO provider_breakers AS b (provider, window_started_at, failures, open_until, last_error, updated_at)
VALUES (@provider, @now, 1, CASE WHEN @threshold <= 1 THEN @open_until::timestamptz END, @reason, @now)
ON CONFLICT (provider) DO UPDATE SET
    failures = CASE WHEN b.window_started_at < @window_start THEN 1 ELSE b.failures + 1 END,
    window_started_at = CASE WHEN b.window_started_at < @window_start THEN @now ELSE b.window_started_at END,
    open_until = CASE
        WHEN b.open_until IS NOT NULL AND b.open_until <= @now THEN @open_until::timestamptz
        WHEN (CASE WHEN b.window_started_at < @window_start THEN 1 ELSE b.failures + 1 END) >= @threshold
            THEN GREATEST(b.open_until, @open_until::timestamptz)
        ELSE b.open_until END,
    last_error = @reason,
    updated_at = @now
RETURNING open_until`

// RecordFailure implements breaker.Store.
func (s *Breakers) RecordFailure(ctx context.Context, provider string, now time.Time, p breaker.Policy, reason string) (breaker.State, error) {
	var until pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, recordFailureSQL, pgx.NamedArgs{
		"provider": provider, "now": now, "threshold": p.Threshold,
		"window_start": now.Add(-p.Window), "open_until": now.Add(p.Cooldown), "reason": truncate(reason, 500),
	}).Scan(&until)
	if err != nil {
		return breaker.State{}, fmt.Errorf("record failure of %s: %w", provider, err)
	}
	return breaker.State{OpenUntil: until.Time}, nil
}

// RecordSuccess implements breaker.Store.
func (s *Breakers) RecordSuccess(ctx context.Context, provider string) error {
	_, err := s.pool.Exec(ctx, `UPDATE provider_breakers SET failures = 0, open_until = NULL, updated_at = now() WHERE provider = $1`, provider)
	if err != nil {
		return fmt.Errorf("record success of %s: %w", provider, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
