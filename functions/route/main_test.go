package main

// These tests push the sample events in events/route through the function exactly as the Lambda
// runtime would: the JSON payload goes to lambda.NewHandler(...).Invoke, the handler runs against
// a fresh, migrated and seeded Postgres database, and the returned JSON is read back as an
// API Gateway v2 response.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/lambdaio"
	"github.com/helixhq/helix/shared/lambdatest"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/offline"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// fn is the route function as these tests see it: its sample events and SAM resource, and the
// tokens its configuration trusts when no API Gateway authorizer vouched for the caller.
var fn = lambdatest.Function{
	Events:   "../../events/route",
	Template: "../../template.yaml",
	Resource: "RouteFunction",
	Tokens: apitest.Tokens{
		Secret:   "route-lambda-test-secret-0123456789abcdef",
		Issuer:   "https://auth.example.com/",
		Audience: "helix-api",
	},
}

// The function's routes; every one needs a sample event and a route in template.yaml.
var wantRoutes = []string{
	"GET /admin/approvals",
	"GET /admin/models",
	"GET /admin/models/{key}",
	"GET /admin/recommendations",
	"GET /admin/routes",
	"GET /admin/toggles",
	"GET /v1/models",
	"GET /v1/models/{id+}",
	"POST /admin/approvals/{id}/approve",
	"POST /admin/approvals/{id}/reject",
	"POST /admin/recommendations/{id}/approve",
	"POST /admin/recommendations/{id}/reject",
	"POST /ai-router/route",
	"POST /intelligence/analytics/anomaly",
	"POST /intelligence/analytics/summary",
	"POST /intelligence/calendar/prep",
	"POST /intelligence/calendar/time",
	"POST /intelligence/email/classify",
	"POST /intelligence/email/compose",
	"POST /intelligence/email/respond",
	"POST /intelligence/task/breakdown",
	"POST /intelligence/task/prioritize",
	"POST /v1/chat/completions",
	"PUT /admin/models/{key}",
	"PUT /admin/routes/{operation_id}",
	"PUT /admin/toggles/{key}",
}

// newApp builds what httpapp.Boot would, over a fresh database.
func newApp(t *testing.T) *httpapp.App {
	t.Helper()
	return fn.NewApp(t, pg.NewPool(t))
}

func lambdaHandler(base *httpapp.App) lambda.Handler {
	// Every provider answers from the offline model: these tests exercise the Lambda adapter and
	// the routes, not the providers (the pipeline's own tests cover those).
	providers := llm.NewRegistry().WithOfflineFallback(offline.New(), true)
	return lambda.NewHandler(lambdaio.HTTPHandler(newHandler(base, providers), base.Log))
}

// TestEventFiles checks the sample events are the v2 events API Gateway sends for this
// function's routes, one per route, and that template.yaml routes the same set here.
func TestEventFiles(t *testing.T) {
	fn.CheckEventFiles(t, wantRoutes)
}

// env is one handler over one fresh database, for tests that send several events in a row.
type env struct {
	base *httpapp.App
	h    lambda.Handler
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := newApp(t)
	return &env{base: base, h: lambdaHandler(base)}
}

// send invokes the handler with a sample event, changed by edit when edit is not nil.
func (e *env) send(t *testing.T, name string, edit func(*events.APIGatewayV2HTTPRequest)) events.APIGatewayV2HTTPResponse {
	t.Helper()
	var payload []byte
	if edit == nil {
		payload, _ = fn.Load(t, name)
	} else {
		payload = fn.Modified(t, name, edit)
	}
	return lambdatest.Invoke(t, e.h, payload)
}

// holdCompose makes email-compose require approval (through the admin API, as an operator
// would) and sends the compose sample event, which is then held: it returns the approval id.
func (e *env) holdCompose(t *testing.T) string {
	t.Helper()
	update := e.send(t, "put-admin-route.json", body(`{"requires_approval":true}`))
	lambdatest.WantFields(t, lambdatest.JSONBody(t, update, 200), map[string]string{"operation_id": "email-compose", "requires_approval": "true"})
	held := lambdatest.JSONBody(t, e.send(t, composeEvent, nil), 202)
	lambdatest.WantFields(t, held, map[string]string{"status": "pending_approval", "operation_id": "email-compose"})
	id := lambdatest.Field(t, held, "approval_id")
	if id == "" {
		t.Fatalf("a held operation without approval_id: %v", held)
	}
	return id
}

const composeEvent = "post-intelligence-email-compose.json"

func body(s string) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) { ev.Body = s }
}

// withBodyField sets one top-level field of the event's JSON body.
func withBodyField(t *testing.T, key string, value any) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		var m map[string]any
		if err := json.Unmarshal([]byte(ev.Body), &m); err != nil {
			t.Fatalf("event body: %v", err)
		}
		m[key] = value
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		ev.Body = string(b)
	}
}

// withPathParam puts value in the event's path parameter name, and in its paths.
func withPathParam(name, value string) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		old := ev.PathParameters[name]
		ev.PathParameters = map[string]string{name: value}
		ev.RawPath = strings.Replace(ev.RawPath, "/"+old, "/"+value, 1)
		ev.RequestContext.HTTP.Path = ev.RawPath
	}
}

// query sets the event's query string to one parameter.
func query(key, value string) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RawQueryString = key + "=" + value
		ev.QueryStringParameters = map[string]string{key: value}
	}
}

func asUser(sub string) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.Authorizer.JWT.Claims["sub"] = sub }
}

func edits(fs ...func(*events.APIGatewayV2HTTPRequest)) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		for _, f := range fs {
			f(ev)
		}
	}
}

// list returns body[key], which must be a JSON array.
func list(t *testing.T, body map[string]any, key string) []any {
	t.Helper()
	v, ok := body[key].([]any)
	if !ok {
		t.Fatalf("%s is not an array: %v", key, body)
	}
	return v
}

// objects returns body[key] as an array of objects.
func objects(t *testing.T, body map[string]any, key string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, v := range list(t, body, key) {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s holds %v, not an object", key, v)
		}
		out = append(out, m)
	}
	return out
}

// text returns m[key], which must be a non-empty string.
func text(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok || s == "" {
		t.Errorf("%s is not a non-empty string: %v", key, m)
	}
	return s
}

// strs returns m[key] as an array of strings.
func strs(t *testing.T, m map[string]any, key string) []string {
	t.Helper()
	var out []string
	for _, v := range list(t, m, key) {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s holds %v, not a string", key, v)
		}
		out = append(out, s)
	}
	return out
}

func number(t *testing.T, m map[string]any, key string) float64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("%s is not a number: %v", key, m)
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func oneOf(t *testing.T, what, got string, allowed ...string) {
	t.Helper()
	if !slices.Contains(allowed, got) {
		t.Errorf("%s = %q, want one of %v", what, got, allowed)
	}
}

// wantIntelMeta checks what every intelligence response carries besides its result, for an
// answer from the offline model (which costs nothing), and that the call was logged and its
// budget hold settled.
func wantIntelMeta(t *testing.T, e *env, resp events.APIGatewayV2HTTPResponse, body map[string]any, operation, model string) {
	t.Helper()
	lambdatest.WantFields(t, body, map[string]string{"operation_id": operation, "model": model, "cost_usd": "0", "offline": "true"})
	id := lambdatest.Field(t, body, "request_id")
	if id == "" || id != resp.Headers["X-Request-Id"] {
		t.Errorf("request_id %q, X-Request-Id header %q: want the same non-empty id", id, resp.Headers["X-Request-Id"])
	}
	if got := resp.Headers["X-Helix-Cost-Usd"]; got != "0" {
		t.Errorf("X-Helix-Cost-Usd = %q, want 0", got)
	}
	wantLogged(t, e, id, operation, model)
}

// wantLogged checks the call's ai_operation_log row and that its budget hold was settled.
func wantLogged(t *testing.T, e *env, requestID, operation, model string) {
	t.Helper()
	var op, used, status string
	var cost int64
	var ok bool
	err := e.base.Pool.QueryRow(t.Context(), `
		SELECT l.operation_id, l.model_used, l.cost_nano, l.success, r.status
		  FROM ai_operation_log l JOIN budget_reservations r USING (request_id)
		 WHERE l.request_id = $1`, requestID).Scan(&op, &used, &cost, &ok, &status)
	if err != nil {
		t.Fatalf("operation log and reservation of %s: %v", requestID, err)
	}
	if op != operation || used != model || cost != 0 || !ok || status != "settled" {
		t.Errorf("logged %s on %s costing %d nano, success %v, reservation %s; want %s on %s, 0, true, settled",
			op, used, cost, ok, status, operation, model)
	}
}

// sample is what one sample event must do.
type sample struct {
	status int // 0: 200
	// setup prepares the database and returns an edit for the event (nil: sent unchanged).
	setup func(t *testing.T, e *env) func(*events.APIGatewayV2HTTPRequest)
	check func(t *testing.T, e *env, resp events.APIGatewayV2HTTPResponse, body map[string]any)
}

// bodyCheck is a sample that only checks the response body.
func bodyCheck(f func(t *testing.T, body map[string]any)) sample {
	return sample{check: func(t *testing.T, _ *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) { f(t, body) }}
}

// intel is the sample of an intelligence operation answered by the offline model.
func intel(operation, model string, result func(t *testing.T, body map[string]any)) sample {
	return sample{check: func(t *testing.T, e *env, resp events.APIGatewayV2HTTPResponse, body map[string]any) {
		wantIntelMeta(t, e, resp, body, operation, model)
		result(t, body)
	}}
}

// approvalDecision is the sample of approving or rejecting a held compose request.
func approvalDecision(status string, then func(t *testing.T, e *env, id string)) sample {
	var id string
	return sample{
		setup: func(t *testing.T, e *env) func(*events.APIGatewayV2HTTPRequest) {
			id = e.holdCompose(t)
			return withPathParam("id", id)
		},
		check: func(t *testing.T, e *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{
				"approval_id": id, "status": status, "operation_id": "email-compose",
				"user_id": "test-user", "decided_by": "admin-user", "reason": "operation_requires_approval",
			})
			then(t, e, id)
		},
	}
}

// sampleChecks returns what each sample event must do (built per test run: some samples keep
// the approval id between setup and check).
func sampleChecks() map[string]sample {
	return map[string]sample{
		"post-ai-router-route.json": bodyCheck(func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{
				"operation_id":   "email-compose",
				"model":          "deepseek",
				"provider":       "deepseek",
				"fallback_model": "gemini_flash",
				// 100 input tokens × $0.28/M + 350 expected output tokens × $0.42/M
				"estimated_cost_usd":      "0.000175",
				"estimated_input_tokens":  "100",
				"estimated_output_tokens": "350",
				"requires_approval":       "false",
				"within_budget":           "true",
				"budget.user_id":          "test-user",
				"budget.daily_limit":      "50",
				"budget.current_spend":    "0",
				"budget.reserved":         "0",
				"budget.remaining":        "50",
			})
			if got := lambdatest.Field(t, body, "failover_chain"); !strings.HasPrefix(got, `["deepseek","gemini_flash"`) {
				t.Errorf("failover_chain = %s, want deepseek then gemini_flash first", got)
			}
		}),
		"get-admin-routes.json": bodyCheck(func(t *testing.T, body map[string]any) {
			routes := objects(t, body, "routes")
			if len(routes) != 17 {
				t.Fatalf("%d routes, want the 17 seeded operations", len(routes))
			}
			for _, r := range routes {
				if r["operation_id"] == "email-compose" {
					lambdatest.WantFields(t, r, map[string]string{"primary_model": "deepseek", "fallback_model": "gemini_flash", "enabled": "true"})
					return
				}
			}
			t.Errorf("email-compose is not among the routes")
		}),
		"put-admin-route.json": bodyCheck(func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{
				"operation_id":      "email-compose",
				"enabled":           "true",
				"max_output_tokens": "2048",
				"primary_model":     "deepseek",
				"updated_by":        "admin-user",
			})
		}),
		"get-admin-models.json": bodyCheck(func(t *testing.T, body map[string]any) {
			prices := map[string]string{}
			for _, m := range objects(t, body, "models") {
				prices[lambdatest.Field(t, m, "model")] = lambdatest.Field(t, m, "input_usd_per_mtok") + "/" + lambdatest.Field(t, m, "output_usd_per_mtok")
			}
			for model, want := range map[string]string{"deepseek": "0.28/0.42", "gemini_flash": "0.1/0.4", "claude": "1/5"} {
				if prices[model] != want {
					t.Errorf("%s prices (in/out per 1M) = %q, want %q", model, prices[model], want)
				}
			}
		}),
		"get-admin-model.json": bodyCheck(func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{
				"model": "deepseek", "input_usd_per_mtok": "0.28", "price_version": "deepseek-v3.2@2026-11", "direct_access": "true",
			})
			if prices := objects(t, body, "prices"); len(prices) != 1 {
				t.Errorf("price history %v, want the seeded version alone", prices)
			}
		}),
		"put-admin-model.json": {check: func(t *testing.T, e *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{
				"model": "deepseek", "input_usd_per_mtok": "0.3", "output_usd_per_mtok": "0.45",
				"price_version": "deepseek-v3.2@2026-12", "updated_by": "admin-user",
			})
			var versions int
			if err := e.base.Pool.QueryRow(t.Context(), `SELECT count(*) FROM ai_model_prices WHERE model_key = 'deepseek'`).Scan(&versions); err != nil || versions != 2 {
				t.Errorf("%d price versions (%v), want the seeded one and the new one", versions, err)
			}
		}},

		// Approvals and kill switches.
		"get-admin-approvals.json": {
			// The event lists pending approvals: hold one first.
			setup: func(t *testing.T, e *env) func(*events.APIGatewayV2HTTPRequest) {
				e.holdCompose(t)
				return nil
			},
			check: func(t *testing.T, _ *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
				approvals := objects(t, body, "approvals")
				if len(approvals) != 1 {
					t.Fatalf("%d pending approvals, want the one held: %v", len(approvals), body)
				}
				lambdatest.WantFields(t, approvals[0], map[string]string{
					"status": "pending", "operation_id": "email-compose", "user_id": "test-user",
					"reason": "operation_requires_approval",
				})
				text(t, approvals[0], "approval_id")
				if number(t, approvals[0], "estimated_cost_usd") <= 0 {
					t.Errorf("estimated_cost_usd = %v, want the worst case of the held call", approvals[0]["estimated_cost_usd"])
				}
			},
		},
		"post-admin-approval-approve.json": approvalDecision("approved", func(t *testing.T, e *env, id string) {
			resend := withBodyField(t, "approval_id", id)
			// Another user cannot use it, nor can a different request.
			other := e.send(t, composeEvent, edits(resend, asUser("someone-else")))
			if code := lambdatest.ErrorCode(lambdatest.JSONBody(t, other, 404)); code != "approval_not_found" {
				t.Errorf("another user's re-send: error.code %q, want approval_not_found", code)
			}
			changed := e.send(t, composeEvent, edits(resend, withBodyField(t, "subject", "Something else")))
			if code := lambdatest.ErrorCode(lambdatest.JSONBody(t, changed, 409)); code != "approval_mismatch" {
				t.Errorf("re-send of a different request: error.code %q, want approval_mismatch", code)
			}
			// The held request, re-sent with the approval, runs once.
			resp := e.send(t, composeEvent, resend)
			ran := lambdatest.JSONBody(t, resp, 200)
			wantIntelMeta(t, e, resp, ran, "email-compose", "deepseek")
			if len(list(t, ran, "suggestions")) == 0 {
				t.Errorf("no suggestions: %v", ran)
			}
			again := e.send(t, composeEvent, resend)
			if code := lambdatest.ErrorCode(lambdatest.JSONBody(t, again, 409)); code != "approval_not_usable" {
				t.Errorf("second use of the approval: error.code %q, want approval_not_usable", code)
			}
			used := lambdatest.JSONBody(t, e.send(t, "get-admin-approvals.json", query("status", "used")), 200)
			if l := objects(t, used, "approvals"); len(l) != 1 || l[0]["approval_id"] != id || l[0]["used_request_id"] != ran["request_id"] {
				t.Errorf("used approvals %v, want %s used by request %v", l, id, ran["request_id"])
			}
		}),
		"post-admin-approval-reject.json": approvalDecision("rejected", func(t *testing.T, e *env, id string) {
			resent := e.send(t, composeEvent, withBodyField(t, "approval_id", id))
			if code := lambdatest.ErrorCode(lambdatest.JSONBody(t, resent, 409)); code != "approval_not_usable" {
				t.Errorf("re-send with a rejected approval: error.code %q, want approval_not_usable", code)
			}
			// A decided approval cannot be decided again.
			twice := e.send(t, "post-admin-approval-approve.json", withPathParam("id", id))
			if code := lambdatest.ErrorCode(lambdatest.JSONBody(t, twice, 409)); code != "approval_not_pending" {
				t.Errorf("approving a rejected approval: error.code %q, want approval_not_pending", code)
			}
		}),
		// The optimizer's recommendation (seedRecommendation): listed while pending; approving it
		// switches email-compose to Gemini Flash with DeepSeek as fallback; rejecting leaves the
		// route alone.
		"get-admin-recommendations.json": {setup: seedRecommendation, check: func(t *testing.T, _ *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			recs := objects(t, body, "recommendations")
			if len(recs) != 1 || lambdatest.Field(t, recs[0], "target") != "email-compose" || lambdatest.Field(t, recs[0], "status") != "pending" {
				t.Errorf("recommendations %v, want the pending email-compose switch", recs)
			}
		}},
		"post-admin-recommendation-approve.json": {setup: seedRecommendation, check: func(t *testing.T, e *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"status": "applied", "decided_by": "admin-user", "target": "email-compose"})
			var primary, fallback string
			if err := e.base.Pool.QueryRow(t.Context(), `SELECT primary_model, fallback_model FROM ai_model_routes WHERE operation_id = 'email-compose'`).Scan(&primary, &fallback); err != nil {
				t.Fatal(err)
			}
			if primary != "gemini_flash" || fallback != "deepseek" {
				t.Errorf("route after approval %s / %s, want gemini_flash / deepseek", primary, fallback)
			}
		}},
		"post-admin-recommendation-reject.json": {setup: seedRecommendation, check: func(t *testing.T, e *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"status": "rejected", "decided_by": "admin-user"})
			var primary string
			if err := e.base.Pool.QueryRow(t.Context(), `SELECT primary_model FROM ai_model_routes WHERE operation_id = 'email-compose'`).Scan(&primary); err != nil {
				t.Fatal(err)
			}
			if primary != "deepseek" {
				t.Errorf("route after rejection: primary %s, want deepseek unchanged", primary)
			}
		}},
		"get-admin-toggles.json": bodyCheck(func(t *testing.T, body map[string]any) {
			got := map[string]string{}
			for _, tg := range objects(t, body, "toggles") {
				got[lambdatest.Field(t, tg, "key")] = lambdatest.Field(t, tg, "enabled") + "/" + lambdatest.Field(t, tg, "source")
			}
			for _, k := range []string{"DISABLE_DEEPSEEK", "DISABLE_GEMINI", "DISABLE_ANTHROPIC", "DISABLE_SYNTHESIS", "ENABLE_MAINTENANCE_MODE"} {
				if got[k] != "false/database" {
					t.Errorf("toggle %s = %q, want false/database (enabled/source)", k, got[k])
				}
			}
		}),
		"put-admin-toggle.json": {check: func(t *testing.T, e *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{
				"key": "DISABLE_GEMINI", "enabled": "true", "stored_value": "true", "source": "database", "updated_by": "admin-user",
			})
			// calendar-time runs on gemini_flash first; with Gemini switched off it goes to deepseek.
			resp := e.send(t, "post-intelligence-calendar-time.json", nil)
			wantIntelMeta(t, e, resp, lambdatest.JSONBody(t, resp, 200), "calendar-time", "deepseek")
		}},

		// The intelligence operations, answered by the offline model.
		"post-intelligence-email-compose.json": intel("email-compose", "deepseek", func(t *testing.T, body map[string]any) {
			drafts := objects(t, body, "suggestions")
			if len(drafts) < 1 || len(drafts) > 2 { // 2 suggestions by default
				t.Errorf("%d suggestions, want 1 or 2", len(drafts))
			}
			for _, d := range drafts {
				text(t, d, "subject")
				text(t, d, "body")
				text(t, d, "tone")
			}
		}),
		"post-intelligence-email-classify.json": intel("email-classify", "deepseek", func(t *testing.T, body map[string]any) {
			oneOf(t, "category", text(t, body, "category"), "billing", "sales", "support", "personal", "newsletter")
			oneOf(t, "priority", text(t, body, "priority"), "low", "normal", "high", "urgent")
			if _, ok := body["needs_reply"].(bool); !ok {
				t.Errorf("needs_reply is not a boolean: %v", body)
			}
			if c := number(t, body, "confidence"); c < 0 || c > 1 {
				t.Errorf("confidence = %v, want 0..1", c)
			}
			if r := strs(t, body, "reasons"); len(r) > 5 {
				t.Errorf("%d reasons, want at most 5", len(r))
			}
		}),
		"post-intelligence-email-respond.json": intel("email-respond", "deepseek", func(t *testing.T, body map[string]any) {
			replies := objects(t, body, "suggestions")
			if len(replies) < 1 || len(replies) > 2 {
				t.Errorf("%d suggestions, want 1 or 2", len(replies))
			}
			for _, r := range replies {
				text(t, r, "body")
			}
		}),
		"post-intelligence-calendar-prep.json": intel("calendar-prep", "deepseek", func(t *testing.T, body map[string]any) {
			text(t, body, "summary")
			for _, k := range []string{"talking_points", "questions", "preparation_tasks"} {
				strs(t, body, k)
			}
		}),
		"post-intelligence-calendar-time.json": intel("calendar-time", "gemini_flash", func(t *testing.T, body map[string]any) {
			// Whatever the model proposes, only 30-minute slots inside the window and outside the
			// busy intervals reach the client.
			window := [2]string{"2026-03-05T09:00:00Z", "2026-03-05T17:00:00Z"}
			busy := [][2]string{{"2026-03-05T09:00:00Z", "2026-03-05T10:30:00Z"}, {"2026-03-05T12:00:00Z", "2026-03-05T13:00:00Z"}}
			parse := func(s string) time.Time {
				v, err := time.Parse(time.RFC3339, s)
				if err != nil {
					t.Fatalf("slot time %q: %v", s, err)
				}
				return v
			}
			slots := objects(t, body, "slots")
			if d := number(t, body, "discarded_slots"); d < 0 || len(slots)+int(d) == 0 {
				t.Errorf("%d slots kept and %v discarded: want the model's proposals accounted for", len(slots), d)
			}
			for _, s := range slots {
				start, end := parse(text(t, s, "start")), parse(text(t, s, "end"))
				if end.Sub(start) != 30*time.Minute || start.Before(parse(window[0])) || end.After(parse(window[1])) {
					t.Errorf("slot %v is not 30 minutes inside the window", s)
				}
				for _, b := range busy {
					if start.Before(parse(b[1])) && parse(b[0]).Before(end) {
						t.Errorf("slot %v overlaps busy %v", s, b)
					}
				}
			}
		}),
		"post-intelligence-task-prioritize.json": intel("task-prioritize", "deepseek", func(t *testing.T, body map[string]any) {
			ordered := objects(t, body, "ordered")
			if len(ordered) < 1 || len(ordered) > 3 {
				t.Errorf("%d ordered tasks, want 1 to 3", len(ordered))
			}
			for _, o := range ordered {
				oneOf(t, "ordered.id", text(t, o, "id"), "t1", "t2", "t3")
				oneOf(t, "ordered.priority", text(t, o, "priority"), "high", "medium", "low")
			}
		}),
		"post-intelligence-task-breakdown.json": intel("task-breakdown", "deepseek", func(t *testing.T, body map[string]any) {
			steps := objects(t, body, "steps")
			if len(steps) < 1 || len(steps) > 6 { // max_steps 6
				t.Errorf("%d steps, want 1 to 6", len(steps))
			}
			for _, s := range steps {
				text(t, s, "title")
				if m := number(t, s, "estimate_minutes"); m < 0 || m != float64(int64(m)) {
					t.Errorf("estimate_minutes = %v, want a whole number >= 0", m)
				}
			}
		}),
		"post-intelligence-analytics-summary.json": intel("analytics-summary", "gemini_flash", func(t *testing.T, body map[string]any) {
			text(t, body, "summary")
			strs(t, body, "highlights")
			strs(t, body, "concerns")
		}),
		"post-intelligence-analytics-anomaly.json": intel("analytics-anomaly", "deepseek", func(t *testing.T, body map[string]any) {
			if _, ok := body["summary"].(string); !ok {
				t.Errorf("summary is not a string: %v", body)
			}
			for _, a := range objects(t, body, "anomalies") {
				oneOf(t, "anomalies.timestamp", text(t, a, "timestamp"), "2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z",
					"2026-03-01T02:00:00Z", "2026-03-01T03:00:00Z", "2026-03-01T04:00:00Z", "2026-03-01T05:00:00Z")
				oneOf(t, "anomalies.severity", text(t, a, "severity"), "low", "medium", "high")
			}
		}),

		// The OpenAI-compatible API.
		"post-v1-chat-completions.json": {check: func(t *testing.T, e *env, resp events.APIGatewayV2HTTPResponse, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"object": "chat.completion", "model": "deepseek"})
			if id := lambdatest.Field(t, body, "id"); id != "chatcmpl-"+resp.Headers["X-Request-Id"] {
				t.Errorf("id = %q, want chatcmpl-<request id %s>", id, resp.Headers["X-Request-Id"])
			}
			choices := objects(t, body, "choices")
			if len(choices) != 1 {
				t.Fatalf("%d choices, want 1", len(choices))
			}
			lambdatest.WantFields(t, choices[0], map[string]string{"index": "0", "finish_reason": "stop", "message.role": "assistant"})
			if c := lambdatest.Field(t, choices[0], "message.content"); !strings.HasPrefix(c, "[offline model]") {
				t.Errorf("content %q does not say it comes from the offline model", c)
			}
			usage, _ := body["usage"].(map[string]any)
			if p, c, tot := number(t, usage, "prompt_tokens"), number(t, usage, "completion_tokens"), number(t, usage, "total_tokens"); p <= 0 || tot != p+c {
				t.Errorf("usage %v: want prompt_tokens > 0 and total = prompt + completion", usage)
			}
			for h, want := range map[string]string{"X-Helix-Cost-Usd": "0", "X-Helix-Model": "deepseek", "X-Helix-Operation-Id": "chat_message"} {
				if got := resp.Headers[h]; got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			wantLogged(t, e, resp.Headers["X-Request-Id"], "chat_message", "deepseek")
		}},
		"get-v1-model.json": bodyCheck(func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"id": "helix/email-compose", "object": "model", "owned_by": "helix"})
		}),
		"get-v1-models.json": bodyCheck(func(t *testing.T, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"object": "list"})
			ids := map[string]bool{}
			for _, m := range objects(t, body, "data") {
				lambdatest.WantFields(t, m, map[string]string{"object": "model"})
				ids[lambdatest.Field(t, m, "id")] = true
			}
			for _, id := range []string{"auto", "helix/chat_message", "helix/email-compose", "deepseek", "gemini_flash"} {
				if !ids[id] {
					t.Errorf("model %s missing from %v", id, ids)
				}
			}
			if ids["helix/email_analysis"] {
				t.Errorf("the disabled operation email_analysis is listed")
			}
		}),
	}
}

// TestSampleEvents invokes the function with every sample event, each on a fresh database;
// events that act on an approval get a real one first.
func TestSampleEvents(t *testing.T) {
	samples := sampleChecks()
	for _, name := range fn.EventFiles(t) {
		t.Run(name, func(t *testing.T) {
			s, ok := samples[name]
			if !ok {
				t.Fatalf("no check for %s: add one", name)
			}
			e := newEnv(t)
			var edit func(*events.APIGatewayV2HTTPRequest)
			if s.setup != nil {
				edit = s.setup(t, e)
			}
			resp := e.send(t, name, edit)
			if resp.Headers["X-Request-Id"] == "" {
				t.Errorf("no X-Request-Id header")
			}
			status := s.status
			if status == 0 {
				status = 200
			}
			s.check(t, e, resp, lambdatest.JSONBody(t, resp, status))
		})
	}
}

// TestModifiedEvents covers what the sample events do not: missing or insufficient
// credentials, bad bodies, encodings and routes.
func TestModifiedEvents(t *testing.T) {
	now := time.Now()
	noRole := func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.RequestContext.Authorizer.JWT.Claims, "role") }
	const (
		route   = "post-ai-router-route.json"
		compose = composeEvent
		chat    = "post-v1-chat-completions.json"
	)
	cases := []lambdatest.Case{
		{Name: "admin routes without the role", Event: "get-admin-routes.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "route update without the role", Event: "put-admin-route.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "models without the role", Event: "get-admin-models.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "routing for another user without the role", Event: route, Status: 403, Code: "forbidden",
			Edit: body(`{"operation_id":"email-compose","user_id":"someone-else","estimated_tokens":100}`)},
		{Name: "admin routing for another user", Event: route, Status: 200,
			Edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RequestContext.Authorizer.JWT.Claims["role"] = "admin"
				ev.Body = `{"operation_id":"email-compose","user_id":"someone-else","estimated_tokens":100}`
			},
			Fields: map[string]string{"budget.user_id": "someone-else", "model": "deepseek"}},
		{Name: "authorizer claims without sub", Event: route, Status: 401, Code: "unauthorized",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.RequestContext.Authorizer.JWT.Claims, "sub") }},
		{Name: "no authorizer and no token", Event: route, Edit: lambdatest.WithoutAuthorizer(""), Status: 401, Code: "unauthorized"},
		{Name: "no authorizer, valid HS256 token", Event: route, Status: 200,
			Edit:   lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-user", nil, time.Hour, now)),
			Fields: map[string]string{"budget.user_id": "token-user", "model": "deepseek", "estimated_cost_usd": "0.000175"}},
		{Name: "no authorizer, admin HS256 token on an admin route", Event: "get-admin-models.json", Status: 200,
			Edit: lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-admin", map[string]any{"role": "admin"}, time.Hour, now))},
		{Name: "no authorizer, HS256 token without the role on an admin route", Event: "get-admin-routes.json", Status: 403, Code: "forbidden",
			Edit: lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-user", nil, time.Hour, now))},
		{Name: "no authorizer, expired token", Event: route, Status: 401, Code: "unauthorized",
			Edit: lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-user", nil, time.Minute, now.Add(-time.Hour)))},
		{Name: "no authorizer, token signed with another secret", Event: route, Status: 401, Code: "unauthorized",
			Edit: lambdatest.WithoutAuthorizer(fn.Forged(t))},
		{Name: "authorizer claims win over a stray Authorization header", Event: route, Status: 200,
			Edit:   func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers["authorization"] = "Bearer not-a-jwt" },
			Fields: map[string]string{"budget.user_id": "test-user"}},
		{Name: "malformed JSON", Event: route, Edit: body(`{"operation_id":"email-compose",`), Status: 400, Code: "malformed_json"},
		{Name: "empty body", Event: route, Edit: body(""), Status: 400, Code: "empty_body"},
		{Name: "unknown field", Event: route, Edit: body(`{"operation_id":"email-compose","estimated_tokenz":100}`), Status: 400, Code: "unknown_field"},
		{Name: "wrong type", Event: route, Edit: body(`{"operation_id":"email-compose","estimated_tokens":"100"}`), Status: 400, Code: "invalid_type"},
		{Name: "unknown operation", Event: route, Edit: body(`{"operation_id":"no-such-op","estimated_tokens":100}`), Status: 404, Code: "unknown_operation"},
		{Name: "disabled operation", Event: route, Edit: body(`{"operation_id":"email_analysis","estimated_tokens":100}`), Status: 403, Code: "operation_disabled"},
		{Name: "body over 64 KiB", Event: route, Status: 413, Code: "body_too_large",
			Edit: body(`{"operation_id":"` + strings.Repeat("x", 70<<10) + `"}`)},
		{Name: "base64-encoded body", Event: route, Status: 200,
			Edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.Body = base64.StdEncoding.EncodeToString([]byte(ev.Body))
				ev.IsBase64Encoded = true
			},
			Fields: map[string]string{"model": "deepseek", "estimated_cost_usd": "0.000175"}},
		{Name: "isBase64Encoded with a body that is not base64", Event: route, Status: 400, Code: "malformed_event",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) { ev.IsBase64Encoded = true }},
		{Name: "admin route update to a model that does not exist", Event: "put-admin-route.json", Status: 400, Code: "unknown_model",
			Edit: body(`{"primary_model":"gpt-imaginary"}`)},
		{Name: "admin route update of an unknown operation", Event: "put-admin-route.json", Status: 404, Code: "unknown_operation",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RawPath, ev.RequestContext.HTTP.Path = "/admin/routes/no-such-op", "/admin/routes/no-such-op"
				ev.PathParameters = map[string]string{"operation_id": "no-such-op"}
			}},
		{Name: "unknown route", Event: route, Status: 404, Code: "not_found",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
				ev.RawPath, ev.RequestContext.HTTP.Path = "/ai-router/nowhere", "/ai-router/nowhere"
			}},
		{Name: "wrong method", Event: route, Status: 405, Code: "method_not_allowed",
			Edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
				ev.RequestContext.HTTP.Method = "DELETE"
				ev.Body = ""
			}},

		// Approvals and kill switches.
		{Name: "approvals without the role", Event: "get-admin-approvals.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "approve without the role", Event: "post-admin-approval-approve.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "reject without the role", Event: "post-admin-approval-reject.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "toggles without the role", Event: "get-admin-toggles.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "toggle switch without the role", Event: "put-admin-toggle.json", Edit: noRole, Status: 403, Code: "forbidden"},
		{Name: "approvals with an unknown status", Event: "get-admin-approvals.json", Status: 400, Code: "invalid_field",
			Edit: query("status", "maybe")},
		{Name: "all approvals", Event: "get-admin-approvals.json", Edit: query("status", "all"), Status: 200},
		{Name: "approve an approval that does not exist", Event: "post-admin-approval-approve.json", Edit: func(*events.APIGatewayV2HTTPRequest) {},
			Status: 404, Code: "approval_not_found"},
		{Name: "reject an id that is not a UUID", Event: "post-admin-approval-reject.json", Edit: withPathParam("id", "not-a-uuid"),
			Status: 404, Code: "approval_not_found"},
		{Name: "unknown toggle", Event: "put-admin-toggle.json", Edit: withPathParam("key", "DISABLE_EVERYTHING"), Status: 404, Code: "unknown_toggle"},
		{Name: "toggle without enabled", Event: "put-admin-toggle.json", Edit: body(`{}`), Status: 400, Code: "missing_field"},
		{Name: "toggle with a string", Event: "put-admin-toggle.json", Edit: body(`{"enabled":"yes"}`), Status: 400, Code: "invalid_type"},
		{Name: "toggle with an unknown field", Event: "put-admin-toggle.json", Edit: body(`{"enabled":true,"reason":"x"}`), Status: 400, Code: "unknown_field"},

		// Intelligence operations.
		{Name: "intelligence without credentials", Event: compose, Edit: lambdatest.WithoutAuthorizer(""), Status: 401, Code: "unauthorized"},
		{Name: "intelligence with an HS256 token", Event: compose, Status: 200,
			Edit:   lambdatest.WithoutAuthorizer(fn.Bearer(t, "token-user", nil, time.Hour, now)),
			Fields: map[string]string{"operation_id": "email-compose", "model": "deepseek", "offline": "true"}},
		{Name: "compose without a subject", Event: compose, Edit: body(`{"recipient_context":"Manager"}`), Status: 400, Code: "missing_field"},
		{Name: "compose with a misspelt field", Event: compose, Status: 400, Code: "unknown_field",
			Edit: body(`{"subject":"Project Update","recipient_context":"Manager","tones":"formal"}`)},
		{Name: "compose with an unknown tone", Event: compose, Edit: withBodyField(t, "tone", "angry"), Status: 400, Code: "invalid_field"},
		{Name: "compose with too many suggestions", Event: compose, Edit: withBodyField(t, "suggestions", 4), Status: 400, Code: "invalid_field"},
		{Name: "compose with an approval that does not exist", Event: compose, Status: 404, Code: "approval_not_found",
			Edit: withBodyField(t, "approval_id", "5f0c8a3e-2b7d-4c1a-9e6f-3d8b1a4c7e20")},
		{Name: "classify without a body", Event: "post-intelligence-email-classify.json", Edit: body(`{"subject":"Hi"}`), Status: 400, Code: "missing_field"},
		{Name: "calendar time with a window shorter than the meeting", Event: "post-intelligence-calendar-time.json", Status: 400, Code: "invalid_field",
			Edit: withBodyField(t, "window_end", "2026-03-05T09:20:00Z")},
		{Name: "calendar time with a date that is not RFC 3339", Event: "post-intelligence-calendar-time.json", Status: 400, Code: "invalid_field",
			Edit: withBodyField(t, "window_start", "tomorrow morning")},
		{Name: "prioritize with a duplicate task id", Event: "post-intelligence-task-prioritize.json", Status: 400, Code: "invalid_field",
			Edit: body(`{"tasks":[{"id":"a","title":"One"},{"id":"a","title":"Two"}]}`)},
		{Name: "prioritize without tasks", Event: "post-intelligence-task-prioritize.json", Edit: body(`{"tasks":[]}`), Status: 400, Code: "missing_field"},
		{Name: "breakdown with too many steps", Event: "post-intelligence-task-breakdown.json", Edit: withBodyField(t, "max_steps", 21), Status: 400, Code: "invalid_field"},
		{Name: "summary with a metric without a value", Event: "post-intelligence-analytics-summary.json", Status: 400, Code: "missing_field",
			Edit: body(`{"metrics":[{"name":"Churn"}]}`)},
		{Name: "anomaly with two points", Event: "post-intelligence-analytics-anomaly.json", Status: 400, Code: "invalid_field",
			Edit: body(`{"series":[{"timestamp":"2026-03-01T00:00:00Z","value":1},{"timestamp":"2026-03-01T01:00:00Z","value":2}]}`)},
		{Name: "intelligence with a malformed body", Event: "post-intelligence-calendar-prep.json", Edit: body(`{"title":`), Status: 400, Code: "malformed_json"},

		// The OpenAI-compatible API answers in OpenAI's error format (error.type besides error.code).
		{Name: "chat completion without credentials", Event: chat, Edit: lambdatest.WithoutAuthorizer(""), Status: 401, Code: "unauthorized",
			Fields: map[string]string{"error.type": "authentication_error"}},
		{Name: "models without credentials", Event: "get-v1-models.json", Edit: lambdatest.WithoutAuthorizer(""), Status: 401, Code: "unauthorized"},
		{Name: "chat completion with an unknown model", Event: chat, Edit: withBodyField(t, "model", "gpt-imaginary"), Status: 404, Code: "model_not_found",
			Fields: map[string]string{"error.type": "not_found_error"}},
		{Name: "chat completion on a disabled operation", Event: chat, Edit: withBodyField(t, "model", "helix/email_analysis"), Status: 403, Code: "operation_disabled",
			Fields: map[string]string{"error.type": "permission_error"}},
		{Name: "chat completion pinned to an operation", Event: chat, Edit: withBodyField(t, "model", "helix/analytics-summary"), Status: 200,
			Fields: map[string]string{"model": "gemini_flash", "object": "chat.completion"}},
		{Name: "chat completion pinned to a model", Event: chat, Edit: withBodyField(t, "model", "gemini_flash"), Status: 200,
			Fields: map[string]string{"model": "gemini_flash"}},
		{Name: "chat completion pinned to the emergency model by a user", Event: chat, Edit: withBodyField(t, "model", "claude"), Status: 403,
			Code: "model_not_allowed", Fields: map[string]string{"error.type": "permission_error"}},
		{Name: "chat completion without messages", Event: chat, Edit: body(`{"model":"auto","messages":[]}`), Status: 400, Code: "missing_field",
			Fields: map[string]string{"error.type": "invalid_request_error", "error.param": "messages"}},
		{Name: "chat completion with a misspelt parameter", Event: chat, Edit: withBodyField(t, "max_token", 10), Status: 400, Code: "unknown_field"},
	}
	fn.RunCases(t, func(t *testing.T) lambda.Handler { return lambdaHandler(newApp(t)) }, cases)
}

// TestRouteUpdateChangesRouting runs two sample events against one database: the admin's route
// update is what the next routing decision uses.
func TestRouteUpdateChangesRouting(t *testing.T) {
	h := lambdaHandler(newApp(t))
	raw, _ := fn.Load(t, "post-ai-router-route.json")
	before := lambdatest.JSONBody(t, lambdatest.Invoke(t, h, raw), 200)
	lambdatest.WantFields(t, before, map[string]string{"max_output_tokens": "1024"})

	update := fn.Modified(t, "put-admin-route.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Body = `{"primary_model":"gemini_flash","fallback_model":"deepseek","max_output_tokens":2048}`
	})
	lambdatest.JSONBody(t, lambdatest.Invoke(t, h, update), 200)

	after := lambdatest.JSONBody(t, lambdatest.Invoke(t, h, raw), 200)
	lambdatest.WantFields(t, after, map[string]string{
		"model":             "gemini_flash",
		"fallback_model":    "deepseek",
		"max_output_tokens": "2048",
		// 100 × $0.10/M + 350 × $0.40/M
		"estimated_cost_usd": "0.00015",
	})
}

// TestMaintenanceMode switches maintenance on and off through the toggle endpoint: in between,
// operations and writes answer 503 maintenance, reads and the switch itself still work.
func TestMaintenanceMode(t *testing.T) {
	e := newEnv(t)
	maintenance := func(on bool) func(*events.APIGatewayV2HTTPRequest) {
		return edits(withPathParam("key", "ENABLE_MAINTENANCE_MODE"), body(fmt.Sprintf(`{"enabled":%v}`, on)))
	}
	on := lambdatest.JSONBody(t, e.send(t, "put-admin-toggle.json", maintenance(true)), 200)
	lambdatest.WantFields(t, on, map[string]string{"key": "ENABLE_MAINTENANCE_MODE", "enabled": "true"})

	for _, name := range []string{composeEvent, "post-intelligence-task-prioritize.json", "post-v1-chat-completions.json",
		"put-admin-route.json", "post-admin-approval-approve.json", "post-admin-approval-reject.json"} {
		if code := lambdatest.ErrorCode(lambdatest.JSONBody(t, e.send(t, name, nil), 503)); code != "maintenance" {
			t.Errorf("%s in maintenance: error.code %q, want maintenance", name, code)
		}
	}
	// Reads, the routing decision (a read) and the switch still work.
	for _, name := range []string{"get-admin-routes.json", "get-admin-toggles.json", "get-admin-approvals.json", "get-v1-models.json", "post-ai-router-route.json"} {
		lambdatest.JSONBody(t, e.send(t, name, nil), 200)
	}
	toggles := lambdatest.JSONBody(t, e.send(t, "get-admin-toggles.json", nil), 200)
	for _, tg := range objects(t, toggles, "toggles") {
		if tg["key"] == "ENABLE_MAINTENANCE_MODE" {
			lambdatest.WantFields(t, tg, map[string]string{"enabled": "true", "updated_by": "admin-user"})
		}
	}
	// Another switch can be flipped too (e.g. to route around a provider during the incident).
	lambdatest.JSONBody(t, e.send(t, "put-admin-toggle.json", nil), 200)

	off := lambdatest.JSONBody(t, e.send(t, "put-admin-toggle.json", maintenance(false)), 200)
	lambdatest.WantFields(t, off, map[string]string{"key": "ENABLE_MAINTENANCE_MODE", "enabled": "false"})
	resp := e.send(t, composeEvent, nil)
	wantIntelMeta(t, e, resp, lambdatest.JSONBody(t, resp, 200), "email-compose", "deepseek")
}

// TestBudgetExceeded: a call whose worst case does not fit the user's remaining budget is
// refused with 402 before anything is reserved or called, on both APIs.
func TestBudgetExceeded(t *testing.T) {
	e := newEnv(t)
	// A limit of 1 nano-USD: even the offline model's calls (which cost nothing) are reserved at
	// the routed model's worst case first.
	if _, err := e.base.Pool.Exec(t.Context(), `
		INSERT INTO user_budgets (user_id, daily_limit_nano, warning_threshold_nano, updated_by)
		VALUES ('test-user', 1, 0, 'test')`); err != nil {
		t.Fatal(err)
	}
	intel := lambdatest.JSONBody(t, e.send(t, composeEvent, nil), 402)
	if code := lambdatest.ErrorCode(intel); code != "budget_exceeded" {
		t.Errorf("intelligence: error.code %q, want budget_exceeded", code)
	}
	chat := lambdatest.JSONBody(t, e.send(t, "post-v1-chat-completions.json", nil), 402)
	lambdatest.WantFields(t, chat, map[string]string{"error.code": "budget_exceeded", "error.type": "insufficient_quota"})

	var held, logged int
	err := e.base.Pool.QueryRow(t.Context(), `
		SELECT (SELECT count(*) FROM budget_reservations WHERE user_id = 'test-user' AND status <> 'released'),
		       (SELECT count(*) FROM ai_operation_log WHERE user_id = 'test-user' AND success)`).Scan(&held, &logged)
	if err != nil {
		t.Fatal(err)
	}
	if held != 0 || logged != 0 {
		t.Errorf("%d reservations held and %d successful calls logged for refused requests, want none", held, logged)
	}
}

// TestTemplateTimeouts checks the timing constraints template.yaml must keep for the route
// function: it answers before API Gateway's integration timeout (30 s at most for HTTP APIs),
// and a budget hold outlives any invocation.
func TestTemplateTimeouts(t *testing.T) {
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?ms)^  RouteFunction:\n(.*?)(?:^  \S|\z)`).FindSubmatch(raw)
	if block == nil {
		t.Fatal("template.yaml has no RouteFunction")
	}
	m := regexp.MustCompile(`(?m)^      Timeout: (\d+)$`).FindSubmatch(block[1])
	if m == nil {
		t.Fatal("RouteFunction sets no Timeout of its own (the global one is for functions that call no model)")
	}
	timeout, _ := strconv.Atoi(string(m[1]))
	if timeout < 20 || timeout >= 30 {
		t.Errorf("RouteFunction Timeout %d s: want room for model calls (>= 20 s) and an answer before API Gateway's 30 s", timeout)
	}
	httpEvents := regexp.MustCompile(`Type: HttpApi\n`).FindAll(block[1], -1)
	limits := regexp.MustCompile(`TimeoutInMillis: (\d+)`).FindAllSubmatch(block[1], -1)
	if len(limits) != len(httpEvents) {
		t.Errorf("%d of %d HttpApi events set TimeoutInMillis", len(limits), len(httpEvents))
	}
	for _, l := range limits {
		if ms, _ := strconv.Atoi(string(l[1])); ms > 30000 || ms <= timeout*1000 {
			t.Errorf("TimeoutInMillis %d: want more than the function's %d s and at most 30000", ms, timeout)
			break
		}
	}
	ttl := regexp.MustCompile(`HELIX_RESERVATION_TTL: (\S+)`).FindSubmatch(block[1])
	if ttl == nil {
		t.Fatal("RouteFunction does not set HELIX_RESERVATION_TTL")
	}
	if d, err := time.ParseDuration(string(ttl[1])); err != nil || d <= time.Duration(timeout)*time.Second {
		t.Errorf("HELIX_RESERVATION_TTL %s (%v): must exceed the function timeout of %d s", ttl[1], err, timeout)
	}
	for _, v := range []string{"HELIX_OFFLINE:", "ENABLE_MAINTENANCE_MODE:", "DISABLE_DEEPSEEK:", "DISABLE_GEMINI:"} {
		if regexp.MustCompile(`(?m)^\s+` + v).Match(raw) {
			t.Errorf("template.yaml sets %s; deployments must leave it unset", strings.TrimSuffix(v, ":"))
		}
	}
}

// seedRecommendation writes the pending model switch the sample events name, as the optimizer
// would have: email-compose from DeepSeek to Gemini Flash, made while DeepSeek was primary.
func seedRecommendation(t *testing.T, e *env) func(*events.APIGatewayV2HTTPRequest) {
	t.Helper()
	if _, err := e.base.Pool.Exec(t.Context(), `
		INSERT INTO helix_recommendations (id, type, target, proposal, estimated_monthly_saving_nano, evidence, reasoning, based_on, analysis_day, refreshed_day)
		SELECT '3b9f6d2a-8c1e-4f7a-b5d3-6e2a9c8f1b04', 'model_switch', 'email-compose',
		       '{"primary_model":"gemini_flash","fallback_model":"deepseek"}', 9471428571, '{"calls":120}',
		       'Gemini Flash answered email-compose as well for less.',
		       jsonb_build_object('primary_model', primary_model, 'fallback_model', fallback_model),
		       current_date, current_date
		  FROM ai_model_routes WHERE operation_id = 'email-compose'`); err != nil {
		t.Fatal(err)
	}
	return nil
}
