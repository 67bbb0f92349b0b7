// Package routeapp assembles the route function: everything it serves, for its Lambda main and
// for the dev server. (Each function has its own package so that a Lambda links only what it
// serves.)
package routeapp

import (
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/intelapi"
	"github.com/helixhq/helix/shared/httpapi/openaiapi"
	"github.com/helixhq/helix/shared/httpapi/routeapi"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/toggles"
)

// Mount registers everything the route function serves on srv: routing decisions, route,
// approval and toggle administration, the intelligence operations and the OpenAI-compatible API.
func Mount(b *app.Base, srv *httpapi.Server, tg *toggles.Service, providers execute.Providers) {
	cache, routes := b.Catalog()
	routeapi.Register(srv, routeapi.Deps{Catalog: cache, Routes: routes, Budgets: b.Ledger()})
	routeapi.RegisterAdmin(srv, routeapi.AdminDeps{
		Approvals: postgres.NewApprovals(b.Pool, nil),
		Toggles:   tg,
		Providers: app.ProviderNames(cache),
	})
	pipeline := b.Pipeline(cache, tg, providers)
	intelapi.Register(srv, pipeline)
	openaiapi.Register(srv, pipeline, cache)
}
