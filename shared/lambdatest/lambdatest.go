// Package lambdatest pushes API Gateway HTTP API (payload v2) events through a Lambda handler
// exactly as the Lambda runtime would, and reads the answers back: the sample events in events/
// are the requests, lambda.NewHandler(...).Invoke is the transport, and the returned JSON is
// decoded as an API Gateway v2 response.
//
//	fn := lambdatest.Function{Events: "../../events/budget", Template: "../../template.yaml",
//		Resource: "BudgetFunction", Tokens: tokens}
//	raw, _ := fn.Load(t, "get-budget.json")
//	body := lambdatest.JSONBody(t, lambdatest.Invoke(t, handler, raw), 200)
//	lambdatest.WantFields(t, body, map[string]string{"daily_limit": "50"})
//
// It is imported by _test files only: nothing in a deployed function depends on it.
package lambdatest

import (
	"bytes"
	"context"
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
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/httpapp"
)

// Function is a Lambda function under test: where its sample events and its SAM resource are,
// and the tokens its configuration trusts.
type Function struct {
	Events   string // the folder of its sample events, one *.json per route
	Template string // the SAM template that routes API Gateway to it
	Resource string // its resource in Template, e.g. "BudgetFunction"
	Tokens   apitest.Tokens
}

// NewApp builds what httpapp.Boot would over pool, configured with f's tokens. The log is
// discarded: these tests read the function's answers, not its log lines.
func (f Function) NewApp(t testing.TB, pool *pgxpool.Pool) *httpapp.App {
	t.Helper()
	return f.NewAppEnv(t, nil, pool)
}

// NewAppEnv is NewApp with more variables in the function's environment.
func (f Function) NewAppEnv(t testing.TB, env map[string]string, pool *pgxpool.Pool) *httpapp.App {
	t.Helper()
	return apitest.NewAppEnv(t, f.Tokens, env, pool, slog.New(slog.NewJSONHandler(io.Discard, nil)))
}

// EventFiles lists the names of the sample events, sorted.
func (f Function) EventFiles(t testing.TB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(f.Events, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// Load reads a sample event and checks it decodes into the v2 event type with no unknown
// fields (the runtime would silently drop a misspelt key). It returns the file as the payload
// to invoke with, and the decoded event.
func (f Function) Load(t testing.TB, name string) ([]byte, events.APIGatewayV2HTTPRequest) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(f.Events, name))
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

// Modified returns the sample event changed by edit, as a payload.
func (f Function) Modified(t testing.TB, name string, edit func(*events.APIGatewayV2HTTPRequest)) []byte {
	t.Helper()
	_, ev := f.Load(t, name)
	edit(&ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CheckEventFiles checks the sample events are the v2 events API Gateway sends for the
// function's routes, one per route of wantRoutes ("METHOD /path", sorted), and that the template
// routes the same set to the function.
func (f Function) CheckEventFiles(t testing.TB, wantRoutes []string) {
	t.Helper()
	var got []string
	for _, name := range f.EventFiles(t) {
		_, ev := f.Load(t, name)
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
	if tmpl := f.templateRoutes(t); !slices.Equal(tmpl, wantRoutes) {
		t.Errorf("%s routes %v to %s, want %v", filepath.Base(f.Template), tmpl, f.Resource, wantRoutes)
	}
}

// matchesPattern reports whether path fits an API Gateway route pattern with {name} segments
// whose values are the event's path parameters.
func matchesPattern(pattern, path string, params map[string]string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	// A greedy last parameter ({id+}) takes the rest of the path, slashes included.
	if last := ps[len(ps)-1]; strings.HasSuffix(last, "+}") && len(xs) >= len(ps) {
		xs = append(xs[:len(ps)-1], strings.Join(xs[len(ps)-1:], "/"))
		ps[len(ps)-1] = strings.TrimSuffix(last, "+}") + "}"
	}
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

// templateRoutes lists "METHOD /path" for the HttpApi events of f's resource in the template.
func (f Function) templateRoutes(t testing.TB) []string {
	t.Helper()
	raw, err := os.ReadFile(f.Template)
	if err != nil {
		t.Fatal(err)
	}
	// The function's block runs from "  <Name>:" to the next resource at the same indentation.
	block := regexp.MustCompile(`(?ms)^  ` + regexp.QuoteMeta(f.Resource) + `:\n(.*?)(?:^  \S|\z)`).FindSubmatch(raw)
	if block == nil {
		t.Fatalf("%s has no resource %s", filepath.Base(f.Template), f.Resource)
	}
	var routes []string
	for _, m := range regexp.MustCompile(`Path: (\S+)\s+Method: (\S+)`).FindAllSubmatch(block[1], -1) {
		routes = append(routes, string(m[2])+" "+string(m[1]))
	}
	slices.Sort(routes)
	return routes
}

// Bearer is an Authorization header value with a token f trusts, for sub with extra claims
// (nil for none), issued at now and valid for ttl: a past now and a short ttl make it expired.
func (f Function) Bearer(t testing.TB, sub string, claims map[string]any, ttl time.Duration, now time.Time) string {
	t.Helper()
	spec := f.Tokens.Spec(sub, claims)
	spec.TTL, spec.Now = ttl, now
	return "Bearer " + apitest.Sign(t, spec)
}

// Forged is an Authorization header value with a well-formed admin token for the right issuer
// and audience, signed with another secret.
func (f Function) Forged(t testing.TB) string {
	t.Helper()
	spec := f.Tokens.Spec("intruder", map[string]any{"role": "admin"})
	spec.Secret = []byte("some-other-secret-that-is-32-bytes-long")
	return "Bearer " + apitest.Sign(t, spec)
}

// WithoutAuthorizer is an edit for a request that reached the function without API Gateway's
// JWT authorizer (a route without it, or the local dev server), with the Authorization header
// value authorization (none when "").
func WithoutAuthorizer(authorization string) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RequestContext.Authorizer = nil
		delete(ev.Headers, "authorization")
		if authorization != "" {
			ev.Headers["authorization"] = authorization
		}
	}
}

// TokenPlaceholder stands for the bearer token in the Function URL sample events
// ("authorization": "Bearer ${DEV_TOKEN}"): a Function URL has no authorizer, so the function
// verifies the token, and a token written into a file would expire. LoadFunctionURL (and `make
// invoke`, infra/invoke) put a freshly signed one in its place.
const TokenPlaceholder = "${DEV_TOKEN}"

// FunctionURLEvents is the folder, under Events, of the events a streaming Function URL sends the
// function (payload 2.0 without routeKey or authorizer). They are kept apart from the API
// Gateway events, which CheckEventFiles holds to one per route.
const FunctionURLEvents = "function-url"

// LoadFunctionURL reads the Function URL sample event name, checks it decodes into the Function
// URL event type with no unknown fields and has the shape Lambda sends (the path twice, a
// <url-id>.lambda-url.<region>.on.aws domain, an anonymous caller, a request id, the token
// placeholder), and returns it as a payload with authorization in the placeholder's place.
func (f Function) LoadFunctionURL(t testing.TB, name, authorization string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(f.Events, FunctionURLEvents, name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.LambdaFunctionURLRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("%s is not a Function URL event: %v", name, err)
	}
	rc := ev.RequestContext
	switch {
	case ev.Version != "2.0":
		t.Errorf("%s: version %q, want 2.0", name, ev.Version)
	case rc.HTTP.Path != ev.RawPath || rc.HTTP.Method == "":
		t.Errorf("%s: http.path %q, rawPath %q, method %q", name, rc.HTTP.Path, ev.RawPath, rc.HTTP.Method)
	case !regexp.MustCompile(`^[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws$`).MatchString(rc.DomainName) ||
		!strings.HasPrefix(rc.DomainName, rc.DomainPrefix+".lambda-url.") || rc.APIID != rc.DomainPrefix:
		t.Errorf("%s: domain %q (prefix %q, apiId %q) is not a Function URL's", name, rc.DomainName, rc.DomainPrefix, rc.APIID)
	case rc.Authorizer != nil || rc.AccountID != "anonymous":
		t.Errorf("%s: an AuthType NONE URL has no authorizer and an anonymous caller", name)
	case rc.RequestID == "" || rc.TimeEpoch == 0:
		t.Errorf("%s: no requestId or timeEpoch", name)
	case ev.Headers["authorization"] != "Bearer "+TokenPlaceholder:
		t.Errorf("%s: authorization %q, want Bearer %s (headers are lower-case)", name, ev.Headers["authorization"], TokenPlaceholder)
	}
	for k := range ev.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("%s: header %q: Function URLs lower-case header names", name, k)
		}
	}
	if authorization == "" {
		delete(ev.Headers, "authorization")
	} else {
		ev.Headers["authorization"] = authorization
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Streamed is a streaming Function URL answer as the runtime sent it: the prelude's status,
// headers and cookies, then the body.
type Streamed struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Cookies    []string          `json:"cookies"`
	Body       string            `json:"-"`
}

// InvokeStream runs payload through h (a streaming handler) the way the Lambda runtime does, and
// splits what it sends into the prelude and the body (8 zero bytes between them).
func InvokeStream(t testing.TB, h lambda.Handler, payload []byte) Streamed {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	return SplitStream(t, out)
}

// SplitStream splits a streamed answer into its prelude and body.
func SplitStream(t testing.TB, out []byte) Streamed {
	t.Helper()
	prelude, body, ok := bytes.Cut(out, make([]byte, 8))
	if !ok {
		t.Fatalf("not a streamed answer (no prelude): %q", out)
	}
	var s Streamed
	if err := json.Unmarshal(prelude, &s); err != nil || s.StatusCode < 100 {
		t.Fatalf("prelude %q: %v", prelude, err)
	}
	s.Body = string(body)
	return s
}

// Invoke runs payload through h the way the Lambda runtime does and decodes the API Gateway
// response.
func Invoke(t testing.TB, h lambda.Handler, payload []byte) events.APIGatewayV2HTTPResponse {
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

// JSONBody checks the status and that the response is JSON, with error.code and error.message
// on failures, and returns the decoded body (numbers kept as written).
func JSONBody(t testing.TB, resp events.APIGatewayV2HTTPResponse, status int) map[string]any {
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

// ErrorCode returns error.code of a decoded body ("" when there is none).
func ErrorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// Field walks a dotted path ("budget.remaining") and renders the value: numbers exactly as the
// JSON wrote them, strings as is, null as "null", anything else as JSON.
func Field(t testing.TB, body map[string]any, path string) string {
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

// WantFields checks each dotted path of want renders (as Field renders it) as its value.
func WantFields(t testing.TB, body map[string]any, want map[string]string) {
	t.Helper()
	for path, w := range want {
		if got := Field(t, body, path); got != w {
			t.Errorf("%s = %s, want %s", path, got, w)
		}
	}
}

// Case is a sample event changed to cover what the samples do not, and the answer it must get.
type Case struct {
	Name   string
	Event  string                                // the sample event's file name
	Edit   func(*events.APIGatewayV2HTTPRequest) // the change
	Status int
	Code   string            // error.code, for failures
	Fields map[string]string // dotted paths and their values, as WantFields checks them
}

// RunCases runs each case as a subtest named after it, through the handler newHandler builds
// for that subtest (each on its own database, so that no case sees another's writes).
func (f Function) RunCases(t *testing.T, newHandler func(*testing.T) lambda.Handler, cases []Case) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			payload := f.Modified(t, tc.Event, tc.Edit)
			body := JSONBody(t, Invoke(t, newHandler(t), payload), tc.Status)
			if tc.Code != "" {
				if got := ErrorCode(body); got != tc.Code {
					t.Errorf("error.code = %q, want %q; body %v", got, tc.Code, body)
				}
			}
			WantFields(t, body, tc.Fields)
		})
	}
}
