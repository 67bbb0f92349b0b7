package recommendapi_test

// The recommendations API over HTTP, against a migrated database: approving a model switch
// applies it to the route once, in the audit log with the route's before and after; a stale one
// refuses and says why; decisions answer with the stable codes.

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/httpapi/recommendapi"
	"github.com/helixhq/helix/shared/optimize"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/postgres/optimizestore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

var tokens = apitest.Tokens{
	Secret:   "recommend-test-secret-0123456789abcdef",
	Issuer:   "https://auth.helix.test/recommend",
	Audience: "helix-recommend",
}

type invalidations struct{ n int }

func (i *invalidations) Invalidate() { i.n++ }

type env struct {
	base, admin, user string
	pool              *pgxpool.Pool
	store             *optimizestore.Store
	cache             *invalidations
}

func newEnv(t *testing.T) *env {
	pool := pg.NewPool(t)
	a := apitest.NewApp(t, tokens, pool, apitest.Log(t))
	srv := a.NewServer()
	e := &env{pool: pool, store: optimizestore.New(pool), cache: &invalidations{}}
	recommendapi.Register(srv, e.store, e.cache)
	e.base = apitest.Serve(t, srv)
	e.admin = tokens.Token(t, "ops", map[string]any{"role": "admin"})
	e.user = tokens.Token(t, "alice", nil)
	return e
}

// propose stores a model switch of op as the optimizer would, based on the seeded route.
func (e *env) propose(t *testing.T, op, to, fallback string) string {
	t.Helper()
	var rt catalog.Route
	snap, err := postgres.NewCatalog(e.pool, nil).LoadCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rt, _ = snap.Route(op)
	rec := optimize.Recommendation{Type: optimize.TypeModelSwitch, Target: op,
		Proposal:      optimize.Proposal{PrimaryModel: to, FallbackModel: fallback},
		MonthlySaving: 9_471_428_571, Reasoning: "because",
		Basis: optimize.Basis{PrimaryModel: rt.PrimaryModel, FallbackModel: rt.FallbackModel}}
	saved, err := e.store.Save(context.Background(), "2026-12-02", []optimize.Recommendation{rec},
		func(optimizestore.Saved) auditlog.Event {
			return auditlog.Event{Kind: optimize.AuditKind, Payload: map[string]any{}}
		})
	if err != nil {
		t.Fatal(err)
	}
	return saved.IDs[0]
}

type view struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	Saving      json.Number     `json:"estimated_monthly_saving_usd"`
	Proposal    json.RawMessage `json:"proposal"`
	StaleReason string          `json:"stale_reason"`
	DecidedBy   string          `json:"decided_by"`
}

func (e *env) primary(t *testing.T, op string) (string, string) {
	var p, f string
	if err := e.pool.QueryRow(context.Background(), `SELECT primary_model, COALESCE(fallback_model, '') FROM ai_model_routes WHERE operation_id = $1`, op).Scan(&p, &f); err != nil {
		t.Fatal(err)
	}
	return p, f
}

// routeChanges are the audit log's route changes of op, in order.
func (e *env) routeChanges(t *testing.T, op string) []auditlog.Change {
	rows, err := e.pool.Query(context.Background(), `SELECT payload FROM audit_pending WHERE kind = 'admin_change' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditlog.Change
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		var c auditlog.Change
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			t.Fatal(err)
		}
		if c.What == auditlog.ChangedRoute && c.ID == op {
			out = append(out, c)
		}
	}
	return out
}

func TestApproveAppliesOnceAndIsAudited(t *testing.T) {
	e := newEnv(t)
	id := e.propose(t, "email-compose", "gemini_flash", "deepseek")

	var list struct {
		Recommendations []view `json:"recommendations"`
	}
	res := apitest.Do(t, http.MethodGet, e.base+"/admin/recommendations", e.admin, "")
	res.WantStatus(t, http.StatusOK)
	res.Decode(t, &list)
	if len(list.Recommendations) != 1 || list.Recommendations[0].ID != id || list.Recommendations[0].Saving != "9.471428571" {
		t.Fatalf("list %s", res.Body)
	}

	for i := range 2 { // the second approve is a retry: same answer, nothing applied again
		res := apitest.Do(t, http.MethodPost, e.base+"/admin/recommendations/"+id+"/approve", e.admin, `{"note":"cheaper, same quality"}`)
		res.WantStatus(t, http.StatusOK)
		var v view
		res.Decode(t, &v)
		if v.Status != "applied" || v.DecidedBy != "ops" {
			t.Fatalf("approve %d: %s", i, res.Body)
		}
	}
	if p, f := e.primary(t, "email-compose"); p != "gemini_flash" || f != "deepseek" {
		t.Errorf("route now %s / %s", p, f)
	}
	changes := e.routeChanges(t, "email-compose")
	if len(changes) != 1 {
		t.Fatalf("%d route changes audited, want 1", len(changes))
	}
	before, _ := json.Marshal(changes[0].Before)
	after, _ := json.Marshal(changes[0].After)
	if !strings.Contains(string(before), `"primary_model":"deepseek"`) || !strings.Contains(string(after), `"primary_model":"gemini_flash"`) ||
		!strings.Contains(string(after), `"fallback_model":"deepseek"`) {
		t.Errorf("audited before %s after %s", before, after)
	}
	if e.cache.n == 0 {
		t.Error("the catalog cache was not invalidated after the approval")
	}

	// Rejecting an applied one is a contrary decision.
	res = apitest.Do(t, http.MethodPost, e.base+"/admin/recommendations/"+id+"/reject", e.admin, "")
	if b := res.WantErrorBody(t, http.StatusConflict); b.Error.Code != "recommendation_not_pending" {
		t.Errorf("reject after apply: %s", res.Body)
	}
	res = apitest.Do(t, http.MethodGet, e.base+"/admin/recommendations?status=applied", e.admin, "")
	res.Decode(t, &list)
	if len(list.Recommendations) != 1 {
		t.Errorf("applied list %s", res.Body)
	}
}

// The approval audits the route as the admin route edit does: same keys, same values.
func TestApprovalAuditsLikeTheAdminEdit(t *testing.T) {
	e := newEnv(t)
	id := e.propose(t, "email-compose", "gemini_flash", "deepseek")
	apitest.Do(t, http.MethodPost, e.base+"/admin/recommendations/"+id+"/approve", e.admin, "").WantStatus(t, http.StatusOK)
	back, fb := "deepseek", "gemini_flash"
	if _, err := postgres.NewCatalog(e.pool, nil).UpdateRoute(context.Background(), "email-compose",
		catalog.RouteChange{PrimaryModel: &back, FallbackModel: &fb}, "ops"); err != nil {
		t.Fatal(err)
	}
	c := e.routeChanges(t, "email-compose")
	if len(c) != 2 {
		t.Fatalf("%d route changes", len(c))
	}
	mine, _ := json.Marshal(c[0].After)
	theirs, _ := json.Marshal(c[1].Before)
	if string(mine) != string(theirs) {
		t.Errorf("approval recorded %s; the admin edit records the same route as %s", mine, theirs)
	}
}

func TestStaleRefusesToApply(t *testing.T) {
	e := newEnv(t)
	id := e.propose(t, "email-compose", "gemini_flash", "deepseek")
	// An operator changes the route after the recommendation was made.
	claude := "claude"
	if _, err := postgres.NewCatalog(e.pool, nil).UpdateRoute(context.Background(), "email-compose",
		catalog.RouteChange{PrimaryModel: &claude}, "ops"); err != nil {
		t.Fatal(err)
	}
	res := apitest.Do(t, http.MethodPost, e.base+"/admin/recommendations/"+id+"/approve", e.admin, "")
	b := res.WantErrorBody(t, http.StatusConflict)
	if b.Error.Code != "recommendation_stale" || !strings.Contains(b.Error.Message, "primary model is now claude") {
		t.Errorf("approve stale: %s", res.Body)
	}
	if p, _ := e.primary(t, "email-compose"); p != "claude" {
		t.Errorf("route primary %s: the stale recommendation was applied", p)
	}
	if n := len(e.routeChanges(t, "email-compose")); n != 1 { // the operator's edit only
		t.Errorf("%d route changes", n)
	}
	// It stays stale, and says why.
	var list struct {
		Recommendations []view `json:"recommendations"`
	}
	res = apitest.Do(t, http.MethodGet, e.base+"/admin/recommendations?status=stale", e.admin, "")
	res.Decode(t, &list)
	if len(list.Recommendations) != 1 || !strings.Contains(list.Recommendations[0].StaleReason, "claude") {
		t.Errorf("stale list %s", res.Body)
	}
	res = apitest.Do(t, http.MethodPost, e.base+"/admin/recommendations/"+id+"/approve", e.admin, "")
	if b := res.WantErrorBody(t, http.StatusConflict); b.Error.Code != "recommendation_not_pending" || !strings.Contains(b.Error.Message, "stale") {
		t.Errorf("approve again: %s", res.Body)
	}
}

func TestDecisionsAndErrors(t *testing.T) {
	e := newEnv(t)
	id := e.propose(t, "email-compose", "gemini_flash", "deepseek")
	tests := []struct {
		name, method, path, tok, body string
		status                        int
		code                          string
	}{
		{"not an admin", "GET", "/admin/recommendations", e.user, "", 403, "forbidden"},
		{"not an admin approving", "POST", "/admin/recommendations/" + id + "/approve", e.user, "", 403, "forbidden"},
		{"bad status", "GET", "/admin/recommendations?status=done", e.admin, "", 400, "invalid_field"},
		{"bad limit", "GET", "/admin/recommendations?limit=0", e.admin, "", 400, "invalid_field"},
		{"not a uuid", "POST", "/admin/recommendations/abc/approve", e.admin, "", 400, "invalid_field"},
		{"unknown", "POST", "/admin/recommendations/00000000-0000-4000-8000-000000000000/approve", e.admin, "", 404, "recommendation_not_found"},
		{"unknown field", "POST", "/admin/recommendations/" + id + "/reject", e.admin, `{"reason":"x"}`, 400, "unknown_field"},
		{"reject", "POST", "/admin/recommendations/" + id + "/reject", e.admin, `{"note":"not now"}`, 200, ""},
		{"reject again: the same decision", "POST", "/admin/recommendations/" + id + "/reject", e.admin, "", 200, ""},
		{"approve a rejected one", "POST", "/admin/recommendations/" + id + "/approve", e.admin, "", 409, "recommendation_not_pending"},
	}
	for _, tt := range tests {
		res := apitest.Do(t, tt.method, e.base+tt.path, tt.tok, tt.body)
		if tt.code == "" {
			res.WantStatus(t, tt.status)
			var v view
			res.Decode(t, &v)
			if v.Status != "rejected" {
				t.Errorf("%s: %s", tt.name, res.Body)
			}
			continue
		}
		if b := res.WantErrorBody(t, tt.status); b.Error.Code != tt.code {
			t.Errorf("%s: %s", tt.name, res.Body)
		}
	}
	if p, _ := e.primary(t, "email-compose"); p != "deepseek" {
		t.Errorf("a rejected recommendation changed the route to %s", p)
	}
}
