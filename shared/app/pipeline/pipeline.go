// Package pipeline builds the execution pipeline over a function's core, for the functions that
// call models (route; later chat and synthesis).
package pipeline

import (
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/toggles"
)

// New builds the pipeline: the function's catalog cache and kill switches, the shared breakers,
// the ledger, the operation log and approvals over its pool, and the providers.
func New(c *app.Core, cat *catalog.Cache, tg *toggles.Service, providers execute.Providers) *execute.Pipeline {
	policy := execute.DefaultPolicy()
	policy.ReservationTTL = c.Config.Budget.ReservationTTL
	return &execute.Pipeline{
		Catalog:   cat,
		Toggles:   tg,
		Breakers:  c.Breakers(),
		Ledger:    c.Ledger(),
		Log:       postgres.NewOperations(c.Pool, nil),
		Approvals: postgres.NewApprovals(c.Pool, nil),
		Providers: providers,
		Logger:    c.Log,
		Policy:    policy,
	}
}
