package approval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/money"
)

// Status of an approval.
type Status string

// Statuses. An approval is pending until an admin approves or rejects it; an approved one is
// used by exactly one execution of exactly the request that was held.
const (
	StatusPending  Status = "pending"
	StatusApproved Status = "approved"
	StatusRejected Status = "rejected"
	StatusUsed     Status = "used"
	StatusExpired  Status = "expired"
)

// Approval is a held operation waiting for, or carrying, an admin's decision.
type Approval struct {
	ID            string
	UserID        string
	OperationID   string
	RequestHash   string
	EstimatedCost money.Nano
	Reason        Reason
	Summary       string
	Status        Status
	DecidedBy     string
	DecidedAt     time.Time
	UsedRequestID string
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// Errors of approvals.
var (
	// ErrNotFound also covers another user's approval, so ids of others are not revealed.
	ErrNotFound = fault.New(fault.ApprovalNotFound, "no such approval (or not yours)")
	// ErrNotPending: approving or rejecting an approval already decided or expired.
	ErrNotPending = fault.New(fault.ApprovalNotPending, "the approval was already decided or has expired")
	// ErrNotUsable: running with an approval that is not approved (pending, rejected, used or
	// expired).
	ErrNotUsable = fault.New(fault.ApprovalNotUsable, "the approval is pending, rejected, expired or already used")
	// ErrMismatch: the approval was granted for a different request.
	ErrMismatch = fault.New(fault.ApprovalMismatch, "the approval was granted for a different request; re-send the exact request that was held")
)

// Claim identifies the execution that wants to use an approval.
type Claim struct {
	ApprovalID  string
	UserID      string
	OperationID string
	RequestHash string
	RequestID   string
}

// Store persists approvals.
type Store interface {
	CreateApproval(ctx context.Context, a Approval) (Approval, error)
	ListApprovals(ctx context.Context, status Status, limit int) ([]Approval, error)
	// DecideApproval approves or rejects a pending, unexpired approval.
	DecideApproval(ctx context.Context, id string, approve bool, actor string) (Approval, error)
	// ClaimApproval marks an approved approval used by c.RequestID, atomically, so it runs once.
	ClaimApproval(ctx context.Context, c Claim) (Approval, error)
	// UnclaimApproval makes an approval usable again after its execution failed without cost.
	UnclaimApproval(ctx context.Context, id, requestID string) error
}

// HashRequest is the fingerprint an approval is bound to: the user, the operation and the
// canonical bytes of the request (the caller marshals its decoded input).
func HashRequest(userID, operationID string, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(userID))
	h.Write([]byte{0})
	h.Write([]byte(operationID))
	h.Write([]byte{0})
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil))
}
