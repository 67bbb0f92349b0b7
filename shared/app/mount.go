package app

import (
	"net/http"

	"github.com/helixhq/helix/shared/budgetapi"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/intelapi"
	"github.com/helixhq/helix/shared/openaiapi"
	"github.com/helixhq/helix/shared/routeapi"
	"github.com/helixhq/helix/shared/store"
	"github.com/helixhq/helix/shared/toggles"
)

// NewServer returns an HTTP server with this base's authenticator and the maintenance gate:
// while ENABLE_MAINTENANCE_MODE is on, operations and writes answer 503 except the routing
// decision (a read) and the toggle endpoint that turns maintenance off.
func (b *Base) NewServer(tg *toggles.Service) *httpapi.Server {
	srv := httpapi.NewServer(b.Auth, b.Log)
	srv.AddGate(httpapi.MaintenanceGate(tg.Current, append(routeapi.ToggleRoutes(), "POST /ai-router/route")...))
	return srv
}

// MountRoute registers everything the route function serves: routing decisions, route, approval
// and toggle administration, the intelligence operations and the OpenAI-compatible API.
func (b *Base) MountRoute(srv *httpapi.Server, tg *toggles.Service, providers execute.Providers) {
	cache, routes := b.Catalog()
	routeapi.Register(srv, routeapi.Deps{Catalog: cache, Routes: routes, Budgets: b.Ledger()})
	routeapi.RegisterAdmin(srv, routeapi.AdminDeps{
		Approvals: store.NewApprovals(b.Pool, nil),
		Toggles:   tg,
		Providers: ProviderNames(cache),
	})
	pipeline := b.Pipeline(cache, tg, providers)
	intelapi.Register(srv, pipeline)
	openaiapi.Register(srv, pipeline, cache)
}

// MountBudget registers what the budget function serves.
func (b *Base) MountBudget(srv *httpapi.Server) {
	budgetapi.Register(srv, b.Ledger())
}

// MountHealth registers GET /healthz (no credentials), answering whether Postgres responds.
func (b *Base) MountHealth(srv *httpapi.Server) {
	srv.HandlePublic("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := b.Pool.Ping(r.Context()); err != nil {
			httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}
