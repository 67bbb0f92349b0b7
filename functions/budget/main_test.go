package main

// These tests push the sample events in events/budget through the function exactly as the Lambda
// runtime would: the JSON payload goes to lambda.NewHandler(...).Invoke, the handler runs against
// a fresh, migrated and seeded Postgres database, and the returned JSON is read back as an
// API Gateway v2 response.

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/lambdaio"
	"github.com/helixhq/helix/shared/lambdatest"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/auditstore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// fn is the budget function as these tests see it: its sample events and SAM resource, and the
// tokens its configuration trusts when no API Gateway authorizer vouched for the caller.
var fn = lambdatest.Function{
	Events:   "../../events/budget",
	Template: "../../template.yaml",
	Resource: "BudgetFunction",
	Tokens: apitest.Tokens{
		Secret:   "budget-lambda-test-secret-0123456789abcdef",
		Issuer:   "https://auth.example.com/",
		Audience: "helix-api",
	},
}

// The function's routes; every one needs a sample event and a route in template.yaml.
var wantRoutes = []string{
	"DELETE /admin/alerts/{id}",
	"GET /admin/alerts",
	"GET /admin/alerts/events",
	"GET /admin/audit/checkpoints",
	"GET /admin/audit/consistency",
	"GET /admin/audit/entries",
	"GET /admin/audit/entries/{seq}/proof",
	"GET /admin/audit/verify",
	"GET /admin/budgets/{user_id}",
	"GET /admin/spend",
	"GET /admin/spend/summary",
	"GET /ai-router/budget",
	"GET /me/usage",
	"GET /monitoring/operations/realtime",
	"PATCH /admin/alerts/{id}",
	"POST /admin/alerts",
	"POST /admin/alerts/create",
	"PUT /admin/budgets/{user_id}",
}

// newApp builds what httpapp.Boot would, over a fresh database.
func newApp(t *testing.T) *httpapp.App {
	t.Helper()
	return fn.NewApp(t, pg.NewPool(t))
}

func lambdaHandler(base *httpapp.App) lambda.Handler {
	return lambda.NewHandler(lambdaio.HTTPHandler(newHandler(base), base.Log))
}

// TestEventFiles checks the sample events are the v2 events API Gateway sends for this
// function's routes, one per route, and that template.yaml routes the same set here.
func TestEventFiles(t *testing.T) {
	fn.CheckEventFiles(t, wantRoutes)
}

// wantDefaultDay checks a user's untouched day: the default $50 limit and $25 warning, nothing
// spent, and a reset at the next UTC midnight after the reported date.
func wantDefaultDay(t *testing.T, body map[string]any, user string) {
	t.Helper()
	lambdatest.WantFields(t, body, map[string]string{
		"user_id":           user,
		"daily_limit":       "50",
		"current_spend":     "0",
		"reserved":          "0",
		"remaining":         "50",
		"warning_threshold": "25",
		"status":            "ok",
	})
	wantResetAfterDate(t, body)
}

func wantResetAfterDate(t *testing.T, body map[string]any) {
	t.Helper()
	date, err := time.Parse(time.DateOnly, lambdatest.Field(t, body, "date"))
	if err != nil {
		t.Fatalf("date: %v", err)
	}
	if d := time.Since(date); d < 0 || d > 48*time.Hour {
		t.Errorf("date %s is not today (UTC)", date.Format(time.DateOnly))
	}
	resets, err := time.Parse(time.RFC3339, lambdatest.Field(t, body, "resets_at"))
	if err != nil {
		t.Fatalf("resets_at is not RFC 3339: %v", err)
	}
	if want := date.AddDate(0, 0, 1); !resets.Equal(want) {
		t.Errorf("resets_at = %s, want %s", resets, want.Format(time.RFC3339))
	}
}

// TestSampleEvents invokes the function with every sample event, unchanged.
func TestSampleEvents(t *testing.T) {
	checks := map[string]func(t *testing.T, body map[string]any){
		"get-budget.json": func(t *testing.T, body map[string]any) {
			wantDefaultDay(t, body, "test-user")
		},
		"get-admin-budget.json": func(t *testing.T, body map[string]any) {
			wantDefaultDay(t, body, "test-user")
		},
		// The audit events run against a log of 12 entries with a checkpoint at size 10
		// (seedAuditLog), seqs 0 to 11; their queries ask for the entries from the start, seq 3 in the tree of size 10,
		// consistency from 5 to 10.
		"get-admin-audit-entries.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"size": "12", "pending": "0"})
			if n := len(body["entries"].([]any)); n != 12 {
				t.Errorf("%d entries, want 12", n)
			}
		},
		"get-admin-audit-entry-proof.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"seq": "3", "size": "10"})
			if n := len(body["proof"].([]any)); n != 4 { // ceil(log2(10)) hashes for leaf 3 of 10
				t.Errorf("inclusion proof of %d hashes, want 4", n)
			}
		},
		"get-admin-audit-consistency.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"from": "5", "to": "10"})
			if body["from_root"] == body["to_root"] || len(body["proof"].([]any)) == 0 {
				t.Errorf("consistency 5..10: roots %v, %v and proof %v", body["from_root"], body["to_root"], body["proof"])
			}
		},
		"get-admin-audit-verify.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"ok": "true", "size": "12", "checked": "12", "checkpoints": "1"})
		},
		"get-admin-audit-checkpoints.json": func(t *testing.T, body map[string]any) {
			cps := body["checkpoints"].([]any)
			if len(cps) != 1 || fmt.Sprint(cps[0].(map[string]any)["size"]) != "10" {
				t.Errorf("checkpoints %v, want the one at size 10", cps)
			}
		},
		// The monitoring events run against seedOperations: test-user's three calls and
		// other-user's one on 2 March 2026, one more of test-user's on 28 February (outside the
		// events' range), and today's budget days of both.
		"get-monitoring-realtime.json": func(t *testing.T, body map[string]any) {
			data := body["data"].([]any)
			if len(data) != 2 || body["next_after"] == nil {
				t.Fatalf("feed %v: want a full page of 2 and a cursor", body)
			}
			// Newest first: today's two calls.
			lambdatest.WantFields(t, data[0].(map[string]any), map[string]string{
				"operation_id": "chat_message", "user_id": "other-user", "model_used": "gemini_flash", "cost_usd": "0.0005",
				"latency_ms": "100", "success": "true", "fallback_used": "false"})
			lambdatest.WantFields(t, data[1].(map[string]any), map[string]string{"user_id": "test-user", "cost_usd": "0.001"})
		},
		"get-admin-spend.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"group_by": "operation", "from": "2026-03-01T00:00:00Z", "to": "2026-03-03T00:00:00Z"})
			data := body["data"].([]any)
			if len(data) != 2 {
				t.Fatalf("groups %v, want email-compose and calendar-prep", data)
			}
			// The most costly first; the 28 February call and today's stay out of [1 March, 3 March).
			lambdatest.WantFields(t, data[0].(map[string]any), map[string]string{"key": "calendar-prep", "calls": "1", "error_rate": "1", "fallback_rate": "1"})
			lambdatest.WantFields(t, data[1].(map[string]any), map[string]string{
				"key": "email-compose", "calls": "3", "total_cost_usd": "0.0006", "avg_cost_usd": "0.0002",
				"avg_latency_ms": "200", "p95_latency_ms": "300", "max_latency_ms": "300", "error_rate": "0.3333", "fallback_rate": "0"})
		},
		"get-admin-spend-summary.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{
				"calls": "2", "total_spend_usd": "0.0015", "provider_distribution.deepseek": "0.5", "provider_distribution.gemini": "0.5",
				"budget_utilisation.users": "2", "budget_utilisation.spent_usd": "15", "budget_utilisation.limit_usd": "100",
				"budget_utilisation.users_over_warning": "0", "budget_utilisation.users_at_limit": "0",
			})
		},
		"get-me-usage.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"user_id": "test-user", "group_by": "day"})
			data := body["data"].([]any)
			if len(data) != 1 {
				t.Fatalf("days %v, want test-user's 2 March only", data)
			}
			lambdatest.WantFields(t, data[0].(map[string]any), map[string]string{"key": "2026-03-02", "calls": "3", "total_cost_usd": "0.0006"})
		},
		// Alert rules: the sample rules are created active; PATCH changes the standing
		// high_error_rate rule (its fixed id); DELETE removes the operator rule seedAlertRule
		// made, whose fire is listed by the events.
		"post-admin-alerts.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"name": "Daily Cost Alert", "type": "daily_spend", "threshold": "100",
				"status": "active", "severity": "warning", "own_webhook": "false", "standing": "false", "created_by": "admin-user"})
		},
		"post-admin-alerts-create.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"type": "error_rate", "threshold": "0.1", "severity": "critical", "status": "active"})
		},
		"get-admin-alerts.json": func(t *testing.T, body map[string]any) {
			if n := len(body["rules"].([]any)); n != 8 {
				t.Errorf("%d rules, want the 8 standing ones", n)
			}
		},
		"get-admin-alerts-events.json": func(t *testing.T, body map[string]any) {
			evs := body["events"].([]any)
			if len(evs) != 1 || evs[0].(map[string]any)["state"] != "fired" {
				t.Errorf("events %v, want the seeded fire", evs)
			}
		},
		"patch-admin-alert.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"type": "high_error_rate", "threshold": "0.1", "standing": "true"})
		},
		"delete-admin-alert.json": func(t *testing.T, _ map[string]any) {},
		"put-admin-budget.json": func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{
				"user_id":           "test-user",
				"daily_limit":       "100",
				"warning_threshold": "50",
				"current_spend":     "0",
				"remaining":         "100",
				"status":            "ok",
			})
			wantResetAfterDate(t, body)
		},
	}
	for _, name := range fn.EventFiles(t) {
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no check for %s: add one", name)
			}
			raw, _ := fn.Load(t, name)
			pool := pg.NewPool(t)
			if strings.HasPrefix(name, "get-admin-audit-") {
				seedAuditLog(t, pool)
			}
			if slices.Contains([]string{"get-monitoring-realtime.json", "get-admin-spend.json", "get-admin-spend-summary.json", "get-me-usage.json"}, name) {
				seedOperations(t, pool)
			}
			app := fn.NewApp(t, pool)
			if name == "get-monitoring-realtime.json" {
				// The sample caller is a dashboard with the monitoring role, not an admin.
				app = fn.NewAppEnv(t, map[string]string{"HELIX_MONITORING_ROLE": "monitoring"}, pool)
			}
			if name == "delete-admin-alert.json" || name == "get-admin-alerts-events.json" {
				seedAlertRule(t, pool)
			}
			resp := lambdatest.Invoke(t, lambdaHandler(app), raw)
			if resp.Headers["X-Request-Id"] == "" {
				t.Errorf("no X-Request-Id header")
			}
			status := map[string]int{"post-admin-alerts.json": 201, "post-admin-alerts-create.json": 201, "delete-admin-alert.json": 204}[name]
			if status == http.StatusNoContent {
				if resp.StatusCode != status || resp.Body != "" {
					t.Fatalf("status %d, body %q; want 204 and none", resp.StatusCode, resp.Body)
				}
				check(t, nil)
				return
			}
			check(t, lambdatest.JSONBody(t, resp, cmp.Or(status, 200)))
		})
	}
}

// TestModifiedEvents covers what the sample events do not: missing or insufficient
// credentials, bad bodies, encodings and routes.
func TestModifiedEvents(t *testing.T) {
	now := time.Now()
	noRole := func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.RequestContext.Authorizer.JWT.Claims, "role") }
	body := func(s string) func(*events.APIGatewayV2HTTPRequest) {
		return func(ev *events.APIGatewayV2HTTPRequest) { ev.Body = s }
	}
	query := func(q string, admin bool) func(*events.APIGatewayV2HTTPRequest) {
		return func(ev *events.APIGatewayV2HTTPRequest) {
			ev.RawQueryString = q
			if admin {
				ev.RequestContext.Authorizer.JWT.Claims["role"] = "admin"
			}
		}
	}
	const (
		get = "get-budget.json"
		put = "put-admin-budget.json"
	)
	cases := []lambdatest.Case{
		{Name: "admin read without the role", Event: "get-admin-budget.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "admin update without the role", Event: put, Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "another user's budget without the role", Event: get, Edit: query("user_id=someone-else", false), Status: 403, Code: "forbidden"},
		{Name: "another user's budget as admin", Event: get, Edit: query("user_id=someone-else", true), Status: 200,
			Fields: map[string]string{"user_id": "someone-else", "daily_limit": "50"}},
		{Name: "own budget named in the query", Event: get, Edit: query("user_id=test-user", false), Status: 200,
			Fields: map[string]string{"user_id": "test-user"}},
		// Monitoring: these apps have no HELIX_MONITORING_ROLE, so the feed is for admins only.
		{Name: "feed with the monitoring role when none is configured", Event: "get-monitoring-realtime.json", Edit: query("limit=2", false), Status: 403, Code: "forbidden"},
		{Name: "feed as admin", Event: "get-monitoring-realtime.json", Edit: query("limit=5", true), Status: 200},
		{Name: "feed with a forged cursor", Event: "get-monitoring-realtime.json", Edit: query("after=12345", true), Status: 400, Code: "invalid_field"},
		{Name: "spend without the role", Event: "get-admin-spend.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "spend summary without the role", Event: "get-admin-spend-summary.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "spend over more than 366 days", Event: "get-admin-spend.json", Edit: query("from=2025-01-01&to=2026-03-01", true), Status: 400, Code: "invalid_field"},
		{Name: "usage naming another user", Event: "get-me-usage.json", Edit: query("user_id=someone-else", false), Status: 400, Code: "invalid_field"},
		{Name: "usage as admin is still the caller's", Event: "get-me-usage.json", Edit: query("group_by=operation", true), Status: 200,
			Fields: map[string]string{"user_id": "test-user", "group_by": "operation"}},
		{Name: "authorizer claims without sub", Event: get, Status: 401, Code: "unauthorized",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.RequestContext.Authorizer.JWT.Claims, "sub") }},
		{Name: "no authorizer and no token", Event: get, Edit: lambdatest.WithoutAuthorizer(""), Status: 401, Code: "unauthorized"},
		{Name: "no authorizer, valid HS256 token", Event: get, Status: 200,
			Edit:   lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-user", nil, time.Hour, now)),
			Fields: map[string]string{"user_id": "token-user", "daily_limit": "50", "status": "ok"}},
		{Name: "no authorizer, admin HS256 token on an admin update", Event: put, Status: 200,
			Edit:   lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-admin", map[string]any{"role": "admin"}, time.Hour, now)),
			Fields: map[string]string{"user_id": "test-user", "daily_limit": "100"}},
		{Name: "no authorizer, HS256 token without the role on an admin update", Event: put, Status: 403, Code: "forbidden",
			Edit: lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-user", nil, time.Hour, now))},
		{Name: "no authorizer, expired token", Event: get, Status: 401, Code: "unauthorized",
			Edit: lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-user", nil, time.Minute, now.Add(-time.Hour)))},
		{Name: "no authorizer, token signed with another secret", Event: get, Status: 401, Code: "unauthorized",
			Edit: lambdatest.WithoutAuthorizer(fn.Forged(t))},
		{Name: "malformed JSON", Event: put, Edit: body(`{"daily_limit":100,`), Status: 400, Code: "malformed_json"},
		{Name: "empty object", Event: put, Edit: body(`{}`), Status: 400, Code: "missing_field"},
		{Name: "unknown field", Event: put, Edit: body(`{"daily_limit":100,"warning_treshold":50}`), Status: 400, Code: "unknown_field"},
		{Name: "amount as a string", Event: put, Edit: body(`{"daily_limit":"100"}`), Status: 400, Code: "invalid_type"},
		{Name: "warning above the limit", Event: put, Edit: body(`{"daily_limit":10,"warning_threshold":20}`), Status: 400, Code: "invalid_field"},
		{Name: "negative limit", Event: put, Edit: body(`{"daily_limit":-1}`), Status: 400, Code: "invalid_field"},
		{Name: "limit beyond the sanity cap", Event: put, Edit: body(`{"daily_limit":1000000}`), Status: 400, Code: "invalid_field"},
		{Name: "base64-encoded body", Event: put, Status: 200,
			Edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.Body = base64.StdEncoding.EncodeToString([]byte(ev.Body))
				ev.IsBase64Encoded = true
			},
			Fields: map[string]string{"daily_limit": "100", "warning_threshold": "50"}},
		{Name: "isBase64Encoded with a body that is not base64", Event: put, Status: 400, Code: "malformed_event",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) { ev.IsBase64Encoded = true }},
		{Name: "unknown route", Event: get, Status: 404, Code: "not_found",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
				ev.RawPath, ev.RequestContext.HTTP.Path = "/ai-router/budgets", "/ai-router/budgets"
			}},
		{Name: "wrong method", Event: get, Status: 405, Code: "method_not_allowed",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
				ev.RequestContext.HTTP.Method = "POST"
			}},
	}
	fn.RunCases(t, func(t *testing.T) lambda.Handler { return lambdaHandler(newApp(t)) }, cases)
}

// TestLimitUpdateIsWhatTheUserSees runs sample events against one database: after the admin's
// update, the user's own budget and the admin view both show the new limits, and another user
// keeps the defaults.
func TestLimitUpdateIsWhatTheUserSees(t *testing.T) {
	h := lambdaHandler(newApp(t))
	put, _ := fn.Load(t, "put-admin-budget.json")
	lambdatest.JSONBody(t, lambdatest.Invoke(t, h, put), 200)

	want := map[string]string{"user_id": "test-user", "daily_limit": "100", "warning_threshold": "50", "remaining": "100", "status": "ok"}
	own, _ := fn.Load(t, "get-budget.json")
	lambdatest.WantFields(t, lambdatest.JSONBody(t, lambdatest.Invoke(t, h, own), 200), want)
	admin, _ := fn.Load(t, "get-admin-budget.json")
	lambdatest.WantFields(t, lambdatest.JSONBody(t, lambdatest.Invoke(t, h, admin), 200), want)

	other := fn.Modified(t, "get-budget.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RequestContext.Authorizer.JWT.Claims["sub"] = "other-user"
	})
	wantDefaultDay(t, lambdatest.JSONBody(t, lambdatest.Invoke(t, h, other), 200), "other-user")

	// Only the warning changes; the limit set before stays.
	warnOnly := fn.Modified(t, "put-admin-budget.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Body = `{"warning_threshold":80}`
	})
	lambdatest.WantFields(t, lambdatest.JSONBody(t, lambdatest.Invoke(t, h, warnOnly), 200), map[string]string{"daily_limit": "100", "warning_threshold": "80"})
}

// TestMaintenanceMode: with ENABLE_MAINTENANCE_MODE on, from the feature_toggles table (set by
// the route function's toggle endpoint) or from the environment (a deploy-time override), limit
// updates answer 503 maintenance while every read still works.
func TestMaintenanceMode(t *testing.T) {
	for _, source := range []string{"table", "environment"} {
		t.Run(source, func(t *testing.T) {
			var base *httpapp.App
			if source == "table" {
				base = newApp(t)
				if _, err := base.Pool.Exec(t.Context(),
					`UPDATE feature_toggles SET enabled = true WHERE toggle_key = 'ENABLE_MAINTENANCE_MODE'`); err != nil {
					t.Fatal(err)
				}
			} else {
				base = fn.NewAppEnv(t, map[string]string{"ENABLE_MAINTENANCE_MODE": "true"}, pg.NewPool(t))
			}
			h := lambdaHandler(base)
			put, _ := fn.Load(t, "put-admin-budget.json")
			if code := lambdatest.ErrorCode(lambdatest.JSONBody(t, lambdatest.Invoke(t, h, put), 503)); code != "maintenance" {
				t.Errorf("limit update in maintenance: error.code %q, want maintenance", code)
			}
			for _, name := range []string{"get-budget.json", "get-admin-budget.json"} {
				raw, _ := fn.Load(t, name)
				wantDefaultDay(t, lambdatest.JSONBody(t, lambdatest.Invoke(t, h, raw), 200), "test-user")
			}
		})
	}
}

// seedAuditLog writes 12 sequenced entries and a checkpoint signed at size 10, as the audit
// function would have.
func seedAuditLog(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	log := auditstore.New(pool)
	for i := range 12 {
		ev := auditlog.Event{Kind: auditlog.AdminChange, Actor: "admin-user",
			Payload: map[string]any{"what": "budget", "id": fmt.Sprintf("user-%d", i)}}
		if err := log.Record(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			if _, err := log.IntegrateAll(t.Context(), 100); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := log.IntegrateAll(t.Context(), 100); err != nil {
		t.Fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "helix-budget-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auditlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := log.Root(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := auditlog.Checkpoint{Size: 10, Root: root, At: time.Now()}.Sign(signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := log.SaveCheckpoint(t.Context(), 10, root, signed); err != nil {
		t.Fatal(err)
	}
}

// seedOperations logs test-user's three email-compose calls and other-user's failed
// calendar-prep on 2 March 2026, a call of test-user's on 28 February, two calls today (one
// each, deepseek and gemini) and today's budget days ($10 and $5 of the default $50).
func seedOperations(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	rows := []struct {
		op, user, model, provider string
		cost, latency             int64
		ok, fallback              bool
		at                        time.Time
	}{
		{"email-compose", "test-user", "deepseek", "deepseek", 100_000, 100, true, false, day.Add(9 * time.Hour)},
		{"email-compose", "test-user", "deepseek", "deepseek", 200_000, 200, true, false, day.Add(10 * time.Hour)},
		{"email-compose", "test-user", "deepseek", "deepseek", 300_000, 300, false, false, day.Add(11 * time.Hour)},
		{"calendar-prep", "other-user", "gemini_flash", "gemini", 2_000_000, 900, false, true, day.Add(18 * time.Hour)},
		{"email-compose", "test-user", "deepseek", "deepseek", 5_000_000, 100, true, false, day.AddDate(0, 0, -2)},
		{"chat_message", "test-user", "deepseek", "deepseek", 1_000_000, 100, true, false, today.Add(time.Minute)},
		{"chat_message", "other-user", "gemini_flash", "gemini", 500_000, 100, true, false, today.Add(2 * time.Minute)},
	}
	// Logged in time order, as the pipeline would: the feed's newest is the last inserted.
	slices.SortFunc(rows, func(a, b struct {
		op, user, model, provider string
		cost, latency             int64
		ok, fallback              bool
		at                        time.Time
	}) int {
		return a.at.Compare(b.at)
	})
	for i, r := range rows {
		if _, err := pool.Exec(t.Context(), `
			INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, cost_nano, latency_ms, success, fallback_used, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			fmt.Sprintf("seed-%d", i), r.op, r.user, r.model, r.provider, r.cost, r.latency, r.ok, r.fallback, r.at); err != nil {
			t.Fatal(err)
		}
	}
	for user, spent := range map[string]int64{"test-user": 10_000_000_000, "other-user": 5_000_000_000} {
		if _, err := pool.Exec(t.Context(), `INSERT INTO budget_days (user_id, day, limit_nano, spent_nano) VALUES ($1, $2, 50000000000, $3)`,
			user, today, spent); err != nil {
			t.Fatal(err)
		}
	}
}

// seedAlertRule makes the operator rule the sample DELETE names, with one fire recorded.
func seedAlertRule(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `
		WITH r AS (INSERT INTO alert_rules (id, name, type, threshold, severity, created_by)
		           VALUES ('7d1c2e4f-3a5b-4c6d-8e9f-0a1b2c3d4e5f', 'Old rule', 'daily_spend', 50, 'warning', 'ops') RETURNING id)
		INSERT INTO alert_events (rule_id, subject, state, value, detail, delivered_at)
		SELECT id, '', 'fired', 60, 'all users'' spend today is $60 (threshold $50)', now() FROM r`); err != nil {
		t.Fatal(err)
	}
}
