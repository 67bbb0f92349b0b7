// Package routeapp assembles the route function: everything it serves, for its Lambda main and
// for the dev server. (Each function has its own package so that a Lambda links only what it
// serves.)
package routeapp

import (
	"context"

	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/app/pipeline"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/intelapi"
	"github.com/helixhq/helix/shared/httpapi/openaiapi"
	"github.com/helixhq/helix/shared/httpapi/recommendapi"
	"github.com/helixhq/helix/shared/httpapi/routeapi"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/postgres/optimizestore"
)

// MaintenanceExempt are the route function's routes that keep working in maintenance mode.
var MaintenanceExempt = routeapi.MaintenanceExempt

// Mount registers everything the route function serves on srv: routing decisions, route, model,
// approval and toggle administration, the optimizer's recommendations (approving a model switch
// edits a route), the intelligence operations and the OpenAI-compatible API.
func Mount(a *httpapp.App, srv *httpapi.Server, providers execute.Providers) {
	cache, repo := a.Catalog()
	p := pipeline.New(a.Core, cache, a.Toggles, providers)
	routeapi.Register(srv, routeapi.Deps{Catalog: cache, Editor: repo, Decider: p})
	routeapi.RegisterAdmin(srv, routeapi.AdminDeps{
		Approvals: postgres.NewApprovals(a.Pool, nil),
		Toggles:   a.Toggles,
		Providers: providerNames(cache),
	})
	recommendapi.Register(srv, optimizestore.New(a.Pool), cache)
	intelapi.Register(srv, p)
	openaiapi.Register(srv, p, cache)
}

// providerNames lists the providers the catalog's models use, for the kill-switch admin.
func providerNames(cat *catalog.Cache) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		snap, err := cat.Get(ctx)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		var out []string
		for _, m := range snap.Models() {
			if m.Provider != catalog.NoProvider && !seen[m.Provider] {
				seen[m.Provider] = true
				out = append(out, m.Provider)
			}
		}
		return out, nil
	}
}
