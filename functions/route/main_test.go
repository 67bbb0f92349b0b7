package main

// These tests push the sample events in events/route through the function exactly as the Lambda
// runtime would: the JSON payload goes to lambda.NewHandler(...).Invoke, the handler runs against
// a fresh, migrated and seeded Postgres database, and the returned JSON is read back as an
// API Gateway v2 response.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/offline"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/lambdaio"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

const (
	eventDir   = "../../events/route"
	testSecret = "route-lambda-test-secret-0123456789abcdef"
	testIssuer = "https://auth.example.com/"
	testAud    = "helix-api"
)

// The function's routes; every one needs a sample event and a route in template.yaml.
var wantRoutes = []string{
	"GET /admin/approvals",
	"GET /admin/models",
	"GET /admin/routes",
	"GET /admin/toggles",
	"GET /v1/models",
	"POST /admin/approvals/{id}/approve",
	"POST /admin/approvals/{id}/reject",
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
	"PUT /admin/routes/{operation_id}",
	"PUT /admin/toggles/{key}",
}

// newBase builds what app.Boot would, over a fresh database: configuration from an environment
// (so the defaults are the real ones), a discarded log, and an HS256 authenticator.
func newBase(t *testing.T) *app.Base {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL":       "postgres://unused.invalid/helix", // the pool below is used instead
		"HELIX_JWT_SECRET":   testSecret,
		"HELIX_JWT_ISSUER":   testIssuer,
		"HELIX_JWT_AUDIENCE": testAud,
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	authn, err := auth.New(t.Context(), auth.Config{
		HS256Secret: []byte(cfg.Auth.HS256Secret),
		Issuer:      cfg.Auth.Issuer,
		Audience:    cfg.Auth.Audience,
		AdminClaim:  cfg.Auth.AdminClaim,
		AdminValue:  cfg.Auth.AdminValue,
	})
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	return &app.Base{
		Config: cfg,
		Log:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Pool:   pg.NewPool(t),
		Auth:   authn,
	}
}

// invoke runs payload through the Lambda handler the way the runtime does and decodes the
// API Gateway response.
func invoke(t *testing.T, h lambda.Handler, payload []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response is not an API Gateway v2 response: %v\n%s", err, out)
	}
	return resp
}

func lambdaHandler(base *app.Base) lambda.Handler {
	// Every provider answers from the offline model: these tests exercise the Lambda adapter and
	// the routes, not the providers (the pipeline's own tests cover those).
	providers := llm.NewRegistry().WithOfflineFallback(offline.New(), true)
	return lambda.NewHandler(lambdaio.HTTPHandler(newHandler(base, providers), base.Log))
}

// loadEvent reads a sample event and checks it decodes into the v2 event type with no unknown
// fields (a misspelt key would silently be dropped by the runtime).
func loadEvent(t *testing.T, name string) ([]byte, events.APIGatewayV2HTTPRequest) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(eventDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("%s is not an API Gateway v2 event: %v", name, err)
	}
	return raw, ev
}

// modified returns the event file changed by edit, as a payload.
func modified(t *testing.T, name string, edit func(*events.APIGatewayV2HTTPRequest)) []byte {
	t.Helper()
	_, ev := loadEvent(t, name)
	edit(&ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonBody checks the status and that the response is JSON, with error.code on failures, and
// returns the decoded body (numbers kept as written).
func jsonBody(t *testing.T, resp events.APIGatewayV2HTTPResponse, status int) map[string]any {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, resp.Body)
	}
	if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, resp.Body)
	}
	if resp.IsBase64Encoded {
		t.Fatalf("a JSON body came back base64-encoded")
	}
	var body map[string]any
	dec := json.NewDecoder(strings.NewReader(resp.Body))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, resp.Body)
	}
	if status >= 400 {
		e, _ := body["error"].(map[string]any)
		if code, _ := e["code"].(string); code == "" {
			t.Fatalf("error response without error.code: %s", resp.Body)
		}
		if msg, _ := e["message"].(string); msg == "" {
			t.Fatalf("error response without error.message: %s", resp.Body)
		}
	}
	return body
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// field walks a dotted path ("budget.remaining") and renders the value: numbers exactly as the
// JSON wrote them, strings as is, null as "null".
func field(t *testing.T, body map[string]any, path string) string {
	t.Helper()
	var v any = body
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %v is not an object", path, v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("response has no %s: %v", path, body)
		}
	}
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func wantFields(t *testing.T, body map[string]any, want map[string]string) {
	t.Helper()
	for path, w := range want {
		if got := field(t, body, path); got != w {
			t.Errorf("%s = %s, want %s", path, got, w)
		}
	}
}

func bearer(t *testing.T, sub string, claims map[string]any, ttl time.Duration, now time.Time) string {
	t.Helper()
	tok, err := auth.SignHS256(auth.TokenSpec{
		Secret: []byte(testSecret), Subject: sub, Issuer: testIssuer, Audience: testAud,
		TTL: ttl, Claims: claims, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// forged is a well-formed token for the right issuer and audience, signed with another secret.
func forged(t *testing.T) string {
	t.Helper()
	tok, err := auth.SignHS256(auth.TokenSpec{
		Secret: []byte("some-other-secret-that-is-32-bytes-long"), Subject: "intruder",
		Issuer: testIssuer, Audience: testAud, TTL: time.Hour, Claims: map[string]any{"role": "admin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// withoutAuthorizer is a request that reached the function without API Gateway's JWT
// authorizer (a route without it, or the local dev server), optionally with a bearer token.
func withoutAuthorizer(authorization string) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RequestContext.Authorizer = nil
		delete(ev.Headers, "authorization")
		if authorization != "" {
			ev.Headers["authorization"] = authorization
		}
	}
}

func eventFiles(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(eventDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// TestEventFiles checks the sample events are the v2 events API Gateway sends for this
// function's routes, one per route, and that template.yaml routes the same set here.
func TestEventFiles(t *testing.T) {
	var got []string
	for _, name := range eventFiles(t) {
		_, ev := loadEvent(t, name)
		method, pattern, _ := strings.Cut(ev.RouteKey, " ")
		switch {
		case ev.Version != "2.0":
			t.Errorf("%s: version %q, want 2.0", name, ev.Version)
		case ev.RequestContext.RouteKey != ev.RouteKey:
			t.Errorf("%s: requestContext.routeKey %q differs from routeKey %q", name, ev.RequestContext.RouteKey, ev.RouteKey)
		case ev.RequestContext.HTTP.Method != method:
			t.Errorf("%s: http.method %q does not match routeKey %q", name, ev.RequestContext.HTTP.Method, ev.RouteKey)
		case ev.RequestContext.HTTP.Path != ev.RawPath:
			t.Errorf("%s: http.path %q differs from rawPath %q", name, ev.RequestContext.HTTP.Path, ev.RawPath)
		case !matchesPattern(pattern, ev.RawPath, ev.PathParameters):
			t.Errorf("%s: rawPath %q with pathParameters %v does not match %q", name, ev.RawPath, ev.PathParameters, pattern)
		case ev.RequestContext.Stage != "$default" || ev.RequestContext.RequestID == "" || ev.RequestContext.TimeEpoch == 0:
			t.Errorf("%s: requestContext lacks stage $default, requestId or timeEpoch", name)
		case ev.RequestContext.Authorizer == nil || ev.RequestContext.Authorizer.JWT == nil:
			t.Errorf("%s: no JWT authorizer context", name)
		default:
			c := ev.RequestContext.Authorizer.JWT.Claims
			for _, k := range []string{"sub", "iss", "aud", "exp"} {
				if c[k] == "" {
					t.Errorf("%s: claim %s missing", name, k)
				}
			}
			if admin := strings.HasPrefix(pattern, "/admin/"); admin != (c["role"] == "admin") {
				t.Errorf("%s: role claim %q on %s", name, c["role"], pattern)
			}
		}
		got = append(got, ev.RouteKey)
	}
	slices.Sort(got)
	if !slices.Equal(got, wantRoutes) {
		t.Errorf("events cover %v, want one event per route %v", got, wantRoutes)
	}
	if tmpl := templateRoutes(t, "RouteFunction"); !slices.Equal(tmpl, wantRoutes) {
		t.Errorf("template.yaml routes %v to RouteFunction, want %v", tmpl, wantRoutes)
	}
}

// matchesPattern reports whether path fits an API Gateway route pattern with {name} segments
// whose values are the event's path parameters.
func matchesPattern(pattern, path string, params map[string]string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	seen := 0
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if params[p[1:len(p)-1]] != xs[i] || xs[i] == "" {
				return false
			}
			seen++
		} else if p != xs[i] {
			return false
		}
	}
	return seen == len(params)
}

// templateRoutes lists "METHOD /path" for the HttpApi events of one function in template.yaml.
func templateRoutes(t *testing.T, function string) []string {
	t.Helper()
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The function's block runs from "  <Name>:" to the next resource at the same indentation.
	block := regexp.MustCompile(`(?ms)^  ` + function + `:\n(.*?)(?:^  \S|\z)`).FindSubmatch(raw)
	if block == nil {
		t.Fatalf("template.yaml has no resource %s", function)
	}
	var routes []string
	for _, m := range regexp.MustCompile(`Path: (\S+)\s+Method: (\S+)`).FindAllSubmatch(block[1], -1) {
		routes = append(routes, string(m[2])+" "+string(m[1]))
	}
	slices.Sort(routes)
	return routes
}

// env is one handler over one fresh database, for tests that send several events in a row.
type env struct {
	base *app.Base
	h    lambda.Handler
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := newBase(t)
	return &env{base: base, h: lambdaHandler(base)}
}

// send invokes the handler with a sample event, changed by edit when edit is not nil.
func (e *env) send(t *testing.T, name string, edit func(*events.APIGatewayV2HTTPRequest)) events.APIGatewayV2HTTPResponse {
	t.Helper()
	var payload []byte
	if edit == nil {
		payload, _ = loadEvent(t, name)
	} else {
		payload = modified(t, name, edit)
	}
	return invoke(t, e.h, payload)
}

// holdCompose makes email-compose require approval (through the admin API, as an operator
// would) and sends the compose sample event, which is then held: it returns the approval id.
func (e *env) holdCompose(t *testing.T) string {
	t.Helper()
	update := e.send(t, "put-admin-route.json", body(`{"requires_approval":true}`))
	wantFields(t, jsonBody(t, update, 200), map[string]string{"operation_id": "email-compose", "requires_approval": "true"})
	held := jsonBody(t, e.send(t, composeEvent, nil), 202)
	wantFields(t, held, map[string]string{"status": "pending_approval", "operation_id": "email-compose"})
	id := field(t, held, "approval_id")
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
	wantFields(t, body, map[string]string{"operation_id": operation, "model": model, "cost_usd": "0", "offline": "true"})
	id := field(t, body, "request_id")
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
			wantFields(t, body, map[string]string{
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
			wantFields(t, body, map[string]string{
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
			if got := field(t, body, "failover_chain"); !strings.HasPrefix(got, `["deepseek","gemini_flash"`) {
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
					wantFields(t, r, map[string]string{"primary_model": "deepseek", "fallback_model": "gemini_flash", "enabled": "true"})
					return
				}
			}
			t.Errorf("email-compose is not among the routes")
		}),
		"put-admin-route.json": bodyCheck(func(t *testing.T, body map[string]any) {
			wantFields(t, body, map[string]string{
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
				prices[field(t, m, "model")] = field(t, m, "input_usd_per_mtok") + "/" + field(t, m, "output_usd_per_mtok")
			}
			for model, want := range map[string]string{"deepseek": "0.28/0.42", "gemini_flash": "0.1/0.4", "claude": "1/5"} {
				if prices[model] != want {
					t.Errorf("%s prices (in/out per 1M) = %q, want %q", model, prices[model], want)
				}
			}
		}),

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
				wantFields(t, approvals[0], map[string]string{
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
			if code := errorCode(jsonBody(t, other, 404)); code != "approval_not_found" {
				t.Errorf("another user's re-send: error.code %q, want approval_not_found", code)
			}
			changed := e.send(t, composeEvent, edits(resend, withBodyField(t, "subject", "Something else")))
			if code := errorCode(jsonBody(t, changed, 409)); code != "approval_mismatch" {
				t.Errorf("re-send of a different request: error.code %q, want approval_mismatch", code)
			}
			// The held request, re-sent with the approval, runs once.
			resp := e.send(t, composeEvent, resend)
			ran := jsonBody(t, resp, 200)
			wantIntelMeta(t, e, resp, ran, "email-compose", "deepseek")
			if len(list(t, ran, "suggestions")) == 0 {
				t.Errorf("no suggestions: %v", ran)
			}
			again := e.send(t, composeEvent, resend)
			if code := errorCode(jsonBody(t, again, 409)); code != "approval_not_usable" {
				t.Errorf("second use of the approval: error.code %q, want approval_not_usable", code)
			}
			used := jsonBody(t, e.send(t, "get-admin-approvals.json", query("status", "used")), 200)
			if l := objects(t, used, "approvals"); len(l) != 1 || l[0]["approval_id"] != id || l[0]["used_request_id"] != ran["request_id"] {
				t.Errorf("used approvals %v, want %s used by request %v", l, id, ran["request_id"])
			}
		}),
		"post-admin-approval-reject.json": approvalDecision("rejected", func(t *testing.T, e *env, id string) {
			resent := e.send(t, composeEvent, withBodyField(t, "approval_id", id))
			if code := errorCode(jsonBody(t, resent, 409)); code != "approval_not_usable" {
				t.Errorf("re-send with a rejected approval: error.code %q, want approval_not_usable", code)
			}
			// A decided approval cannot be decided again.
			twice := e.send(t, "post-admin-approval-approve.json", withPathParam("id", id))
			if code := errorCode(jsonBody(t, twice, 409)); code != "approval_not_pending" {
				t.Errorf("approving a rejected approval: error.code %q, want approval_not_pending", code)
			}
		}),
		"get-admin-toggles.json": bodyCheck(func(t *testing.T, body map[string]any) {
			got := map[string]string{}
			for _, tg := range objects(t, body, "toggles") {
				got[field(t, tg, "key")] = field(t, tg, "enabled") + "/" + field(t, tg, "source")
			}
			for _, k := range []string{"DISABLE_DEEPSEEK", "DISABLE_GEMINI", "DISABLE_ANTHROPIC", "DISABLE_SYNTHESIS", "ENABLE_MAINTENANCE_MODE"} {
				if got[k] != "false/database" {
					t.Errorf("toggle %s = %q, want false/database (enabled/source)", k, got[k])
				}
			}
		}),
		"put-admin-toggle.json": {check: func(t *testing.T, e *env, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			wantFields(t, body, map[string]string{
				"key": "DISABLE_GEMINI", "enabled": "true", "stored_value": "true", "source": "database", "updated_by": "admin-user",
			})
			// calendar-time runs on gemini_flash first; with Gemini switched off it goes to deepseek.
			resp := e.send(t, "post-intelligence-calendar-time.json", nil)
			wantIntelMeta(t, e, resp, jsonBody(t, resp, 200), "calendar-time", "deepseek")
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
			wantFields(t, body, map[string]string{"object": "chat.completion", "model": "deepseek"})
			if id := field(t, body, "id"); id != "chatcmpl-"+resp.Headers["X-Request-Id"] {
				t.Errorf("id = %q, want chatcmpl-<request id %s>", id, resp.Headers["X-Request-Id"])
			}
			choices := objects(t, body, "choices")
			if len(choices) != 1 {
				t.Fatalf("%d choices, want 1", len(choices))
			}
			wantFields(t, choices[0], map[string]string{"index": "0", "finish_reason": "stop", "message.role": "assistant"})
			if c := field(t, choices[0], "message.content"); !strings.HasPrefix(c, "[offline model]") {
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
		"get-v1-models.json": bodyCheck(func(t *testing.T, body map[string]any) {
			wantFields(t, body, map[string]string{"object": "list"})
			ids := map[string]bool{}
			for _, m := range objects(t, body, "data") {
				wantFields(t, m, map[string]string{"object": "model"})
				ids[field(t, m, "id")] = true
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
	for _, name := range eventFiles(t) {
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
			s.check(t, e, resp, jsonBody(t, resp, status))
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
	cases := []struct {
		name   string
		event  string
		edit   func(*events.APIGatewayV2HTTPRequest)
		status int
		code   string            // error.code, for failures
		fields map[string]string // checked on success
	}{
		{name: "admin routes without the role", event: "get-admin-routes.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "route update without the role", event: "put-admin-route.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "models without the role", event: "get-admin-models.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "routing for another user without the role", event: route, status: 403, code: "forbidden",
			edit: body(`{"operation_id":"email-compose","user_id":"someone-else","estimated_tokens":100}`)},
		{name: "admin routing for another user", event: route, status: 200,
			edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RequestContext.Authorizer.JWT.Claims["role"] = "admin"
				ev.Body = `{"operation_id":"email-compose","user_id":"someone-else","estimated_tokens":100}`
			},
			fields: map[string]string{"budget.user_id": "someone-else", "model": "deepseek"}},
		{name: "authorizer claims without sub", event: route, status: 401, code: "unauthorized",
			edit: func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.RequestContext.Authorizer.JWT.Claims, "sub") }},
		{name: "no authorizer and no token", event: route, edit: withoutAuthorizer(""), status: 401, code: "unauthorized"},
		{name: "no authorizer, valid HS256 token", event: route, status: 200,
			edit:   withoutAuthorizer(bearer(t, "token-user", nil, time.Hour, now)),
			fields: map[string]string{"budget.user_id": "token-user", "model": "deepseek", "estimated_cost_usd": "0.000175"}},
		{name: "no authorizer, admin HS256 token on an admin route", event: "get-admin-models.json", status: 200,
			edit: withoutAuthorizer(bearer(t, "token-admin", map[string]any{"role": "admin"}, time.Hour, now))},
		{name: "no authorizer, HS256 token without the role on an admin route", event: "get-admin-routes.json", status: 403, code: "forbidden",
			edit: withoutAuthorizer(bearer(t, "token-user", nil, time.Hour, now))},
		{name: "no authorizer, expired token", event: route, status: 401, code: "unauthorized",
			edit: withoutAuthorizer(bearer(t, "token-user", nil, time.Minute, now.Add(-time.Hour)))},
		{name: "no authorizer, token signed with another secret", event: route, status: 401, code: "unauthorized",
			edit: withoutAuthorizer(forged(t))},
		{name: "authorizer claims win over a stray Authorization header", event: route, status: 200,
			edit:   func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers["authorization"] = "Bearer not-a-jwt" },
			fields: map[string]string{"budget.user_id": "test-user"}},
		{name: "malformed JSON", event: route, edit: body(`{"operation_id":"email-compose",`), status: 400, code: "malformed_json"},
		{name: "empty body", event: route, edit: body(""), status: 400, code: "empty_body"},
		{name: "unknown field", event: route, edit: body(`{"operation_id":"email-compose","estimated_tokenz":100}`), status: 400, code: "unknown_field"},
		{name: "wrong type", event: route, edit: body(`{"operation_id":"email-compose","estimated_tokens":"100"}`), status: 400, code: "invalid_type"},
		{name: "unknown operation", event: route, edit: body(`{"operation_id":"no-such-op","estimated_tokens":100}`), status: 404, code: "unknown_operation"},
		{name: "disabled operation", event: route, edit: body(`{"operation_id":"email_analysis","estimated_tokens":100}`), status: 403, code: "operation_disabled"},
		{name: "body over 64 KiB", event: route, status: 413, code: "body_too_large",
			edit: body(`{"operation_id":"` + strings.Repeat("x", 70<<10) + `"}`)},
		{name: "base64-encoded body", event: route, status: 200,
			edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.Body = base64.StdEncoding.EncodeToString([]byte(ev.Body))
				ev.IsBase64Encoded = true
			},
			fields: map[string]string{"model": "deepseek", "estimated_cost_usd": "0.000175"}},
		{name: "isBase64Encoded with a body that is not base64", event: route, status: 400, code: "malformed_event",
			edit: func(ev *events.APIGatewayV2HTTPRequest) { ev.IsBase64Encoded = true }},
		{name: "admin route update to a model that does not exist", event: "put-admin-route.json", status: 400, code: "unknown_model",
			edit: body(`{"primary_model":"gpt-imaginary"}`)},
		{name: "admin route update of an unknown operation", event: "put-admin-route.json", status: 404, code: "unknown_operation",
			edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RawPath, ev.RequestContext.HTTP.Path = "/admin/routes/no-such-op", "/admin/routes/no-such-op"
				ev.PathParameters = map[string]string{"operation_id": "no-such-op"}
			}},
		{name: "unknown route", event: route, status: 404, code: "not_found",
			edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
				ev.RawPath, ev.RequestContext.HTTP.Path = "/ai-router/nowhere", "/ai-router/nowhere"
			}},
		{name: "wrong method", event: route, status: 405, code: "method_not_allowed",
			edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
				ev.RequestContext.HTTP.Method = "DELETE"
				ev.Body = ""
			}},

		// Approvals and kill switches.
		{name: "approvals without the role", event: "get-admin-approvals.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "approve without the role", event: "post-admin-approval-approve.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "reject without the role", event: "post-admin-approval-reject.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "toggles without the role", event: "get-admin-toggles.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "toggle switch without the role", event: "put-admin-toggle.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "approvals with an unknown status", event: "get-admin-approvals.json", status: 400, code: "invalid_field",
			edit: query("status", "maybe")},
		{name: "all approvals", event: "get-admin-approvals.json", edit: query("status", "all"), status: 200},
		{name: "approve an approval that does not exist", event: "post-admin-approval-approve.json", edit: func(*events.APIGatewayV2HTTPRequest) {},
			status: 404, code: "approval_not_found"},
		{name: "reject an id that is not a UUID", event: "post-admin-approval-reject.json", edit: withPathParam("id", "not-a-uuid"),
			status: 404, code: "approval_not_found"},
		{name: "unknown toggle", event: "put-admin-toggle.json", edit: withPathParam("key", "DISABLE_EVERYTHING"), status: 404, code: "unknown_toggle"},
		{name: "toggle without enabled", event: "put-admin-toggle.json", edit: body(`{}`), status: 400, code: "missing_field"},
		{name: "toggle with a string", event: "put-admin-toggle.json", edit: body(`{"enabled":"yes"}`), status: 400, code: "invalid_type"},
		{name: "toggle with an unknown field", event: "put-admin-toggle.json", edit: body(`{"enabled":true,"reason":"x"}`), status: 400, code: "unknown_field"},

		// Intelligence operations.
		{name: "intelligence without credentials", event: compose, edit: withoutAuthorizer(""), status: 401, code: "unauthorized"},
		{name: "intelligence with an HS256 token", event: compose, status: 200,
			edit:   withoutAuthorizer(bearer(t, "token-user", nil, time.Hour, now)),
			fields: map[string]string{"operation_id": "email-compose", "model": "deepseek", "offline": "true"}},
		{name: "compose without a subject", event: compose, edit: body(`{"recipient_context":"Manager"}`), status: 400, code: "missing_field"},
		{name: "compose with a misspelt field", event: compose, status: 400, code: "unknown_field",
			edit: body(`{"subject":"Project Update","recipient_context":"Manager","tones":"formal"}`)},
		{name: "compose with an unknown tone", event: compose, edit: withBodyField(t, "tone", "angry"), status: 400, code: "invalid_field"},
		{name: "compose with too many suggestions", event: compose, edit: withBodyField(t, "suggestions", 4), status: 400, code: "invalid_field"},
		{name: "compose with an approval that does not exist", event: compose, status: 404, code: "approval_not_found",
			edit: withBodyField(t, "approval_id", "5f0c8a3e-2b7d-4c1a-9e6f-3d8b1a4c7e20")},
		{name: "classify without a body", event: "post-intelligence-email-classify.json", edit: body(`{"subject":"Hi"}`), status: 400, code: "missing_field"},
		{name: "calendar time with a window shorter than the meeting", event: "post-intelligence-calendar-time.json", status: 400, code: "invalid_field",
			edit: withBodyField(t, "window_end", "2026-03-05T09:20:00Z")},
		{name: "calendar time with a date that is not RFC 3339", event: "post-intelligence-calendar-time.json", status: 400, code: "invalid_field",
			edit: withBodyField(t, "window_start", "tomorrow morning")},
		{name: "prioritize with a duplicate task id", event: "post-intelligence-task-prioritize.json", status: 400, code: "invalid_field",
			edit: body(`{"tasks":[{"id":"a","title":"One"},{"id":"a","title":"Two"}]}`)},
		{name: "prioritize without tasks", event: "post-intelligence-task-prioritize.json", edit: body(`{"tasks":[]}`), status: 400, code: "missing_field"},
		{name: "breakdown with too many steps", event: "post-intelligence-task-breakdown.json", edit: withBodyField(t, "max_steps", 21), status: 400, code: "invalid_field"},
		{name: "summary with a metric without a value", event: "post-intelligence-analytics-summary.json", status: 400, code: "missing_field",
			edit: body(`{"metrics":[{"name":"Churn"}]}`)},
		{name: "anomaly with two points", event: "post-intelligence-analytics-anomaly.json", status: 400, code: "invalid_field",
			edit: body(`{"series":[{"timestamp":"2026-03-01T00:00:00Z","value":1},{"timestamp":"2026-03-01T01:00:00Z","value":2}]}`)},
		{name: "intelligence with a malformed body", event: "post-intelligence-calendar-prep.json", edit: body(`{"title":`), status: 400, code: "malformed_json"},

		// The OpenAI-compatible API answers in OpenAI's error format (error.type besides error.code).
		{name: "chat completion without credentials", event: chat, edit: withoutAuthorizer(""), status: 401, code: "unauthorized",
			fields: map[string]string{"error.type": "authentication_error"}},
		{name: "models without credentials", event: "get-v1-models.json", edit: withoutAuthorizer(""), status: 401, code: "unauthorized"},
		{name: "chat completion with an unknown model", event: chat, edit: withBodyField(t, "model", "gpt-imaginary"), status: 404, code: "model_not_found",
			fields: map[string]string{"error.type": "not_found_error"}},
		{name: "chat completion on a disabled operation", event: chat, edit: withBodyField(t, "model", "helix/email_analysis"), status: 403, code: "operation_disabled",
			fields: map[string]string{"error.type": "permission_error"}},
		{name: "chat completion pinned to an operation", event: chat, edit: withBodyField(t, "model", "helix/analytics-summary"), status: 200,
			fields: map[string]string{"model": "gemini_flash", "object": "chat.completion"}},
		{name: "chat completion pinned to a model", event: chat, edit: withBodyField(t, "model", "claude"), status: 200,
			fields: map[string]string{"model": "claude"}},
		{name: "chat completion without messages", event: chat, edit: body(`{"model":"auto","messages":[]}`), status: 400, code: "missing_field",
			fields: map[string]string{"error.type": "invalid_request_error", "error.param": "messages"}},
		{name: "chat completion with streaming", event: chat, edit: withBodyField(t, "stream", true), status: 400, code: "unsupported_parameter",
			fields: map[string]string{"error.param": "stream"}},
		{name: "chat completion with a misspelt parameter", event: chat, edit: withBodyField(t, "max_token", 10), status: 400, code: "unknown_field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			payload := modified(t, tc.event, tc.edit)
			body := jsonBody(t, invoke(t, lambdaHandler(newBase(t)), payload), tc.status)
			if tc.code != "" {
				if got := errorCode(body); got != tc.code {
					t.Errorf("error.code = %q, want %q; body %v", got, tc.code, body)
				}
			}
			wantFields(t, body, tc.fields)
		})
	}
}

// TestRouteUpdateChangesRouting runs two sample events against one database: the admin's route
// update is what the next routing decision uses.
func TestRouteUpdateChangesRouting(t *testing.T) {
	h := lambdaHandler(newBase(t))
	raw, _ := loadEvent(t, "post-ai-router-route.json")
	before := jsonBody(t, invoke(t, h, raw), 200)
	wantFields(t, before, map[string]string{"max_output_tokens": "1024"})

	update := modified(t, "put-admin-route.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Body = `{"primary_model":"gemini_flash","fallback_model":"deepseek","max_output_tokens":2048}`
	})
	jsonBody(t, invoke(t, h, update), 200)

	after := jsonBody(t, invoke(t, h, raw), 200)
	wantFields(t, after, map[string]string{
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
	on := jsonBody(t, e.send(t, "put-admin-toggle.json", maintenance(true)), 200)
	wantFields(t, on, map[string]string{"key": "ENABLE_MAINTENANCE_MODE", "enabled": "true"})

	for _, name := range []string{composeEvent, "post-intelligence-task-prioritize.json", "post-v1-chat-completions.json",
		"put-admin-route.json", "post-admin-approval-approve.json", "post-admin-approval-reject.json"} {
		if code := errorCode(jsonBody(t, e.send(t, name, nil), 503)); code != "maintenance" {
			t.Errorf("%s in maintenance: error.code %q, want maintenance", name, code)
		}
	}
	// Reads, the routing decision (a read) and the switch still work.
	for _, name := range []string{"get-admin-routes.json", "get-admin-toggles.json", "get-admin-approvals.json", "get-v1-models.json", "post-ai-router-route.json"} {
		jsonBody(t, e.send(t, name, nil), 200)
	}
	toggles := jsonBody(t, e.send(t, "get-admin-toggles.json", nil), 200)
	for _, tg := range objects(t, toggles, "toggles") {
		if tg["key"] == "ENABLE_MAINTENANCE_MODE" {
			wantFields(t, tg, map[string]string{"enabled": "true", "updated_by": "admin-user"})
		}
	}
	// Another switch can be flipped too (e.g. to route around a provider during the incident).
	jsonBody(t, e.send(t, "put-admin-toggle.json", nil), 200)

	off := jsonBody(t, e.send(t, "put-admin-toggle.json", maintenance(false)), 200)
	wantFields(t, off, map[string]string{"key": "ENABLE_MAINTENANCE_MODE", "enabled": "false"})
	resp := e.send(t, composeEvent, nil)
	wantIntelMeta(t, e, resp, jsonBody(t, resp, 200), "email-compose", "deepseek")
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
	intel := jsonBody(t, e.send(t, composeEvent, nil), 402)
	if code := errorCode(intel); code != "budget_exceeded" {
		t.Errorf("intelligence: error.code %q, want budget_exceeded", code)
	}
	chat := jsonBody(t, e.send(t, "post-v1-chat-completions.json", nil), 402)
	wantFields(t, chat, map[string]string{"error.code": "budget_exceeded", "error.type": "insufficient_quota"})

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
