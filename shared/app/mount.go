package app

import (
	"net/http"

	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/routeapi"
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
