// Package optimizeapp assembles the optimize function's daily run, for its Lambda (an EventBridge
// schedule, 06:00 UTC) and the dev server (POST /dev/optimize/run): load a week of the operation
// log, analyse it (package optimize), write the recommendations, count the routines' decay, and
// record one audit event that the outbox posts to #helix-alerts.
package optimizeapp

import (
	"context"
	"time"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/optimize"
	"github.com/helixhq/helix/shared/postgres/optimizestore"
)

// Optimizer is the daily run.
type Optimizer struct {
	Store *optimizestore.Store
	Now   func() time.Time
}

// New builds the run over the core's pool.
func New(c *app.Core) *Optimizer {
	return &Optimizer{Store: optimizestore.New(c.Pool), Now: time.Now}
}

// Result is what a run did.
type Result struct {
	Day       string             `json:"day"`
	TopCostly []optimize.Costly  `json:"top_costly"`
	Slow      []optimize.Slow    `json:"slow"`
	Anomalies []optimize.Anomaly `json:"anomalies"`
	// Recommendations: the ids proposed this run (new or refreshed), and the counts.
	Recommendations []string       `json:"recommendations"`
	New             int            `json:"new_recommendations"`
	Refreshed       int            `json:"refreshed_recommendations"`
	Stale           int            `json:"stale_recommendations"`
	MonthlySaving   money.Nano     `json:"estimated_monthly_saving_usd"`
	Decay           optimize.Decay `json:"memory_decay"`
	TookMS          int64          `json:"took_ms"`
}

// Run analyses the window ending now and saves what it found. Running it again the same day
// refreshes the pending recommendations instead of adding more.
func (o *Optimizer) Run(ctx context.Context) (Result, error) {
	start := o.Now()
	w := optimize.WindowAt(start)
	in, err := o.Store.Load(ctx, w)
	if err != nil {
		return Result{}, err
	}
	rep := optimize.Analyze(in)
	decay, err := o.Store.Decay(ctx, w.Now)
	if err != nil {
		return Result{}, err
	}
	var saving money.Nano
	for _, r := range rep.Recommendations {
		saving += r.MonthlySaving
	}
	saved, err := o.Store.Save(ctx, w.Day(), rep.Recommendations, func(s optimizestore.Saved) auditlog.Event {
		return auditlog.Event{Kind: optimize.AuditKind, Actor: "optimize", Payload: optimize.Summary{
			Day: rep.Day, TopCostly: rep.TopCostly, Slow: rep.Slow, Anomalies: rep.Anomalies,
			NewRecommendations: s.New, RefreshedRecommendations: s.Refreshed, StaleRecommendations: s.Stale,
			MonthlySaving: saving, Decay: decay,
		}}
	})
	if err != nil {
		return Result{}, err
	}
	ids := saved.IDs
	if ids == nil {
		ids = []string{}
	}
	return Result{
		Day: rep.Day, TopCostly: rep.TopCostly, Slow: rep.Slow, Anomalies: rep.Anomalies,
		Recommendations: ids, New: saved.New, Refreshed: saved.Refreshed, Stale: saved.Stale,
		MonthlySaving: saving, Decay: decay, TookMS: o.Now().Sub(start).Milliseconds(),
	}, nil
}
