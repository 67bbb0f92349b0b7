package alertapi_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/alerts"
	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/alertapi"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/alertstore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

var tokens = apitest.Tokens{Secret: "alertapi-test-secret-0123456789abcdefgh", Issuer: "https://auth.test/alertapi", Audience: "helix-alertapi"}

type env struct {
	url, admin, alice string
}

func newEnv(t testing.TB, withKey bool) *env {
	t.Helper()
	var sealer *alerts.Sealer
	if withKey {
		sealer, _ = alerts.NewSealer("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	}
	srv := httpapi.NewServer(apitest.Authenticator(t, tokens), apitest.Log(t))
	alertapi.Register(srv, alertstore.New(pg.NewPool(t), sealer), []string{"hooks.example.com"})
	return &env{url: apitest.Serve(t, srv), admin: tokens.Token(t, "ops", map[string]any{"role": "admin"}), alice: tokens.Token(t, "alice", nil)}
}

const hook = "https://discord.com/api/webhooks/1234567890/super-secret-token"

// The seeds' call: a rule with a Discord webhook is created active, and its URL is never
// echoed back, in the answer or the list.
func TestCreateListPatchDelete(t *testing.T) {
	e := newEnv(t, true)
	for _, path := range []string{"/admin/alerts", "/admin/alerts/create"} {
		r := apitest.Do(t, http.MethodPost, e.url+path, e.admin,
			`{"name":"Daily Cost Alert","type":"daily_spend","threshold_usd":100,"channel":"discord","webhook_url":"`+hook+`"}`)
		r.WantStatus(t, http.StatusCreated)
		var v alertapi.RuleView
		r.Decode(t, &v)
		if v.ID == "" || v.Status != "active" || !v.OwnWebhook || v.Threshold != 100 || v.Severity != "warning" {
			t.Errorf("POST %s: %+v", path, v)
		}
		if strings.Contains(string(r.Body), "super-secret") {
			t.Errorf("POST %s echoed the webhook: %s", path, r.Body)
		}
	}
	list := apitest.Do(t, http.MethodGet, e.url+"/admin/alerts", e.admin, "")
	list.WantStatus(t, http.StatusOK)
	var got struct{ Rules []alertapi.RuleView }
	list.Decode(t, &got)
	if len(got.Rules) != 10 || strings.Contains(string(list.Body), "super-secret") {
		t.Fatalf("list: %d rules (want 8 standing + 2), webhook echoed: %v", len(got.Rules), strings.Contains(string(list.Body), "super-secret"))
	}
	var standing, mine alertapi.RuleView
	for _, r := range got.Rules {
		if r.Standing && r.Type == alerts.HighErrorRate {
			standing = r
		}
		if !r.Standing {
			mine = r
		}
	}
	p := apitest.Do(t, http.MethodPatch, e.url+"/admin/alerts/"+standing.ID, e.admin, `{"threshold":0.1,"status":"disabled"}`)
	p.WantStatus(t, http.StatusOK)
	var pv alertapi.RuleView
	p.Decode(t, &pv)
	if pv.Threshold != 0.1 || pv.Status != "disabled" {
		t.Errorf("patched standing rule: %+v", pv)
	}
	if b := apitest.Do(t, http.MethodDelete, e.url+"/admin/alerts/"+standing.ID, e.admin, "").WantErrorBody(t, http.StatusConflict); b.Error.Code != "alert_rule_standing" {
		t.Errorf("delete standing: %s", b.Error.Code)
	}
	apitest.Do(t, http.MethodDelete, e.url+"/admin/alerts/"+mine.ID, e.admin, "").WantStatus(t, http.StatusNoContent)
	if b := apitest.Do(t, http.MethodDelete, e.url+"/admin/alerts/"+mine.ID, e.admin, "").WantErrorBody(t, http.StatusNotFound); b.Error.Code != "alert_rule_not_found" {
		t.Errorf("delete twice: %s", b.Error.Code)
	}
	apitest.Do(t, http.MethodGet, e.url+"/admin/alerts/events", e.admin, "").WantStatus(t, http.StatusOK)
}

// Webhooks the server would call must be Discord's (or allow-listed) and public: loopback,
// the metadata address, private ranges, plain http, other ports are refused; so are bad rules
// and callers who are not admins.
func TestRefusals(t *testing.T) {
	e := newEnv(t, true)
	rule := func(hook string) string {
		return `{"name":"x","type":"daily_spend","threshold_usd":10,"webhook_url":"` + hook + `"}`
	}
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"loopback", "POST", "/admin/alerts", "ops", rule("https://127.0.0.1/api/webhooks/1/a"), 400, "invalid_field"},
		{"metadata address", "POST", "/admin/alerts", "ops", rule("https://169.254.169.254/latest/meta-data/"), 400, "invalid_field"},
		{"private address", "POST", "/admin/alerts", "ops", rule("https://10.0.0.1/api/webhooks/1/a"), 400, "invalid_field"},
		{"localhost", "POST", "/admin/alerts", "ops", rule("https://localhost/api/webhooks/1/a"), 400, "invalid_field"},
		{"plain http", "POST", "/admin/alerts", "ops", rule("http://discord.com/api/webhooks/1/a"), 400, "invalid_field"},
		{"another host", "POST", "/admin/alerts", "ops", rule("https://example.org/api/webhooks/1/a"), 400, "invalid_field"},
		{"unknown type", "POST", "/admin/alerts", "ops", `{"name":"x","type":"nope","threshold":1}`, 400, "invalid_field"},
		{"no threshold", "POST", "/admin/alerts", "ops", `{"name":"x","type":"latency"}`, 400, "missing_field"},
		{"threshold_usd on a rate", "POST", "/admin/alerts", "ops", `{"name":"x","type":"error_rate","threshold_usd":1}`, 400, "invalid_field"},
		{"rate above 1", "POST", "/admin/alerts", "ops", `{"name":"x","type":"error_rate","threshold":5}`, 400, "invalid_field"},
		{"empty name", "POST", "/admin/alerts", "ops", `{"name":" ","type":"latency","threshold":900}`, 400, "invalid_field"},
		{"name with NUL", "POST", "/admin/alerts", "ops", `{"name":"a\u0000b","type":"latency","threshold":900}`, 400, "invalid_field"},
		{"unknown field", "POST", "/admin/alerts", "ops", `{"name":"x","type":"latency","threshold":900,"webhook":"x"}`, 400, "unknown_field"},
		{"not an admin", "POST", "/admin/alerts", "alice", rule(hook), 403, "forbidden"},
		{"list, not an admin", "GET", "/admin/alerts", "alice", "", 403, "forbidden"},
		{"events, not an admin", "GET", "/admin/alerts/events", "alice", "", 403, "forbidden"},
		{"events limit", "GET", "/admin/alerts/events?limit=0", "ops", "", 400, "invalid_field"},
		{"patch a bad id", "PATCH", "/admin/alerts/not-a-uuid", "ops", `{"status":"disabled"}`, 400, "invalid_field"},
		{"patch nothing", "PATCH", "/admin/alerts/00000000-0000-4000-8000-000000000000", "ops", `{}`, 404, "alert_rule_not_found"},
	}
	for _, c := range cases {
		tok := map[string]string{"ops": e.admin, "alice": e.alice}[c.token]
		r := apitest.Do(t, c.method, e.url+c.path, tok, c.body)
		if b := r.WantErrorBody(t, c.status); b.Error.Code != c.code {
			t.Errorf("%s: code %s, want %s (%s)", c.name, b.Error.Code, c.code, b.Error.Message)
		}
	}
	// Without a key to seal them, webhooks are refused with a reason; rules without one work.
	nokey := newEnv(t, false)
	if b := apitest.Do(t, "POST", nokey.url+"/admin/alerts", nokey.admin, rule(hook)).WantErrorBody(t, 400); !strings.Contains(b.Error.Message, "HELIX_ALERT_WEBHOOK_KEY") {
		t.Errorf("no key: %s", b.Error.Message)
	}
	apitest.Do(t, "POST", nokey.url+"/admin/alerts", nokey.admin, `{"name":"x","type":"latency","threshold":900}`).WantStatus(t, 201)
}

// FuzzCreate: whatever the body, creating a rule answers 201 or a 4xx with a code.
func FuzzCreate(f *testing.F) {
	for _, s := range []string{`{"name":"a","type":"daily_spend","threshold_usd":1}`, `{"name":"a","type":"latency","threshold":1e308}`,
		`{"name":"a","type":"error_rate","threshold":-0}`, `{"type":"user_spend","threshold_usd":"1"}`, `[]`, `{"name":"` + strings.Repeat("x", 200) + `"}`} {
		f.Add(s)
	}
	e := newEnv(f, true)
	f.Fuzz(func(t *testing.T, body string) {
		r := apitest.Do(t, http.MethodPost, e.url+"/admin/alerts", e.admin, body)
		if r.Status >= 500 {
			t.Fatalf("%s -> %d %s", body, r.Status, r.Body)
		}
	})
}
