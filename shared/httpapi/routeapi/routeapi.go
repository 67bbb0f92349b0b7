// Package routeapi is the HTTP API of the route function: routing decisions with cost estimates,
// and the administration of operation routes.
package routeapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/router"
)

// Catalog is the cached catalog.
type Catalog interface {
	Get(ctx context.Context) (*catalog.Snapshot, error)
	Invalidate()
}

// RouteEditor changes routes.
type RouteEditor interface {
	UpdateRoute(ctx context.Context, operationID string, change catalog.RouteChange, actor string) (catalog.Route, error)
}

// BudgetReader reads a user's day.
type BudgetReader interface {
	Today(ctx context.Context, userID string) (budget.Day, error)
}

// Deps are what the route API needs.
type Deps struct {
	Catalog Catalog
	Routes  RouteEditor
	Budgets BudgetReader
}

// Register adds the route function's endpoints to s.
func Register(s *httpapi.Server, d Deps) {
	h := &handlers{Deps: d}
	s.Handle("POST /ai-router/route", h.route)
	s.HandleAdmin("GET /admin/routes", h.listRoutes)
	s.HandleAdmin("PUT /admin/routes/{operation_id}", h.updateRoute)
	s.HandleAdmin("GET /admin/models", h.listModels)
}

type handlers struct{ Deps }

// RouteRequest is the body of POST /ai-router/route.
type RouteRequest struct {
	OperationID string `json:"operation_id"`
	// UserID is whose budget to check; omitted, it is the caller. Only admins may name another.
	UserID *string `json:"user_id"`
	// EstimatedTokens is the expected input size; omitted, the operation's average is used.
	EstimatedTokens *int64 `json:"estimated_tokens"`
}

// Validate checks the request on its own, before the catalog is consulted.
func (req RouteRequest) Validate() error {
	if req.OperationID == "" {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeMissingField, "operation_id is required")
	}
	if len(req.OperationID) > 128 {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidField, "operation_id is too long")
	}
	if req.UserID != nil && (*req.UserID == "" || len(*req.UserID) > 256) {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidField, "user_id must be 1 to 256 characters")
	}
	if t := req.EstimatedTokens; t != nil && (*t < 1 || *t > catalog.MaxInputTokensLimit) {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidField, "estimated_tokens must be between 1 and %d", catalog.MaxInputTokensLimit)
	}
	return nil
}

// RouteResponse is the routing decision.
type RouteResponse struct {
	OperationID           string        `json:"operation_id"`
	OperationName         string        `json:"operation_name"`
	Model                 string        `json:"model"`
	Provider              string        `json:"provider"`
	APIModel              string        `json:"api_model"`
	FallbackModel         *string       `json:"fallback_model"`
	FailoverChain         []string      `json:"failover_chain"`
	EstimatedInputTokens  int64         `json:"estimated_input_tokens"`
	EstimatedOutputTokens int64         `json:"estimated_output_tokens"`
	MaxOutputTokens       int64         `json:"max_output_tokens"`
	EstimatedCostUSD      money.Nano    `json:"estimated_cost_usd"`
	WorstCaseCostUSD      money.Nano    `json:"worst_case_cost_usd"`
	PriceVersion          string        `json:"price_version"`
	CostCriticality       string        `json:"cost_criticality"`
	RequiresApproval      bool          `json:"requires_approval"`
	ApprovalReason        string        `json:"approval_reason,omitempty"`
	WithinBudget          bool          `json:"within_budget"`
	Budget                BudgetSummary `json:"budget"`
}

// BudgetSummary is the user's day as the route response shows it.
type BudgetSummary struct {
	UserID       string     `json:"user_id"`
	DailyLimit   money.Nano `json:"daily_limit"`
	CurrentSpend money.Nano `json:"current_spend"`
	Reserved     money.Nano `json:"reserved"`
	Remaining    money.Nano `json:"remaining"`
}

func (h *handlers) route(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var req RouteRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return err
	}
	userID := p.UserID
	if req.UserID != nil && *req.UserID != p.UserID {
		if !p.Admin {
			return httpapi.Errorf(http.StatusForbidden, httpapi.CodeForbidden, "only admins may route for another user")
		}
		userID = *req.UserID
	}
	snap, err := h.Catalog.Get(r.Context())
	if err != nil {
		return err
	}
	var tokens int64
	if req.EstimatedTokens != nil {
		tokens = *req.EstimatedTokens
	}
	d, err := router.Decide(snap, router.Request{OperationID: req.OperationID, InputTokens: tokens})
	if err != nil {
		return routingError(err, req.OperationID)
	}
	day, err := h.Budgets.Today(r.Context(), userID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, decisionResponse(&d, day))
	return nil
}

func decisionResponse(d *router.Decision, day budget.Day) RouteResponse {
	m := d.Model()
	chain := make([]string, d.ChainLen)
	for i := range chain {
		chain[i] = d.Chain[i].Key
	}
	var fallback *string
	if fb, ok := d.Fallback(); ok {
		fallback = &fb.Key
	}
	reason := approval.Required(d.Route, d.EstimatedCost, day.Limits)
	return RouteResponse{
		OperationID:           d.Route.OperationID,
		OperationName:         d.Route.OperationName,
		Model:                 m.Key,
		Provider:              m.Provider,
		APIModel:              m.APIModel,
		FallbackModel:         fallback,
		FailoverChain:         chain,
		EstimatedInputTokens:  d.InputTokens,
		EstimatedOutputTokens: d.OutputTokens,
		MaxOutputTokens:       d.Route.MaxOutputTokens,
		EstimatedCostUSD:      d.EstimatedCost,
		WorstCaseCostUSD:      d.WorstCase,
		PriceVersion:          m.PriceVersion,
		CostCriticality:       string(d.Route.Criticality),
		RequiresApproval:      reason != approval.ReasonNone,
		ApprovalReason:        string(reason),
		WithinBudget:          d.WorstCase <= day.Remaining(),
		Budget: BudgetSummary{
			UserID:       day.UserID,
			DailyLimit:   day.Limits.DailyLimit,
			CurrentSpend: day.Spent,
			Reserved:     day.Reserved,
			Remaining:    day.Remaining(),
		},
	}
}

// routingError maps router errors to client errors.
func routingError(err error, op string) error {
	switch {
	case errors.Is(err, router.ErrUnknownOperation):
		return httpapi.Errorf(http.StatusNotFound, "unknown_operation", "unknown operation %q", op)
	case errors.Is(err, router.ErrOperationDisabled):
		return httpapi.Errorf(http.StatusForbidden, "operation_disabled", "operation %q is disabled", op)
	case errors.Is(err, router.ErrNoModel):
		return httpapi.Errorf(http.StatusServiceUnavailable, "no_model_available", "no enabled model can serve operation %q", op)
	}
	return err
}

// RouteView is a route as the admin API shows it.
type RouteView struct {
	OperationID      string    `json:"operation_id"`
	OperationName    string    `json:"operation_name"`
	PrimaryModel     string    `json:"primary_model"`
	FallbackModel    *string   `json:"fallback_model"`
	Enabled          bool      `json:"enabled"`
	CostCriticality  string    `json:"cost_criticality"`
	RequiresApproval bool      `json:"requires_approval"`
	MaxOutputTokens  int64     `json:"max_output_tokens"`
	AvgInputTokens   int64     `json:"avg_input_tokens"`
	AvgOutputTokens  int64     `json:"avg_output_tokens"`
	AllowEmergency   bool      `json:"allow_emergency"`
	Notes            string    `json:"notes"`
	UpdatedBy        string    `json:"updated_by"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func routeView(r catalog.Route) RouteView {
	var fb *string
	if r.FallbackModel != "" {
		fb = &r.FallbackModel
	}
	return RouteView{
		OperationID: r.OperationID, OperationName: r.OperationName, PrimaryModel: r.PrimaryModel,
		FallbackModel: fb, Enabled: r.Enabled, CostCriticality: string(r.Criticality),
		RequiresApproval: r.RequiresApproval, MaxOutputTokens: r.MaxOutputTokens,
		AvgInputTokens: r.AvgInputTokens, AvgOutputTokens: r.AvgOutputTokens,
		AllowEmergency: r.AllowEmergency, Notes: r.Notes, UpdatedBy: r.UpdatedBy, UpdatedAt: r.UpdatedAt,
	}
}

func (h *handlers) listRoutes(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	snap, err := h.Catalog.Get(r.Context())
	if err != nil {
		return err
	}
	writeList(w, "routes", snap.Routes(), routeView)
	return nil
}

// writeList answers {"<key>": [view(item), ...]}.
func writeList[T, V any](w http.ResponseWriter, key string, items []T, view func(T) V) {
	out := make([]V, len(items))
	for i, it := range items {
		out[i] = view(it)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{key: out})
}

// RouteUpdate is the body of PUT /admin/routes/{operation_id}; omitted fields stay as they are.
type RouteUpdate struct {
	PrimaryModel     *string        `json:"primary_model"`
	FallbackModel    NullableString `json:"fallback_model"`
	Enabled          *bool          `json:"enabled"`
	RequiresApproval *bool          `json:"requires_approval"`
	MaxOutputTokens  *int64         `json:"max_output_tokens"`
	CostCriticality  *string        `json:"cost_criticality"`
}

// Change converts the body into a catalog change.
func (u RouteUpdate) Change() catalog.RouteChange {
	c := catalog.RouteChange{
		PrimaryModel:     u.PrimaryModel,
		Enabled:          u.Enabled,
		RequiresApproval: u.RequiresApproval,
		MaxOutputTokens:  u.MaxOutputTokens,
	}
	if u.FallbackModel.Set {
		v := u.FallbackModel.Value // "" (from null) removes the fallback
		c.FallbackModel = &v
	}
	if u.CostCriticality != nil {
		crit := catalog.Criticality(*u.CostCriticality)
		c.Criticality = &crit
	}
	return c
}

func (h *handlers) updateRoute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	op := r.PathValue("operation_id")
	var body RouteUpdate
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	change := body.Change()
	if change.Empty() {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeMissingField,
			"send at least one of primary_model, fallback_model, enabled, requires_approval, max_output_tokens, cost_criticality")
	}
	route, err := h.Routes.UpdateRoute(r.Context(), op, change, p.UserID)
	switch {
	case errors.Is(err, catalog.ErrUnknownOperation):
		return httpapi.Errorf(http.StatusNotFound, "unknown_operation", "unknown operation %q", op)
	case errors.Is(err, catalog.ErrUnknownModel):
		return httpapi.Errorf(http.StatusBadRequest, "unknown_model", "%s", err)
	case errors.Is(err, catalog.ErrInvalidChange):
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeInvalidField, "%s", err)
	case err != nil:
		return err
	}
	h.Catalog.Invalidate()
	httpapi.WriteJSON(w, http.StatusOK, routeView(route))
	return nil
}

// ModelView is a model as the admin API shows it; prices are USD per million tokens.
type ModelView struct {
	Key                   string     `json:"model"`
	Provider              string     `json:"provider"`
	APIModel              string     `json:"api_model"`
	DisplayName           string     `json:"display_name"`
	InputPerMTokUSD       money.Nano `json:"input_usd_per_mtok"`
	OutputPerMTokUSD      money.Nano `json:"output_usd_per_mtok"`
	CachedInputPerMTokUSD money.Nano `json:"cached_input_usd_per_mtok"`
	PriceVersion          string     `json:"price_version"`
	Enabled               bool       `json:"enabled"`
	Emergency             bool       `json:"emergency"`
}

func (h *handlers) listModels(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	snap, err := h.Catalog.Get(r.Context())
	if err != nil {
		return err
	}
	writeList(w, "models", snap.Models(), modelView)
	return nil
}

func modelView(m catalog.Model) ModelView {
	return ModelView{
		Key: m.Key, Provider: m.Provider, APIModel: m.APIModel, DisplayName: m.DisplayName,
		InputPerMTokUSD: m.InputPerMTok, OutputPerMTokUSD: m.OutputPerMTok,
		CachedInputPerMTokUSD: m.CachedInputPerMTok, PriceVersion: m.PriceVersion,
		Enabled: m.Enabled, Emergency: m.Emergency,
	}
}
