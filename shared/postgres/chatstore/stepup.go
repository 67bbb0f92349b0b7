package chatstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/stepup"
)

// StepUps records creator step-up attempts.
type StepUps struct{ pool *pgxpool.Pool }

var _ stepup.Store = (*StepUps)(nil)

// NewStepUps returns the step-up repository.
func NewStepUps(pool *pgxpool.Pool) *StepUps { return &StepUps{pool: pool} }

// Attempt implements stepup.Store: a transaction holding an advisory lock on the user, so the
// count of recent failures and the new attempt cannot interleave with another attempt's.
func (s *StepUps) Attempt(ctx context.Context, userID string, since time.Time, decide func(failures int) stepup.Attempt) (stepup.Attempt, error) {
	var a stepup.Attempt
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('helix-stepup:' || $1, 0))`, userID); err != nil {
			return err
		}
		var failures int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM stepup_attempts WHERE user_id = $1 AND attempted_at > $2 AND NOT success`,
			userID, since).Scan(&failures); err != nil {
			return err
		}
		a = decide(failures)
		var conv *string
		if a.ConversationID != "" {
			conv = &a.ConversationID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO stepup_attempts (user_id, conversation_id, success, locked, attempted_at) VALUES ($1, $2, $3, $4, $5)`,
			userID, conv, a.Success, a.Locked, a.At); err != nil {
			return err
		}
		// Every attempt is in the audit chain (and so in #helix-alerts), never the key.
		result := "failed"
		switch {
		case a.Locked:
			result = "locked"
		case a.Success:
			result = "verified"
		}
		return auditstore.Record(ctx, tx, auditlog.Event{Kind: auditlog.StepUp, Actor: userID,
			Payload: auditlog.StepUpAttempt{UserID: userID, ConversationID: a.ConversationID, Result: result}})
	})
	if err != nil {
		return a, fmt.Errorf("step-up attempt: %w", err)
	}
	return a, nil
}
