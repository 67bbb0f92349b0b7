package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
)

// recorded returns the audit events pending, oldest first.
func recorded(t *testing.T, pool *pgxpool.Pool) []auditlog.Pending {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, kind, actor, payload FROM audit_pending ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditlog.Pending
	for rows.Next() {
		var p auditlog.Pending
		var kind string
		if err := rows.Scan(&p.ID, &kind, &p.Actor, &p.Payload); err != nil {
			t.Fatal(err)
		}
		p.Kind = auditlog.Kind(kind)
		out = append(out, p)
	}
	return out
}

func changeOf(t *testing.T, p auditlog.Pending) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal([]byte(p.Payload), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// Every admin change is in the audit log with who made it and the values before and after, in
// the change's own transaction: a refused change records nothing.
func TestAdminChangesAreAudited(t *testing.T) {
	ctx := context.Background()
	pool := pg.NewPool(t)
	cat := postgres.NewCatalog(pool, nil)
	ledger := postgres.NewLedger(pool, budget.Limits{DailyLimit: money.MustUSD(50), Warning: money.MustUSD(25)}, nil)
	tg := postgres.NewToggles(pool)

	off := false
	if _, err := cat.UpdateRoute(ctx, "email-compose", catalog.RouteChange{Enabled: &off}, "ops"); err != nil {
		t.Fatal(err)
	}
	price := money.MustUSD(0.3)
	if _, err := cat.UpdateModel(ctx, "deepseek", catalog.ModelChange{InputPerMTok: &price}, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.SetLimits(ctx, "alice", budget.Limits{DailyLimit: money.MustUSD(100), Warning: money.MustUSD(50)}, "ops"); err != nil {
		t.Fatal(err)
	}
	daily := money.MustUSD(10)
	if _, err := ledger.UpdateLimits(ctx, "bob", &daily, nil, "lead"); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.SetToggle(ctx, "DISABLE_SYNTHESIS", true, "ops"); err != nil {
		t.Fatal(err)
	}
	// Refused: nothing recorded.
	bad := "no-such-model"
	if _, err := cat.UpdateRoute(ctx, "email-compose", catalog.RouteChange{PrimaryModel: &bad}, "ops"); err == nil {
		t.Fatal("a route to a model that does not exist was accepted")
	}
	if _, err := cat.UpdateRoute(ctx, "no-such-op", catalog.RouteChange{Enabled: &off}, "ops"); !errors.Is(err, catalog.ErrUnknownOperation) {
		t.Fatalf("unknown operation: %v", err)
	}

	events := recorded(t, pool)
	if len(events) != 5 {
		t.Fatalf("%d events recorded, want 5: %+v", len(events), events)
	}
	type want struct {
		actor, what, id string
		before, after   string // a JSON fragment of each
		reprice         bool
	}
	wants := []want{
		{"ops", "route", "email-compose", `"enabled":true`, `"enabled":false`, false},
		{"ops", "model", "deepseek", `"input_usd_per_mtok":"0.28"`, `"input_usd_per_mtok":"0.3"`, true},
		{"ops", "budget", "alice", `"daily_limit_usd":"50"`, `"daily_limit_usd":"100"`, false},
		{"lead", "budget", "bob", `"daily_limit_usd":"50"`, `"warning_threshold_usd":"5"`, false},
		{"ops", "toggle", "DISABLE_SYNTHESIS", `"enabled":false`, `"enabled":true`, false}, // seeded off
	}
	for i, w := range wants {
		e := events[i]
		c := changeOf(t, e)
		before, _ := json.Marshal(c["before"])
		after, _ := json.Marshal(c["after"])
		reprice, _ := c["reprice"].(bool)
		if e.Kind != auditlog.AdminChange || e.Actor != w.actor || c["what"] != w.what || c["id"] != w.id ||
			!strings.Contains(string(before), w.before) || !strings.Contains(string(after), w.after) || reprice != w.reprice {
			t.Errorf("event %d = %s by %s: %s; want %+v", i, e.Kind, e.Actor, e.Payload, w)
		}
	}
}
