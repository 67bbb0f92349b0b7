// Package httpapp is the cold-start part of the functions that serve HTTP: the authenticator
// (bearer tokens, or API Gateway's verified claims), the kill-switch service the maintenance gate
// reads, and the server every route is registered on. Event-driven functions do not link it.
package httpapp

import (
	"context"
	"net/http"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/toggles"
)

// App is an HTTP function's cold start: the core and the HTTP part.
type App struct {
	*app.Core
	Auth *auth.Authenticator
	// Toggles is the function's one kill-switch service: the maintenance gate and the services
	// that read or set switches share it (and its cache).
	Toggles *toggles.Service
}

// Boot is app.Boot with the HTTP settings, then New.
func Boot(ctx context.Context, o app.Options) (*App, error) {
	o.Parts.HTTP = true
	core, err := app.Boot(ctx, o)
	if err != nil {
		return nil, err
	}
	a, err := New(ctx, core)
	if err != nil {
		core.Pool.Close()
		return nil, err
	}
	return a, nil
}

// New builds the HTTP part over a core whose configuration holds the HTTP settings. ctx bounds
// the authenticator's JWKS refreshes: pass the function's lifetime, not a request's.
func New(ctx context.Context, core *app.Core) (*App, error) {
	c := core.Config.HTTP.Auth
	authn, err := auth.New(ctx, auth.Config{
		HS256Secret:     []byte(c.HS256Secret),
		JWKSURL:         c.JWKSURL,
		Algorithms:      c.Algorithms,
		Issuer:          c.Issuer,
		Audience:        c.Audience,
		AdminClaim:      c.AdminClaim,
		AdminValue:      c.AdminValue,
		AdminUserIDs:    c.AdminUserIDs,
		MonitoringValue: c.MonitoringRole,
	})
	if err != nil {
		return nil, err
	}
	return &App{Core: core, Auth: authn, Toggles: core.Toggles()}, nil
}

// NewServer returns an HTTP server with this app's authenticator, its CORS origins and the
// maintenance gate: while ENABLE_MAINTENANCE_MODE is on, operations and writes answer 503 except
// the routes in allowInMaintenance (patterns as registered, e.g. the toggle endpoint that turns
// maintenance off).
func (a *App) NewServer(allowInMaintenance ...string) *httpapi.Server {
	srv := httpapi.NewServer(a.Auth, a.Log)
	srv.UseCORS(httpapi.CORS{AllowOrigins: a.Config.HTTP.CORSAllowOrigins})
	srv.AddGate(httpapi.MaintenanceGate(func(ctx context.Context) (bool, error) {
		set, err := a.Toggles.Current(ctx)
		return set.Enabled(toggles.Maintenance), err
	}, allowInMaintenance...))
	return srv
}

// MountHealth registers GET /healthz (no credentials), answering whether Postgres responds.
func (a *App) MountHealth(srv *httpapi.Server) {
	srv.HandlePublic("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Pool.Ping(r.Context()); err != nil {
			httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}
