package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/oplog"
)

// Operations writes ai_operation_log together with the budget outcome of each call.
type Operations struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewOperations returns the operation log repository.
func NewOperations(pool *pgxpool.Pool, now func() time.Time) *Operations {
	if now == nil {
		now = time.Now
	}
	return &Operations{pool: pool, now: now}
}

var _ oplog.Writer = (*Operations)(nil)

const logInsertCTE = `
logged AS (
    INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider,
            provider_request_id, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens,
            cost_nano, price_version, latency_ms, success, error_code, fallback_used, created_at)
    VALUES (@request_id, @operation_id, @user_id, NULLIF(@model, ''), NULLIF(@provider, ''),
            NULLIF(@provider_request_id, ''), @input_tokens, @output_tokens, @cached_input_tokens,
            @reasoning_tokens, @cost, NULLIF(@price_version, ''), @latency_ms, @success,
            NULLIF(@error_code, ''), @fallback_used, @now)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING 1
)`

// finishSQL is the single statement that closes the reservation and writes the log row: one
// round trip, and either both happen or neither does.
func finishSQL(o oplog.Outcome) (string, bool) {
	switch o {
	case oplog.Settle:
		return settleCTEs + `,` + logInsertCTE + ` SELECT count(*) FROM logged`, true
	case oplog.Release:
		return releaseCTEs + `,` + logInsertCTE + ` SELECT count(*) FROM logged`, true
	case oplog.NoReservation:
		return `WITH` + logInsertCTE + ` SELECT count(*) FROM logged`, true
	}
	return "", false
}

// Finish records an operation's outcome and, with Settle or Release, closes the request's
// reservation in the same statement. Replaying it changes nothing: the reservation closes once
// and the log row is keyed by request id.
func (o *Operations) Finish(ctx context.Context, rec oplog.Record, outcome oplog.Outcome) error {
	sql, ok := finishSQL(outcome)
	if !ok {
		return fmt.Errorf("finish: unknown outcome %d", outcome)
	}
	cost := int64(rec.Cost)
	if outcome != oplog.Settle {
		cost = 0 // nothing was spent
	}
	args := pgx.NamedArgs{
		"request_id": rec.RequestID, "operation_id": rec.OperationID, "user_id": rec.UserID,
		"model": rec.Model, "provider": rec.Provider, "provider_request_id": rec.ProviderRequestID,
		"input_tokens": rec.Usage.InputTokens, "output_tokens": rec.Usage.OutputTokens,
		"cached_input_tokens": rec.Usage.CachedInputTokens, "reasoning_tokens": rec.Usage.ReasoningTokens,
		"cost": cost, "price_version": rec.PriceVersion, "latency_ms": rec.Latency.Milliseconds(),
		"success": rec.Success, "error_code": rec.ErrorCode, "fallback_used": rec.FallbackUsed,
		"now": o.now(),
	}
	var logged int
	if err := o.pool.QueryRow(ctx, sql, args).Scan(&logged); err != nil {
		return fmt.Errorf("finish operation %s: %w", rec.RequestID, err)
	}
	return nil
}
