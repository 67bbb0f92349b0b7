package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/ident"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

// Approvals reads and writes the approvals table.
type Approvals struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ approval.Store = (*Approvals)(nil)

// NewApprovals returns the approval repository.
func NewApprovals(pool *pgxpool.Pool, now func() time.Time) *Approvals {
	if now == nil {
		now = time.Now
	}
	return &Approvals{pool: pool, now: now}
}

// approvalColumns reports an unexpired-but-past approval as expired without a sweeper.
const approvalColumns = `approval_id::text, user_id, operation_id, request_hash, estimated_cost_nano,
	reason, summary,
	CASE WHEN status IN ('pending', 'approved') AND expires_at <= now() THEN 'expired' ELSE status END,
	COALESCE(decided_by, ''), decided_at, COALESCE(used_request_id, ''), created_at, expires_at`

func scanApproval(row pgx.CollectableRow) (approval.Approval, error) {
	var a approval.Approval
	var cost int64
	var reason, status string
	var decidedAt pgtype.Timestamptz
	err := row.Scan(&a.ID, &a.UserID, &a.OperationID, &a.RequestHash, &cost, &reason, &a.Summary,
		&status, &a.DecidedBy, &decidedAt, &a.UsedRequestID, &a.CreatedAt, &a.ExpiresAt)
	a.EstimatedCost, a.Reason, a.Status, a.DecidedAt = money.Nano(cost), approval.Reason(reason), approval.Status(status), decidedAt.Time
	return a, err
}

// CreateApproval implements approval.Store; a zero ID gets a new UUID. While the same request
// (user, operation, request hash) is pending it returns that approval instead of a new one: the
// unique index approvals_one_pending makes this hold under concurrent re-sends. A pending row
// that has expired is marked expired first, so it does not block a new one.
func (s *Approvals) CreateApproval(ctx context.Context, a approval.Approval) (approval.Approval, error) {
	if a.ID == "" {
		a.ID = uuid.NewString()
	}
	var out approval.Approval
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			UPDATE approvals SET status = 'expired'
			 WHERE user_id = $1 AND operation_id = $2 AND request_hash = $3
			   AND status = 'pending' AND expires_at <= now()`, a.UserID, a.OperationID, a.RequestHash); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `
			INSERT INTO approvals (approval_id, user_id, operation_id, request_hash, estimated_cost_nano,
			                       reason, summary, status, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)
			ON CONFLICT (user_id, operation_id, request_hash) WHERE status = 'pending' DO NOTHING
			RETURNING `+approvalColumns,
			a.ID, a.UserID, a.OperationID, a.RequestHash, int64(a.EstimatedCost), string(a.Reason), a.Summary,
			s.now(), a.ExpiresAt)
		var err error
		out, err = pgx.CollectExactlyOneRow(rows, scanApproval)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		rows, _ = tx.Query(ctx, `SELECT `+approvalColumns+` FROM approvals
			 WHERE user_id = $1 AND operation_id = $2 AND request_hash = $3 AND status = 'pending'`,
			a.UserID, a.OperationID, a.RequestHash)
		out, err = pgx.CollectExactlyOneRow(rows, scanApproval)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("create approval: %w", err)
	}
	return out, nil
}

// ListApprovals implements approval.Store; an empty status lists all, newest first.
func (s *Approvals) ListApprovals(ctx context.Context, status approval.Status, limit int) ([]approval.Approval, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, _ := s.pool.Query(ctx, `
		SELECT * FROM (SELECT `+approvalColumns+` FROM approvals ORDER BY created_at DESC) AS a
		 WHERE $1 = '' OR a.status = $1
		 LIMIT $2`, string(status), limit)
	list, err := pgx.CollectRows(rows, scanApproval)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return list, nil
}

// DecideApproval implements approval.Store.
func (s *Approvals) DecideApproval(ctx context.Context, id string, approve bool, actor string) (approval.Approval, error) {
	if !ident.IsUUID(id) {
		return approval.Approval{}, approval.ErrNotFound
	}
	status := approval.StatusRejected
	if approve {
		status = approval.StatusApproved
	}
	var a approval.Approval
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `
			UPDATE approvals SET status = $2, decided_by = $3, decided_at = now()
			 WHERE approval_id = $1 AND status = 'pending' AND expires_at > now()
			RETURNING `+approvalColumns, id, string(status), actor)
		var err error
		if a, err = pgx.CollectExactlyOneRow(rows, scanApproval); err != nil {
			return err
		}
		return auditstore.Record(ctx, tx, adminChange(actor, auditlog.ChangedApproval, id,
			map[string]any{"status": string(approval.StatusPending)},
			map[string]any{"status": string(a.Status), "user_id": a.UserID, "operation_id": a.OperationID}, false))
	})
	if errors.Is(err, pgx.ErrNoRows) {
		if _, gerr := s.get(ctx, id); gerr != nil {
			return a, gerr
		}
		return a, approval.ErrNotPending
	}
	return a, err
}

// ClaimApproval implements approval.Store: one conditional UPDATE, so two concurrent re-sends of
// the same approved request cannot both run.
func (s *Approvals) ClaimApproval(ctx context.Context, c approval.Claim) (approval.Approval, error) {
	if !ident.IsUUID(c.ApprovalID) {
		return approval.Approval{}, approval.ErrNotFound
	}
	rows, _ := s.pool.Query(ctx, `
		UPDATE approvals SET status = 'used', used_request_id = $5, used_at = now()
		 WHERE approval_id = $1 AND user_id = $2 AND operation_id = $3 AND request_hash = $4
		   AND status = 'approved' AND expires_at > now()
		RETURNING `+approvalColumns, c.ApprovalID, c.UserID, c.OperationID, c.RequestHash, c.RequestID)
	a, err := pgx.CollectExactlyOneRow(rows, scanApproval)
	if !errors.Is(err, pgx.ErrNoRows) {
		return a, err
	}
	// Explain the refusal (off the hot path).
	cur, gerr := s.get(ctx, c.ApprovalID)
	switch {
	case gerr != nil || cur.UserID != c.UserID:
		return a, approval.ErrNotFound
	case cur.OperationID != c.OperationID || cur.RequestHash != c.RequestHash:
		return cur, approval.ErrMismatch
	}
	return cur, approval.ErrNotUsable
}

// UnclaimApproval implements approval.Store.
func (s *Approvals) UnclaimApproval(ctx context.Context, id, requestID string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE approvals SET status = 'approved', used_request_id = NULL, used_at = NULL
		 WHERE approval_id = $1 AND status = 'used' AND used_request_id = $2`, id, requestID)
	return err
}

func (s *Approvals) get(ctx context.Context, id string) (approval.Approval, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE approval_id = $1`, id)
	a, err := pgx.CollectExactlyOneRow(rows, scanApproval)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, approval.ErrNotFound
	}
	return a, err
}
