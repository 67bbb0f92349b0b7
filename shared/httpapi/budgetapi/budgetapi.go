// Package budgetapi is the HTTP API of the budget function: a user's budget for today, and the
// administration of limits.
package budgetapi

import (
	"context"
	"net/http"
	"time"

	"github.com/helixhq/helix/shared/access"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
)

// Budgets is the part of the ledger this API uses.
type Budgets interface {
	Today(ctx context.Context, userID string) (budget.Day, error)
	UpdateLimits(ctx context.Context, userID string, daily, warning *money.Nano, actor string) (budget.Day, error)
}

// Register adds the budget function's endpoints to s.
func Register(s *httpapi.Server, b Budgets) {
	h := &handlers{budgets: b}
	s.Handle("GET /ai-router/budget", h.get)
	s.HandleAdmin("GET /admin/budgets/{user_id}", h.adminGet)
	s.HandleAdmin("PUT /admin/budgets/{user_id}", h.adminPut)
}

type handlers struct{ budgets Budgets }

// View is a user's budget for today.
type View struct {
	UserID           string     `json:"user_id"`
	Date             string     `json:"date"`
	DailyLimit       money.Nano `json:"daily_limit"`
	CurrentSpend     money.Nano `json:"current_spend"`
	Reserved         money.Nano `json:"reserved"`
	Remaining        money.Nano `json:"remaining"`
	WarningThreshold money.Nano `json:"warning_threshold"`
	Status           string     `json:"status"`
	ResetsAt         time.Time  `json:"resets_at"`
}

// ViewOf renders a day.
func ViewOf(d budget.Day) View {
	return View{
		UserID:           d.UserID,
		Date:             d.Date.Format(time.DateOnly),
		DailyLimit:       d.Limits.DailyLimit,
		CurrentSpend:     d.Spent,
		Reserved:         d.Reserved,
		Remaining:        d.Remaining(),
		WarningThreshold: d.Limits.Warning,
		Status:           string(d.Status()),
		ResetsAt:         d.ResetsAt(),
	}
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	named, err := httpapi.QueryID(r, "user_id")
	if err != nil {
		return err
	}
	user, err := access.Caller{UserID: p.UserID, Admin: p.Admin}.ActFor(named)
	if err != nil {
		return err
	}
	return h.write(w, r, user)
}

func (h *handlers) adminGet(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	user, err := httpapi.PathID(r, "user_id")
	if err != nil {
		return err
	}
	return h.write(w, r, user)
}

func (h *handlers) write(w http.ResponseWriter, r *http.Request, user string) error {
	day, err := h.budgets.Today(r.Context(), user)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, ViewOf(day))
	return nil
}

// LimitsUpdate is the body of PUT /admin/budgets/{user_id}, in USD; an omitted field keeps its
// current value, except that a warning above a newly lowered limit becomes half that limit.
type LimitsUpdate struct {
	DailyLimit       *money.Nano `json:"daily_limit"`
	WarningThreshold *money.Nano `json:"warning_threshold"`
}

// maxDailyLimit keeps a typo (an extra few zeros) from handing out an unbounded budget.
const maxDailyLimit = 100_000 * money.PerUSD

func (h *handlers) adminPut(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	user, err := httpapi.PathID(r, "user_id")
	if err != nil {
		return err
	}
	var body LimitsUpdate
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.DailyLimit == nil && body.WarningThreshold == nil {
		return fault.New(fault.MissingField, "send daily_limit, warning_threshold or both (USD)")
	}
	for _, v := range []*money.Nano{body.DailyLimit, body.WarningThreshold} {
		if v != nil && *v > maxDailyLimit {
			return fault.Errorf(fault.InvalidField, "limits must not exceed %s USD", maxDailyLimit)
		}
	}
	if body.DailyLimit != nil && body.WarningThreshold != nil && *body.WarningThreshold > *body.DailyLimit {
		return fault.New(fault.InvalidField, "warning_threshold must not exceed daily_limit")
	}
	day, err := h.budgets.UpdateLimits(r.Context(), user, body.DailyLimit, body.WarningThreshold, p.UserID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, ViewOf(day))
	return nil
}
