// Package budgetapp assembles the budget function, for its Lambda main and the dev server: the
// budgets, the monitoring reads (the operation feed, spend reports, a user's usage), and the
// audit log's read side (entries, proofs, verification) for admins.
package budgetapp

import (
	"context"
	"strings"
	"time"

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
	monitorapi.Register(srv, monitorSource{monitorstore.New(a.Pool, budget.Limits{
		DailyLimit: a.Config.Budget.DefaultDailyLimit,
		Warning:    a.Config.Budget.DefaultWarning,
	})}, nil)
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

// monitorSource adapts the Postgres store to the API's port: the transport may not import an
// adapter, so each side has its own (identically shaped) types and this converts them.
type monitorSource struct{ st *monitorstore.Store }

func (m monitorSource) Recent(ctx context.Context, before int64, limit int) ([]monitorapi.Operation, error) {
	ops, err := m.st.Recent(ctx, before, limit)
	return convert(ops, func(o monitorstore.Operation) monitorapi.Operation { return monitorapi.Operation(o) }), err
}

func (m monitorSource) Spend(ctx context.Context, q monitorapi.Query) ([]monitorapi.Group, error) {
	groups, err := m.st.Spend(ctx, monitorstore.Query{By: monitorstore.GroupBy(q.By), From: q.From, To: q.To, UserID: q.UserID, Limit: q.Limit})
	return convert(groups, func(g monitorstore.Group) monitorapi.Group { return monitorapi.Group(g) }), err
}

func (m monitorSource) Summary(ctx context.Context, day time.Time) (monitorapi.Summary, error) {
	s, err := m.st.Summary(ctx, day)
	if err != nil {
		return monitorapi.Summary{}, err
	}
	b := s.Budgets
	return monitorapi.Summary{Date: s.Date, Calls: s.Calls, Spend: s.Spend, Errors: s.Errors,
		Providers: convert(s.Providers, func(p monitorstore.ProviderShare) monitorapi.ProviderShare { return monitorapi.ProviderShare(p) }),
		Budgets: monitorapi.Utilisation{Users: b.Users, Spent: b.Spent, Limit: b.Limit, Ratio: b.Ratio,
			OverWarning: b.OverWarning, AtLimit: b.AtLimit, MaxRatio: b.MaxRatio,
			MostSpending: convert(b.MostSpending, func(u monitorstore.UserBudget) monitorapi.UserBudget { return monitorapi.UserBudget(u) })},
	}, nil
}

func convert[S, T any](in []S, f func(S) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
