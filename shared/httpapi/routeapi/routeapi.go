// Package routeapi is the HTTP API of the route function: routing decisions with cost estimates,
// and the administration of operation routes.
package routeapi

import (
	"context"
	"net/http"
	"time"

	"github.com/helixhq/helix/shared/access"
	"github.com/helixhq/helix/shared/approval"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
)

// Catalog is the cached catalog.
type Catalog interface {
	Get(ctx context.Context) (*catalog.Snapshot, error)
	Invalidate()
}

// CatalogEditor changes routes and models.
type CatalogEditor interface {
	UpdateRoute(ctx context.Context, operationID string, change catalog.RouteChange, actor string) (catalog.Route, error)
	UpdateModel(ctx context.Context, key string, change catalog.ModelChange, actor string) (catalog.Model, error)
	ModelPrices(ctx context.Context, key string) ([]catalog.Price, error)
}

// Decider makes routing decisions (the execution pipeline's Decide use case).
type Decider interface {
	Decide(ctx context.Context, q execute.Query) (execute.Decision, error)
}

// Deps are what the route API needs.
type Deps struct {
	Catalog Catalog
	Editor  CatalogEditor
	Decider Decider
}

// Register adds the route function's endpoints to s.
func Register(s *httpapi.Server, d Deps) {
	h := &handlers{Deps: d}
	s.Handle("POST /ai-router/route", h.route)
	s.HandleAdmin("GET /admin/routes", h.listRoutes)
	s.HandleAdmin("PUT /admin/routes/{operation_id}", h.updateRoute)
	s.HandleAdmin("GET /admin/models", h.listModels)
	s.HandleAdmin("GET /admin/models/{key}", h.getModel)
	s.HandleAdmin("PUT /admin/models/{key}", h.updateModel)
}

type handlers struct{ Deps }

// RouteRequest is the body of POST /ai-router/route.
type RouteRequest struct {
	OperationID string `json:"operation_id"`
	// UserID is whose budget to check; omitted, it is the caller. Only admins may name another.
	UserID *string `json:"user_id"`
	// EstimatedTokens is the input size to price; omitted, the operation's average is used.
	EstimatedTokens *int64 `json:"estimated_tokens"`
}

// Validate checks the request on its own, before the catalog is consulted.
func (req RouteRequest) Validate() error {
	if req.OperationID == "" {
		return fault.New(fault.MissingField, "operation_id is required")
	}
	if err := httpapi.CheckID("operation_id", req.OperationID); err != nil {
		return err
	}
	if req.UserID != nil {
		if err := httpapi.CheckID("user_id", *req.UserID); err != nil {
			return err
		}
	}
	if t := req.EstimatedTokens; t != nil && (*t < 1 || *t > catalog.MaxInputTokensLimit) {
		return fault.Errorf(fault.InvalidField, "estimated_tokens must be between 1 and %d", catalog.MaxInputTokensLimit)
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
	q := execute.Query{Caller: access.Caller{UserID: p.UserID, Admin: p.Admin}, OperationID: req.OperationID}
	if req.UserID != nil {
		q.UserID = *req.UserID
	}
	if req.EstimatedTokens != nil {
		q.InputTokens = *req.EstimatedTokens
	}
	d, err := h.Decider.Decide(r.Context(), q)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, decisionResponse(d))
	return nil
}

func decisionResponse(d execute.Decision) RouteResponse {
	m := d.Model()
	chain := make([]string, d.ChainLen)
	for i := range chain {
		chain[i] = d.Chain[i].Key
	}
	var fallback *string
	if fb, ok := d.Fallback(); ok {
		fallback = &fb.Key
	}
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
		MaxOutputTokens:       d.MaxOutputTokens,
		EstimatedCostUSD:      d.EstimatedCost,
		WorstCaseCostUSD:      d.WorstCase,
		PriceVersion:          m.PriceVersion,
		CostCriticality:       string(d.Route.Criticality),
		RequiresApproval:      d.ApprovalReason != approval.ReasonNone,
		ApprovalReason:        string(d.ApprovalReason),
		WithinBudget:          d.WithinBudget,
		Budget: BudgetSummary{
			UserID:       d.Day.UserID,
			DailyLimit:   d.Day.Limits.DailyLimit,
			CurrentSpend: d.Day.Spent,
			Reserved:     d.Day.Reserved,
			Remaining:    d.Day.Remaining(),
		},
	}
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

// Change converts the body into a catalog change, checking the model keys it names.
func (u RouteUpdate) Change() (catalog.RouteChange, error) {
	for _, f := range []struct {
		name string
		v    *string
	}{{"primary_model", u.PrimaryModel}, {"fallback_model", &u.FallbackModel.Value}} {
		if f.v != nil && *f.v != "" {
			if err := httpapi.CheckID(f.name, *f.v); err != nil {
				return catalog.RouteChange{}, err
			}
		}
	}
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
	return c, nil
}

func (h *handlers) updateRoute(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	op, err := httpapi.PathID(r, "operation_id")
	if err != nil {
		return err
	}
	var body RouteUpdate
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	change, err := body.Change()
	if err != nil {
		return err
	}
	if change.Empty() {
		return fault.New(fault.MissingField,
			"send at least one of primary_model, fallback_model, enabled, requires_approval, max_output_tokens, cost_criticality")
	}
	route, err := h.Editor.UpdateRoute(r.Context(), op, change, p.UserID)
	if err != nil {
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
	// Cache writes (5-minute and 1-hour), where the provider reports them (Anthropic).
	CacheWritePerMTokUSD   money.Nano `json:"cache_write_usd_per_mtok"`
	CacheWrite1hPerMTokUSD money.Nano `json:"cache_write_1h_usd_per_mtok"`
	PriceVersion           string     `json:"price_version"`
	Enabled                bool       `json:"enabled"`
	Emergency              bool       `json:"emergency"`
	DirectAccess           bool       `json:"direct_access"`
	UpdatedBy              string     `json:"updated_by"`
	UpdatedAt              time.Time  `json:"updated_at"`
	// Prices is the model's price history, the version in force first (GET /admin/models/{key}).
	Prices []PriceView `json:"prices,omitempty"`
}

// PriceView is one price version.
type PriceView struct {
	PriceVersion           string     `json:"price_version"`
	InputPerMTokUSD        money.Nano `json:"input_usd_per_mtok"`
	OutputPerMTokUSD       money.Nano `json:"output_usd_per_mtok"`
	CachedInputPerMTokUSD  money.Nano `json:"cached_input_usd_per_mtok"`
	CacheWritePerMTokUSD   money.Nano `json:"cache_write_usd_per_mtok"`
	CacheWrite1hPerMTokUSD money.Nano `json:"cache_write_1h_usd_per_mtok"`
	EffectiveFrom          time.Time  `json:"effective_from"`
	EffectiveUntil         *time.Time `json:"effective_until"`
	CreatedBy              string     `json:"created_by"`
}

func (h *handlers) listModels(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	snap, err := h.Catalog.Get(r.Context())
	if err != nil {
		return err
	}
	writeList(w, "models", snap.Models(), modelView)
	return nil
}

func (h *handlers) getModel(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	key, err := httpapi.PathID(r, "key")
	if err != nil {
		return err
	}
	snap, err := h.Catalog.Get(r.Context())
	if err != nil {
		return err
	}
	m, ok := snap.Model(key)
	if !ok {
		return fault.Errorf(fault.ModelNotFound, "no model %q; GET /admin/models lists them", key)
	}
	return h.writeModel(w, r, m)
}

func (h *handlers) writeModel(w http.ResponseWriter, r *http.Request, m catalog.Model) error {
	prices, err := h.Editor.ModelPrices(r.Context(), m.Key)
	if err != nil {
		return err
	}
	v := modelView(m)
	v.Prices = make([]PriceView, len(prices))
	for i, p := range prices {
		v.Prices[i] = PriceView{PriceVersion: p.Version, InputPerMTokUSD: p.InputPerMTok, OutputPerMTokUSD: p.OutputPerMTok,
			CachedInputPerMTokUSD: p.CachedInputPerMTok, CacheWritePerMTokUSD: p.CacheWritePerMTok,
			CacheWrite1hPerMTokUSD: p.CacheWrite1hPerMTok, EffectiveFrom: p.EffectiveFrom, CreatedBy: p.CreatedBy}
		if !p.EffectiveUntil.IsZero() {
			until := p.EffectiveUntil
			v.Prices[i].EffectiveUntil = &until
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, v)
	return nil
}

// ModelUpdate is the body of PUT /admin/models/{key}; omitted fields stay as they are. Prices
// are USD per million tokens; changing any makes a new price version, effective now.
type ModelUpdate struct {
	Enabled                *bool       `json:"enabled"`
	DirectAccess           *bool       `json:"direct_access"`
	APIModel               *string     `json:"api_model"`
	InputPerMTokUSD        *money.Nano `json:"input_usd_per_mtok"`
	OutputPerMTokUSD       *money.Nano `json:"output_usd_per_mtok"`
	CachedInputPerMTokUSD  *money.Nano `json:"cached_input_usd_per_mtok"`
	CacheWritePerMTokUSD   *money.Nano `json:"cache_write_usd_per_mtok"`
	CacheWrite1hPerMTokUSD *money.Nano `json:"cache_write_1h_usd_per_mtok"`
	// PriceVersion names the new price version (default "<model>@<UTC time>").
	PriceVersion *string `json:"price_version"`
}

func (h *handlers) updateModel(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	key, err := httpapi.PathID(r, "key")
	if err != nil {
		return err
	}
	var body ModelUpdate
	if err := httpapi.DecodeJSON(r, &body); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"api_model", body.APIModel}, {"price_version", body.PriceVersion}} {
		if f.v != nil {
			if err := httpapi.CheckID(f.name, *f.v); err != nil {
				return err
			}
		}
	}
	change := catalog.ModelChange{
		Enabled: body.Enabled, DirectAccess: body.DirectAccess, APIModel: body.APIModel,
		InputPerMTok: body.InputPerMTokUSD, OutputPerMTok: body.OutputPerMTokUSD,
		CachedInputPerMTok: body.CachedInputPerMTokUSD, CacheWritePerMTok: body.CacheWritePerMTokUSD,
		CacheWrite1hPerMTok: body.CacheWrite1hPerMTokUSD, PriceVersion: body.PriceVersion,
	}
	if change.Empty() {
		return fault.New(fault.MissingField, "send at least one of enabled, direct_access, api_model, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok, cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok")
	}
	m, err := h.Editor.UpdateModel(r.Context(), key, change, p.UserID)
	if err != nil {
		return err
	}
	h.Catalog.Invalidate()
	return h.writeModel(w, r, m)
}

func modelView(m catalog.Model) ModelView {
	return ModelView{
		Key: m.Key, Provider: m.Provider, APIModel: m.APIModel, DisplayName: m.DisplayName,
		InputPerMTokUSD: m.InputPerMTok, OutputPerMTokUSD: m.OutputPerMTok,
		CachedInputPerMTokUSD: m.CachedInputPerMTok, CacheWritePerMTokUSD: m.CacheWritePerMTok,
		CacheWrite1hPerMTokUSD: m.CacheWrite1hPerMTok, PriceVersion: m.PriceVersion,
		Enabled: m.Enabled, Emergency: m.Emergency, DirectAccess: m.DirectAccess,
		UpdatedBy: m.UpdatedBy, UpdatedAt: m.UpdatedAt,
	}
}
