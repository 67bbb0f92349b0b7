// Package budgetapp assembles the budget function, for its Lambda main and the dev server: the
// budgets, the monitoring reads (the operation feed, spend reports, a user's usage), and the
// audit log's read side (entries, proofs, verification) for admins.
package budgetapp

import (
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/budget"
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
	monitorapi.Register(srv, monitorstore.New(a.Pool, budget.Limits{
		DailyLimit: a.Config.Budget.DefaultDailyLimit,
		Warning:    a.Config.Budget.DefaultWarning,
	}), nil)
	var verifier note.Verifiers
	if k := a.Config.Audit.VerifierKey; k != "" {
		// config.Load refused an unreadable key: this cannot fail.
		if v, err := auditlog.NewVerifiers(k); err == nil {
			verifier = v
		}
	}
	auditapi.Register(srv, auditstore.New(a.Pool), verifier)
	var sealer *alerts.Sealer
	if k := a.Config.Alerts.WebhookKey; k != "" {
		// config.Load refused a key that is not 32 bytes of base64: this cannot fail.
		sealer, _ = alerts.NewSealer(strings.TrimSpace(k))
	}
	alertapi.Register(srv, alertstore.New(a.Pool, sealer), a.Config.Alerts.WebhookHosts)
}
