// Package execapi is what Helix's own HTTP APIs (the intelligence operations; later chat) share
// about running an operation: the 202 answer of a request held for approval.
package execapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
)

// PendingView is the 202 answer for a held operation: re-send the same request with this
// approval_id once an admin approved it. (The OpenAI-compatible API answers the same hold as an
// error with code approval_required, which its SDKs raise.)
type PendingView struct {
	Status           string     `json:"status"`
	ApprovalID       string     `json:"approval_id"`
	OperationID      string     `json:"operation_id"`
	Reason           string     `json:"reason"`
	EstimatedCostUSD money.Nano `json:"estimated_cost_usd"`
	ExpiresAt        time.Time  `json:"expires_at"`
}

// WritePending answers 202 with the approval when err is a held operation, and reports whether
// it did.
func WritePending(w http.ResponseWriter, err error) bool {
	var p *execute.PendingApprovalError
	if !errors.As(err, &p) {
		return false
	}
	a := p.Approval
	httpapi.WriteJSON(w, http.StatusAccepted, PendingView{
		Status: "pending_approval", ApprovalID: a.ID, OperationID: a.OperationID, Reason: string(a.Reason),
		EstimatedCostUSD: a.EstimatedCost, ExpiresAt: a.ExpiresAt.UTC(),
	})
	return true
}
