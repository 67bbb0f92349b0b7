package routeapi

import (
	"context"
	"net/http"
	"time"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/toggles"
)

// Toggles reads and sets kill switches.
type Toggles interface {
	Current(ctx context.Context) (toggles.Set, error)
	Set(ctx context.Context, key string, enabled bool, actor string, knownProviders []string) (toggles.View, error)
}

// AdminDeps are what the approval and toggle administration needs.
type AdminDeps struct {
	Approvals approval.Store
	Toggles   Toggles
	// Providers lists the provider names (from the catalog), whose DISABLE_<NAME> switches may
	// be set even before a row exists.
	Providers func(ctx context.Context) ([]string, error)
}

// RegisterAdmin adds approval and toggle administration to s.
func RegisterAdmin(s *httpapi.Server, d AdminDeps) {
	h := &admin{AdminDeps: d}
	s.HandleAdmin("GET /admin/approvals", h.listApprovals)
	s.HandleAdmin("POST /admin/approvals/{id}/approve", h.decide(true))
	s.HandleAdmin("POST /admin/approvals/{id}/reject", h.decide(false))
	s.HandleAdmin("GET /admin/toggles", h.listToggles)
	s.HandleAdmin("PUT /admin/toggles/{key}", h.setToggle)
}

// MaintenanceExempt are the routes of this package that keep working in maintenance mode: the
// routing decision (a read) and the toggle endpoint an admin ends maintenance with.
var MaintenanceExempt = []string{"POST /ai-router/route", "PUT /admin/toggles/{key}"}

type admin struct{ AdminDeps }

// ApprovalView is an approval as the admin API shows it.
type ApprovalView struct {
	ApprovalID       string     `json:"approval_id"`
	UserID           string     `json:"user_id"`
	OperationID      string     `json:"operation_id"`
	Status           string     `json:"status"`
	Reason           string     `json:"reason"`
	Summary          string     `json:"summary"`
	EstimatedCostUSD money.Nano `json:"estimated_cost_usd"`
	DecidedBy        string     `json:"decided_by,omitempty"`
	DecidedAt        *time.Time `json:"decided_at,omitempty"`
	UsedRequestID    string     `json:"used_request_id,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	ExpiresAt        time.Time  `json:"expires_at"`
}

func approvalView(a approval.Approval) ApprovalView {
	v := ApprovalView{
		ApprovalID: a.ID, UserID: a.UserID, OperationID: a.OperationID, Status: string(a.Status),
		Reason: string(a.Reason), Summary: a.Summary, EstimatedCostUSD: a.EstimatedCost,
		DecidedBy: a.DecidedBy, UsedRequestID: a.UsedRequestID, CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt,
	}
	if !a.DecidedAt.IsZero() {
		t := a.DecidedAt
		v.DecidedAt = &t
	}
	return v
}

func (h *admin) listApprovals(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	status := approval.Status(r.URL.Query().Get("status"))
	switch status {
	case "":
		status = approval.StatusPending
	case "all":
		status = ""
	case approval.StatusPending, approval.StatusApproved, approval.StatusRejected, approval.StatusUsed, approval.StatusExpired:
	default:
		return fault.New(fault.InvalidField, "status must be pending, approved, rejected, used, expired or all")
	}
	list, err := h.Approvals.ListApprovals(r.Context(), status, 200)
	if err != nil {
		return err
	}
	writeList(w, "approvals", list, approvalView)
	return nil
}

func (h *admin) decide(approve bool) httpapi.Handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		id, err := httpapi.PathID(r, "id")
		if err != nil {
			return err
		}
		a, err := h.Approvals.DecideApproval(r.Context(), id, approve, p.UserID)
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, approvalView(a))
		return nil
	}
}

// ToggleView is a kill switch as the admin API shows it.
type ToggleView struct {
	Key         string     `json:"key"`
	Enabled     bool       `json:"enabled"`
	Stored      bool       `json:"stored_value"`
	Source      string     `json:"source"`
	Description string     `json:"description"`
	UpdatedBy   string     `json:"updated_by,omitempty"`
	UpdatedAt   *time.Time `json:"updated_at,omitempty"`
}

func toggleView(v toggles.View) ToggleView {
	out := ToggleView{Key: v.Key, Enabled: v.Enabled, Stored: v.Stored, Source: v.Source, Description: v.Description, UpdatedBy: v.UpdatedBy}
	if !v.UpdatedAt.IsZero() {
		t := v.UpdatedAt
		out.UpdatedAt = &t
	}
	return out
}

func (h *admin) listToggles(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	set, err := h.Toggles.Current(r.Context())
	if err != nil {
		return err
	}
	writeList(w, "toggles", set.Views(), toggleView)
	return nil
}

// ToggleUpdate is the body of PUT /admin/toggles/{key}.
type ToggleUpdate struct {
	Enabled *bool `json:"enabled"`
}

func (h *admin) setToggle(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var body ToggleUpdate
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.Enabled == nil {
		return fault.New(fault.MissingField, "enabled (true or false) is required")
	}
	key, err := httpapi.PathID(r, "key")
	if err != nil {
		return err
	}
	providers, err := h.Providers(r.Context())
	if err != nil {
		return err
	}
	v, err := h.Toggles.Set(r.Context(), key, *body.Enabled, p.UserID, providers)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, toggleView(v))
	return nil
}
