// Package budgetapp assembles the budget function, for its Lambda main and the dev server: the
// budgets, the monitoring reads (the operation feed, spend reports, a user's usage), and the
// audit log's read side (entries, proofs, verification) for admins.
package budgetapp

import (
	"golang.org/x/mod/sumdb/note"

	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/alertapi"
	"github.com/helixhq/helix/shared/httpapi/auditapi"
	"github.com/helixhq/helix/shared/httpapi/budgetapi"
	"github.com/helixhq/helix/shared/httpapi/monitorapi"
	"github.com/helixhq/helix/shared/postgres/alertstore"
	"github.com/helixhq/helix/shared/postgres/auditstore"
	"github.com/helixhq/helix/shared/postgres/monitorstore"
)

// MaintenanceExempt are the budget function's routes that keep working in maintenance mode:
// none beyond the reads.
var MaintenanceExempt []string

// Mount registers what the budget function serves on srv.
func Mount(a *httpapp.App, srv *httpapi.Server) {
	budgetapi.Register(srv, a.Ledger())
	monitorapi.Register(srv, monitorstore.New(a.Pool, a.DefaultLimits()), nil)
	var verifier note.Verifiers
	if k := a.Config.Audit.VerifierKey; k != "" {
		// config.Load refused an unreadable key: this cannot fail.
		if v, err := auditlog.NewVerifiers(k); err == nil {
			verifier = v
		}
	}
	auditapi.Register(srv, auditstore.New(a.Pool), verifier)
	// config.Load refused a key that is not 32 bytes of base64: this cannot fail.
	alertStore, _ := alertstore.WithKey(a.Pool, a.Config.Alerts.WebhookKey)
	alertapi.Register(srv, alertStore, a.Config.Alerts.WebhookHosts)
}
