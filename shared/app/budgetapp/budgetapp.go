// Package budgetapp assembles the budget function, for its Lambda main and the dev server.
package budgetapp

import (
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/budgetapi"
)

// Mount registers what the budget function serves on srv.
func Mount(b *app.Base, srv *httpapi.Server) {
	budgetapi.Register(srv, b.Ledger())
}
