// Package catalog is the data Helix routes by: the models with their prices, and one route per
// operation (primary model, fallback, limits). It is data, not code: operators change it in
// Postgres and every instance sees the change within the cache TTL.
package catalog

import (
	"sort"
	"time"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/money"
)

// Criticality says how much an operation's cost matters; HIGH operations whose estimate exceeds
// the user's warning threshold are held for approval.
type Criticality string

// Cost criticalities.
const (
	Low    Criticality = "LOW"
	Medium Criticality = "MEDIUM"
	High   Criticality = "HIGH"
)

// Valid reports whether c is one of the three criticalities.
func (c Criticality) Valid() bool { return c == Low || c == Medium || c == High }

// NoProvider is the provider of a model that no provider serves yet (the speech placeholder).
const NoProvider = "none"

// Model is a model Helix can call, with its prices in nano-USD per million tokens.
type Model struct {
	Key                string
	Provider           string
	APIModel           string
	DisplayName        string
	InputPerMTok       money.Nano
	OutputPerMTok      money.Nano
	CachedInputPerMTok money.Nano
	// CacheWritePerMTok and CacheWrite1hPerMTok price input written to the provider's prompt
	// cache for 5 minutes and for an hour (Anthropic: 1.25× and 2× the input price). Providers
	// that bill writes as plain input report none, so these only apply where writes are reported.
	CacheWritePerMTok   money.Nano
	CacheWrite1hPerMTok money.Nano
	PriceVersion        string
	Enabled             bool
	Emergency           bool
	// DirectAccess: ordinary users may name the model directly (/v1 model "deepseek") instead of
	// reaching it through an operation's route. Admins always may.
	DirectAccess bool
	UpdatedBy    string
	UpdatedAt    time.Time
}

// Price is one price version of a model, in nano-USD per million tokens.
type Price struct {
	Version             string
	InputPerMTok        money.Nano
	OutputPerMTok       money.Nano
	CachedInputPerMTok  money.Nano
	CacheWritePerMTok   money.Nano
	CacheWrite1hPerMTok money.Nano
	EffectiveFrom       time.Time
	EffectiveUntil      time.Time // zero while in force
	CreatedBy           string
}

// Usable reports whether calls can be routed to the model.
func (m Model) Usable() bool { return m.Enabled && m.Provider != NoProvider && m.Provider != "" }

// Usage is what a provider reported for one call, normalized: InputTokens excludes the cached
// ones and the cache writes, and ReasoningTokens are billed at the output price on top of
// OutputTokens.
type Usage struct {
	InputTokens        int64
	CachedInputTokens  int64
	CacheWriteTokens   int64 // written to a 5-minute prompt cache
	CacheWrite1hTokens int64 // written to a 1-hour prompt cache
	OutputTokens       int64
	ReasoningTokens    int64
}

// Zero reports whether the usage counts no token at all (a provider that billed nothing).
func (u Usage) Zero() bool { return u == Usage{} }

// Cost is the exact cost of usage at the model's prices: every component is priced per million
// tokens and the sum is rounded up to the next nano-USD once. ok is false for negative or
// absurdly large usage.
func (m Model) Cost(u Usage) (cost money.Nano, ok bool) {
	if u.InputTokens < 0 || u.CachedInputTokens < 0 || u.CacheWriteTokens < 0 || u.CacheWrite1hTokens < 0 ||
		u.OutputTokens < 0 || u.ReasoningTokens < 0 {
		return 0, false
	}
	return money.CostOf(
		money.TokenCharge{Tokens: u.InputTokens, PerMillion: m.InputPerMTok},
		money.TokenCharge{Tokens: u.CachedInputTokens, PerMillion: m.CachedInputPerMTok},
		money.TokenCharge{Tokens: u.CacheWriteTokens, PerMillion: m.CacheWritePerMTok},
		money.TokenCharge{Tokens: u.CacheWrite1hTokens, PerMillion: m.CacheWrite1hPerMTok},
		money.TokenCharge{Tokens: u.OutputTokens + u.ReasoningTokens, PerMillion: m.OutputPerMTok},
	)
}

// MaxInputPerMTok is the highest price an input token can cost at this model: the input price,
// or a cache-write price above it. Worst cases are computed with it, so a call whose input is
// written to a cache still fits in what was reserved.
func (m Model) MaxInputPerMTok() money.Nano {
	return max(m.InputPerMTok, m.CacheWritePerMTok, m.CacheWrite1hPerMTok)
}

// Route says how one operation is served.
type Route struct {
	OperationID      string
	OperationName    string
	PrimaryModel     string
	FallbackModel    string // "" when the operation has none
	Enabled          bool
	Criticality      Criticality
	RequiresApproval bool
	MaxOutputTokens  int64
	AvgInputTokens   int64
	AvgOutputTokens  int64
	AllowEmergency   bool
	Notes            string
	UpdatedBy        string
	UpdatedAt        time.Time
}

// Limits on what an operator may set, so a typo cannot make one call reserve a fortune.
const (
	MaxOutputTokensLimit = 1_000_000
	MaxInputTokensLimit  = 10_000_000
)

// Errors of the catalog.
var (
	ErrUnknownOperation = fault.New(fault.UnknownOperation, "unknown operation")
	ErrUnknownModel     = fault.New(fault.UnknownModel, "unknown model")
	// ErrNoSuchModel: the model a path names (/admin/models/{key}) does not exist.
	ErrNoSuchModel   = fault.New(fault.ModelNotFound, "no such model")
	ErrInvalidChange = fault.New(fault.InvalidField, "invalid route change")
)

// Snapshot is an immutable view of the catalog at one moment; it is safe for concurrent use.
type Snapshot struct {
	models    map[string]Model
	routes    map[string]Route
	emergency string
	loadedAt  time.Time
}

// NewSnapshot indexes models and routes. The emergency model is the one flagged Emergency.
func NewSnapshot(models []Model, routes []Route, loadedAt time.Time) *Snapshot {
	s := &Snapshot{
		models:   make(map[string]Model, len(models)),
		routes:   make(map[string]Route, len(routes)),
		loadedAt: loadedAt,
	}
	for _, m := range models {
		s.models[m.Key] = m
		if m.Emergency {
			s.emergency = m.Key
		}
	}
	for _, r := range routes {
		s.routes[r.OperationID] = r
	}
	return s
}

// Model returns the model with the given key.
func (s *Snapshot) Model(key string) (Model, bool) {
	m, ok := s.models[key]
	return m, ok
}

// Route returns the route of an operation.
func (s *Snapshot) Route(operationID string) (Route, bool) {
	r, ok := s.routes[operationID]
	return r, ok
}

// Emergency returns the emergency fallback model, if one is configured.
func (s *Snapshot) Emergency() (Model, bool) {
	if s.emergency == "" {
		return Model{}, false
	}
	return s.Model(s.emergency)
}

// LoadedAt is when the snapshot was read from the database.
func (s *Snapshot) LoadedAt() time.Time { return s.loadedAt }

// Models returns every model, sorted by key.
func (s *Snapshot) Models() []Model {
	out := make([]Model, 0, len(s.models))
	for _, m := range s.models {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Routes returns every route, sorted by operation id.
func (s *Snapshot) Routes() []Route {
	out := make([]Route, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OperationID < out[j].OperationID })
	return out
}
