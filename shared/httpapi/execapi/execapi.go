// Package execapi is the HTTP face of the execution pipeline shared by the intelligence and
// OpenAI-compatible APIs: which status and stable code each execution outcome gets.
package execapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/router"
)

// ClientError maps an Execute error to the *httpapi.Error a client sees; errors that are Helix's
// own faults pass through unchanged (and become a 500).
func ClientError(err error) error {
	var exceeded *budget.ExceededError
	switch {
	case errors.As(err, &exceeded):
		return &httpapi.Error{Status: http.StatusPaymentRequired, Code: "budget_exceeded",
			Message: "this call could cost up to $" + exceeded.Requested.String() + " but only $" +
				exceeded.Day.Remaining().String() + " of today's budget remains",
			Details: map[string]any{
				"daily_limit": exceeded.Day.Limits.DailyLimit, "remaining": exceeded.Day.Remaining(),
				"requested": exceeded.Requested, "resets_at": exceeded.Day.ResetsAt(),
			}}
	case errors.Is(err, execute.ErrProvidersUnavailable):
		return httpapi.Errorf(http.StatusServiceUnavailable, "providers_unavailable", "no model provider could serve the request; nothing was charged, retry later")
	case errors.Is(err, execute.ErrContentFiltered):
		return httpapi.Errorf(http.StatusUnprocessableEntity, "content_filtered", "the model provider refused this content")
	case errors.Is(err, execute.ErrDeadline):
		return httpapi.Errorf(http.StatusServiceUnavailable, "timeout", "not enough time was left to call a model; retry")
	case errors.Is(err, router.ErrUnknownOperation):
		return httpapi.Errorf(http.StatusNotFound, "unknown_operation", "unknown operation")
	case errors.Is(err, router.ErrOperationDisabled):
		return httpapi.Errorf(http.StatusForbidden, "operation_disabled", "this operation is disabled")
	case errors.Is(err, router.ErrNoModel):
		return httpapi.Errorf(http.StatusServiceUnavailable, "no_model_available", "no enabled model can serve this operation")
	case errors.Is(err, router.ErrUnknownModel):
		return httpapi.Errorf(http.StatusNotFound, "unknown_model", "unknown model")
	case errors.Is(err, approval.ErrNotFound):
		return httpapi.Errorf(http.StatusNotFound, "approval_not_found", "no such approval for this user")
	case errors.Is(err, approval.ErrNotUsable):
		return httpapi.Errorf(http.StatusConflict, "approval_not_usable", "the approval is pending, rejected, expired or already used")
	case errors.Is(err, approval.ErrMismatch):
		return httpapi.Errorf(http.StatusConflict, "approval_mismatch", "the approval was granted for a different request; re-send the exact request that was held")
	}
	return err
}

// PendingView is the 202 answer for a held operation: re-send the same request with this
// approval_id once an admin approved it.
type PendingView struct {
	Status           string     `json:"status"`
	ApprovalID       string     `json:"approval_id"`
	OperationID      string     `json:"operation_id"`
	Reason           string     `json:"reason"`
	EstimatedCostUSD money.Nano `json:"estimated_cost_usd"`
	ExpiresAt        time.Time  `json:"expires_at"`
}

// Pending returns the view of a held operation, if err is one.
func Pending(err error) (PendingView, bool) {
	var p *execute.PendingApprovalError
	if !errors.As(err, &p) {
		return PendingView{}, false
	}
	a := p.Approval
	return PendingView{
		Status: "pending_approval", ApprovalID: a.ID, OperationID: a.OperationID, Reason: string(a.Reason),
		EstimatedCostUSD: a.EstimatedCost, ExpiresAt: a.ExpiresAt.UTC(),
	}, true
}
