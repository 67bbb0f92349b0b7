// Package budgetapp assembles the budget function, for its Lambda main and the dev server.
package budgetapp

import (
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/budgetapi"
)

// MaintenanceExempt are the budget function's routes that keep working in maintenance mode:
// none beyond the reads.
var MaintenanceExempt []string

// Mount registers what the budget function serves on srv.
func Mount(a *httpapp.App, srv *httpapi.Server) {
	budgetapi.Register(srv, a.Ledger())
}
