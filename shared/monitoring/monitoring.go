// Package monitoring is what the operators' reports are made of: the live operation feed's
// rows, spend grouped by operation, user, model or day, and a day's summary. Postgres computes
// them (shared/postgres/monitorstore); the API shows them (shared/httpapi/monitorapi).
package monitoring

import (
	"time"

	"github.com/helixhq/helix/shared/money"
)

// Operation is one row of the live feed.
type Operation struct {
	ID          int64
	OperationID string
	UserID      string
	Model       string // "" when no model was called
	Cost        money.Nano
	LatencyMS   int64
	Success     bool
	Fallback    bool
	CreatedAt   time.Time
}

// GroupBy is what spend is grouped by.
type GroupBy string

// The groupings.
const (
	ByOperation GroupBy = "operation"
	ByUser      GroupBy = "user"
	ByModel     GroupBy = "model"
	ByDay       GroupBy = "day" // UTC dates, YYYY-MM-DD
)

// Query selects the rows spend is computed over: created_at in [From, To), and only UserID's
// when it is set.
type Query struct {
	By       GroupBy
	From, To time.Time
	UserID   string
	// Limit caps the groups returned (the most costly first; days in date order).
	Limit int
}

// Group is the figures of one group.
type Group struct {
	Key          string
	Calls        int64
	Total        money.Nano
	AvgCost      money.Nano // Total / Calls, rounded to the nearest nano-USD
	AvgLatencyMS float64
	P95LatencyMS int64 // an observed latency: the smallest with at least 95% of calls at or below it
	MaxLatencyMS int64
	Errors       int64
	Fallbacks    int64
	ErrorRate    float64
	FallbackRate float64
}

// Summary is one UTC day at a glance.
type Summary struct {
	Date      time.Time // the day, midnight UTC
	Calls     int64
	Spend     money.Nano // the day's logged cost
	Errors    int64
	Providers []ProviderShare
	Budgets   Utilisation
}

// ProviderShare is a provider's part of the day's calls.
type ProviderShare struct {
	Provider string // "" for calls refused before any provider
	Calls    int64
	Share    float64 // of the day's calls
}

// Utilisation is the budgets of the users who spent something that day, each against the limit
// the ledger applies to them (their own, else the default).
type Utilisation struct {
	Users        int64
	Spent        money.Nano
	Limit        money.Nano // the sum of those users' limits
	Ratio        float64    // Spent / Limit
	OverWarning  int64      // users at or above their warning threshold
	AtLimit      int64      // users at or above their limit
	MaxRatio     float64
	MostSpending []UserBudget // the highest ratios first, at most TopUsers
}

// UserBudget is one user's day.
type UserBudget struct {
	UserID string
	Spent  money.Nano
	Limit  money.Nano
	Ratio  float64
}
