// Package pipeline builds the execution pipeline over a function's core, for the functions that
// call models (route, chat and synthesis).
package pipeline

import (
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/toggles"
)

// New builds the pipeline: the function's catalog cache and kill switches, the shared breakers,
// the ledger, the operation log and approvals over its pool, the providers, and the core's
// metrics writer (Core.Metrics, which the function's main sets; none in tests and on the dev
// server).
func New(c *app.Core, cat *catalog.Cache, tg *toggles.Service, providers execute.Providers) *execute.Pipeline {
	policy := execute.DefaultPolicy()
	policy.ReservationTTL = c.Config.Budget.ReservationTTL
	p := &execute.Pipeline{
		Catalog:   cat,
		Toggles:   tg,
		Breakers:  c.Breakers(),
		Ledger:    c.Ledger(),
		Log:       c.Operations(),
		Approvals: postgres.NewApprovals(c.Pool, nil),
		Providers: providers,
		Logger:    c.Log,
		Policy:    policy,
	}
	// Only a writer that exists goes in: a nil *emf.Writer in the interface would not be nil.
	if w := c.Metrics; w != nil {
		p.Metrics = w
	}
	return p
}

var _ execute.Metrics = (*emf.Writer)(nil)
