package main

// These tests push the sample events in events/budget through the function exactly as the Lambda
// runtime would: the JSON payload goes to lambda.NewHandler(...).Invoke, the handler runs against
// a fresh, migrated and seeded Postgres database, and the returned JSON is read back as an
// API Gateway v2 response.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

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
	eventDir   = "../../events/budget"
	testSecret = "budget-lambda-test-secret-0123456789abcdef"
	testIssuer = "https://auth.example.com/"
	testAud    = "helix-api"
)

// The function's routes; every one needs a sample event and a route in template.yaml.
var wantRoutes = []string{
	"GET /admin/budgets/{user_id}",
	"GET /ai-router/budget",
	"PUT /admin/budgets/{user_id}",
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
	return lambda.NewHandler(lambdaio.HTTPHandler(newHandler(base), base.Log))
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

// field walks a dotted path ("error.code") and renders the value: numbers exactly as the
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
	if tmpl := templateRoutes(t, "BudgetFunction"); !slices.Equal(tmpl, wantRoutes) {
		t.Errorf("template.yaml routes %v to BudgetFunction, want %v", tmpl, wantRoutes)
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

// wantDefaultDay checks a user's untouched day: the default $50 limit and $25 warning, nothing
// spent, and a reset at the next UTC midnight after the reported date.
func wantDefaultDay(t *testing.T, body map[string]any, user string) {
	t.Helper()
	wantFields(t, body, map[string]string{
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
	date, err := time.Parse(time.DateOnly, field(t, body, "date"))
	if err != nil {
		t.Fatalf("date: %v", err)
	}
	if d := time.Since(date); d < 0 || d > 48*time.Hour {
		t.Errorf("date %s is not today (UTC)", date.Format(time.DateOnly))
	}
	resets, err := time.Parse(time.RFC3339, field(t, body, "resets_at"))
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
		"put-admin-budget.json": func(t *testing.T, body map[string]any) {
			wantFields(t, body, map[string]string{
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
	for _, name := range eventFiles(t) {
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no check for %s: add one", name)
			}
			raw, _ := loadEvent(t, name)
			resp := invoke(t, lambdaHandler(newBase(t)), raw)
			if resp.Headers["X-Request-Id"] == "" {
				t.Errorf("no X-Request-Id header")
			}
			check(t, jsonBody(t, resp, 200))
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
	cases := []struct {
		name   string
		event  string
		edit   func(*events.APIGatewayV2HTTPRequest)
		status int
		code   string            // error.code, for failures
		fields map[string]string // checked on success
	}{
		{name: "admin read without the role", event: "get-admin-budget.json", edit: noRole, status: 403, code: "forbidden"},
		{name: "admin update without the role", event: put, edit: noRole, status: 403, code: "forbidden"},
		{name: "another user's budget without the role", event: get, edit: query("user_id=someone-else", false), status: 403, code: "forbidden"},
		{name: "another user's budget as admin", event: get, edit: query("user_id=someone-else", true), status: 200,
			fields: map[string]string{"user_id": "someone-else", "daily_limit": "50"}},
		{name: "own budget named in the query", event: get, edit: query("user_id=test-user", false), status: 200,
			fields: map[string]string{"user_id": "test-user"}},
		{name: "authorizer claims without sub", event: get, status: 401, code: "unauthorized",
			edit: func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.RequestContext.Authorizer.JWT.Claims, "sub") }},
		{name: "no authorizer and no token", event: get, edit: withoutAuthorizer(""), status: 401, code: "unauthorized"},
		{name: "no authorizer, valid HS256 token", event: get, status: 200,
			edit:   withoutAuthorizer(bearer(t, "token-user", nil, time.Hour, now)),
			fields: map[string]string{"user_id": "token-user", "daily_limit": "50", "status": "ok"}},
		{name: "no authorizer, admin HS256 token on an admin update", event: put, status: 200,
			edit:   withoutAuthorizer(bearer(t, "token-admin", map[string]any{"role": "admin"}, time.Hour, now)),
			fields: map[string]string{"user_id": "test-user", "daily_limit": "100"}},
		{name: "no authorizer, HS256 token without the role on an admin update", event: put, status: 403, code: "forbidden",
			edit: withoutAuthorizer(bearer(t, "token-user", nil, time.Hour, now))},
		{name: "no authorizer, expired token", event: get, status: 401, code: "unauthorized",
			edit: withoutAuthorizer(bearer(t, "token-user", nil, time.Minute, now.Add(-time.Hour)))},
		{name: "no authorizer, token signed with another secret", event: get, status: 401, code: "unauthorized",
			edit: withoutAuthorizer(forged(t))},
		{name: "malformed JSON", event: put, edit: body(`{"daily_limit":100,`), status: 400, code: "malformed_json"},
		{name: "empty object", event: put, edit: body(`{}`), status: 400, code: "missing_field"},
		{name: "unknown field", event: put, edit: body(`{"daily_limit":100,"warning_treshold":50}`), status: 400, code: "unknown_field"},
		{name: "amount as a string", event: put, edit: body(`{"daily_limit":"100"}`), status: 400, code: "invalid_type"},
		{name: "warning above the limit", event: put, edit: body(`{"daily_limit":10,"warning_threshold":20}`), status: 400, code: "invalid_field"},
		{name: "negative limit", event: put, edit: body(`{"daily_limit":-1}`), status: 400, code: "invalid_field"},
		{name: "limit beyond the sanity cap", event: put, edit: body(`{"daily_limit":1000000}`), status: 400, code: "invalid_field"},
		{name: "base64-encoded body", event: put, status: 200,
			edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.Body = base64.StdEncoding.EncodeToString([]byte(ev.Body))
				ev.IsBase64Encoded = true
			},
			fields: map[string]string{"daily_limit": "100", "warning_threshold": "50"}},
		{name: "isBase64Encoded with a body that is not base64", event: put, status: 400, code: "malformed_event",
			edit: func(ev *events.APIGatewayV2HTTPRequest) { ev.IsBase64Encoded = true }},
		{name: "unknown route", event: get, status: 404, code: "not_found",
			edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
				ev.RawPath, ev.RequestContext.HTTP.Path = "/ai-router/budgets", "/ai-router/budgets"
			}},
		{name: "wrong method", event: get, status: 405, code: "method_not_allowed",
			edit: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RouteKey, ev.RequestContext.RouteKey = "$default", "$default"
				ev.RequestContext.HTTP.Method = "POST"
			}},
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

// TestLimitUpdateIsWhatTheUserSees runs sample events against one database: after the admin's
// update, the user's own budget and the admin view both show the new limits, and another user
// keeps the defaults.
func TestLimitUpdateIsWhatTheUserSees(t *testing.T) {
	h := lambdaHandler(newBase(t))
	put, _ := loadEvent(t, "put-admin-budget.json")
	jsonBody(t, invoke(t, h, put), 200)

	want := map[string]string{"user_id": "test-user", "daily_limit": "100", "warning_threshold": "50", "remaining": "100", "status": "ok"}
	own, _ := loadEvent(t, "get-budget.json")
	wantFields(t, jsonBody(t, invoke(t, h, own), 200), want)
	admin, _ := loadEvent(t, "get-admin-budget.json")
	wantFields(t, jsonBody(t, invoke(t, h, admin), 200), want)

	other := modified(t, "get-budget.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RequestContext.Authorizer.JWT.Claims["sub"] = "other-user"
	})
	wantDefaultDay(t, jsonBody(t, invoke(t, h, other), 200), "other-user")

	// Only the warning changes; the limit set before stays.
	warnOnly := modified(t, "put-admin-budget.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Body = `{"warning_threshold":80}`
	})
	wantFields(t, jsonBody(t, invoke(t, h, warnOnly), 200), map[string]string{"daily_limit": "100", "warning_threshold": "80"})
}

// TestMaintenanceMode: with ENABLE_MAINTENANCE_MODE on, from the feature_toggles table (set by
// the route function's toggle endpoint) or from the environment (a deploy-time override), limit
// updates answer 503 maintenance while every read still works.
func TestMaintenanceMode(t *testing.T) {
	for _, source := range []string{"table", "environment"} {
		t.Run(source, func(t *testing.T) {
			base := newBase(t)
			if source == "table" {
				if _, err := base.Pool.Exec(t.Context(),
					`UPDATE feature_toggles SET enabled = true WHERE toggle_key = 'ENABLE_MAINTENANCE_MODE'`); err != nil {
					t.Fatal(err)
				}
			} else {
				base.ToggleEnv = map[string]bool{"ENABLE_MAINTENANCE_MODE": true}
			}
			h := lambdaHandler(base)
			put, _ := loadEvent(t, "put-admin-budget.json")
			if code := errorCode(jsonBody(t, invoke(t, h, put), 503)); code != "maintenance" {
				t.Errorf("limit update in maintenance: error.code %q, want maintenance", code)
			}
			for _, name := range []string{"get-budget.json", "get-admin-budget.json"} {
				raw, _ := loadEvent(t, name)
				wantDefaultDay(t, jsonBody(t, invoke(t, h, raw), 200), "test-user")
			}
		})
	}
}
