package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/groupcommit"
	"github.com/helixhq/helix/shared/money"

	"github.com/helixhq/helix/shared/oplog"
)

// Operations writes ai_operation_log together with the budget outcome of each call.
type Operations struct {
	pool *pgxpool.Pool
	now  func() time.Time
	// finishes, when set, writes concurrent outcomes together (GroupCommit).
	finishes *groupcommit.Sharded[finishItem, bool]
	// batchRefused is told of each batch Postgres refused (tests only).
	batchRefused func(error)
}

// NewOperations returns the operation log repository.
func NewOperations(pool *pgxpool.Pool, now func() time.Time) *Operations {
	if now == nil {
		now = time.Now
	}
	return &Operations{pool: pool, now: now}
}

var _ oplog.Writer = (*Operations)(nil)

// GroupCommit makes Finish write the outcomes of concurrent calls in one statement and one
// commit (shared/groupcommit); a lone one is written at once, as without it. shardOf is as for
// Ledger.GroupCommit. Call it before the repository is shared.
func (o *Operations) GroupCommit(opts groupcommit.Options, shardOf func(userID string) string) *Operations {
	o.finishes = groupcommit.NewSharded(byUser[finishItem](shardOf, func(it finishItem) string { return it.rec.UserID }), o.flushFinishes, opts)
	return o
}

// Finish records an operation's outcome and, with Settle or Release, closes the request's
// reservation in the same statement (helix_finish, migration 00004). Replaying it changes
// nothing: the reservation closes once and the log row is keyed by request id.
func (o *Operations) Finish(ctx context.Context, rec oplog.Record, outcome oplog.Outcome) error {
	name, err := outcomeName(outcome)
	if err != nil {
		return err
	}
	it := finishItem{outcome: name, rec: rec, now: o.now()}
	if o.finishes == nil {
		_, err = o.finishOne(ctx, it)
	} else {
		_, err = o.finishes.Do(ctx, nil, it)
	}
	if err != nil {
		return fmt.Errorf("finish operation %s: %w", rec.RequestID, err)
	}
	return nil
}

// outcomeName is helix_finish's name of an outcome.
func outcomeName(outcome oplog.Outcome) (string, error) {
	var name string
	switch outcome {
	case oplog.Settle:
		name = "settle"
	case oplog.Release:
		name = "release"
	case oplog.NoReservation:
		name = "log"
	default:
		return "", fmt.Errorf("finish: unknown outcome %d", outcome)
	}
	return name, nil
}

// finish calls helix_finish; with rec nil it only closes the reservation (the ledger's Settle
// and Release), else it also writes rec's log row. It reports whether it closed a reservation.
func finish(ctx context.Context, pool *pgxpool.Pool, outcome, requestID string, cost money.Nano, now time.Time, rec *oplog.Record) (bool, error) {
	var op, user, model, provider, providerReq, priceVersion, errorCode *string
	var in, out, cached, reasoning, write, write1h, latency, failed int64
	var success, fallback bool
	if rec != nil {
		op, user, model, provider = &rec.OperationID, &rec.UserID, &rec.Model, &rec.Provider
		providerReq, priceVersion, errorCode = &rec.ProviderRequestID, &rec.PriceVersion, &rec.ErrorCode
		u := rec.Usage
		in, out, cached, reasoning = u.InputTokens, u.OutputTokens, u.CachedInputTokens, u.ReasoningTokens
		write, write1h, failed = u.CacheWriteTokens, u.CacheWrite1hTokens, int64(rec.FailedAttemptsCost)
		latency, success, fallback = rec.Latency.Milliseconds(), rec.Success, rec.FallbackUsed
	}
	var closed bool
	err := pool.QueryRow(ctx, `SELECT helix_finish($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
		outcome, requestID, int64(cost), now, op, user, model, provider, providerReq,
		in, out, cached, reasoning, priceVersion, latency, success, errorCode, fallback,
		write, write1h, failed).Scan(&closed)
	return closed, err
}
