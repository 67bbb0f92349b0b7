package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/infra/devenv"
	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/httpapi/openapi/openapitest"
	"github.com/helixhq/helix/shared/llm/providers"
	"github.com/helixhq/helix/shared/queue/inproc"
	"github.com/helixhq/helix/shared/synthesis"
)

// Every route the dev server serves is in the OpenAPI document, and every operation of the
// document is served: the server's registered patterns and the document's paths, matched the
// way net/http's ServeMux matches them.
func TestOpenAPIRoutesAreServed(t *testing.T) {
	ctx := t.Context()
	a, err := httpapp.Boot(ctx, app.Options{Function: "dev", Environ: []string{"DATABASE_URL=" + pg.NewDatabase(t)},
		Defaults: devenv.Defaults(), LogOut: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Pool.Close()
	registry, err := providers.New(ctx, a.Config.Providers, providers.NewHTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	queue := inproc.New(1, func(context.Context, synthesis.Job) error { return nil }, a.Log)
	defer queue.Close()
	srv, closeServer := newServer(a, registry, queue)
	defer closeServer()
	routes := srv.Routes()

	mux := http.NewServeMux()
	for _, p := range routes {
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	served := map[string]bool{}
	for _, op := range openapitest.Load(t).Operations() {
		// A concrete path for the template: every {param} becomes a value.
		concrete := pathParam.ReplaceAllString(op.Path, "p1")
		req, _ := http.NewRequest(op.Method, "http://127.0.0.1"+concrete, nil)
		_, pattern := mux.Handler(req)
		switch {
		case pattern == "":
			t.Errorf("%s is in openapi.yaml but the dev server does not serve it", op.Pattern())
			continue
		case normalize(pattern) != op.Pattern() && !strings.Contains(pattern, "...}"):
			t.Errorf("%s is in openapi.yaml but the dev server serves that path as %s", op.Pattern(), pattern)
		}
		served[pattern] = true
	}
	for _, p := range routes {
		if !served[p] {
			t.Errorf("the dev server serves %s, which openapi.yaml does not describe", p)
		}
	}
	if len(routes) < 50 {
		t.Errorf("only %d routes registered", len(routes))
	}
}

// normalize writes a ServeMux pattern as an OpenAPI path: {id...} is {id}.
func normalize(pattern string) string { return strings.ReplaceAll(pattern, "...}", "}") }

// call is one request of TestOpenAPIRealResponses and what it expects.
type call struct {
	name, method, target, token, body string
	header                            map[string]string
	// want is the status expected; 0 accepts any declared status but 500.
	want int
	// invalid marks a request the document must refuse (a bad body, on purpose).
	invalid bool
}

// The dev server's real responses match the document: at least one request per operation (the
// sample events' requests, with real ids where they need one), and error responses.
func TestOpenAPIRealResponses(t *testing.T) {
	spec := openapitest.Load(t)
	base := startDevServer(t)
	env := devenv.Defaults()
	tokens := apitest.Tokens{Secret: env["HELIX_JWT_SECRET"], Issuer: env["HELIX_JWT_ISSUER"], Audience: env["HELIX_JWT_AUDIENCE"]}
	user := tokens.Token(t, "alice", nil)
	admin := tokens.Token(t, "ops", map[string]any{"role": "admin"})
	adminOps := map[string]bool{}
	for _, op := range spec.Operations() {
		adminOps[op.Pattern()] = op.Admin
	}
	covered := map[string]bool{}
	statuses := map[int]int{}

	do := func(t *testing.T, c call) (int, []byte) {
		t.Helper()
		var body io.Reader = http.NoBody
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req, err := http.NewRequest(c.method, base+c.target, body)
		if err != nil {
			t.Fatal(err)
		}
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case c.want != 0 && res.StatusCode != c.want:
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.target, res.StatusCode, c.want, b)
		case c.want == 0 && res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable:
			t.Errorf("%s %s: %d: %s", c.method, c.target, res.StatusCode, b)
		}
		statuses[res.StatusCode]++
		t.Logf("%s %s → %d", c.method, c.target, res.StatusCode)
		// Validate the request as sent, then the response to it.
		check, _ := http.NewRequest(c.method, base+c.target, strings.NewReader(c.body))
		check.Header = req.Header.Clone()
		if check.Header.Get("Authorization") == "" {
			// Security is checked on the request side only where a token was sent; a refusal
			// without one is what is under test here.
			check.Header.Set("Authorization", "Bearer unchecked")
		}
		switch errs := spec.RequestErrors(check); {
		case c.invalid && len(errs) == 0:
			t.Errorf("%s %s %s: the document accepts a request the server refuses", c.method, c.target, c.body)
		case !c.invalid:
			for _, msg := range errs {
				t.Errorf("%s %s request: %s", c.method, c.target, msg)
			}
		}
		check.Body = io.NopCloser(strings.NewReader(c.body))
		res.Body = io.NopCloser(bytes.NewReader(b))
		for _, msg := range spec.ResponseErrors(check, res) {
			t.Errorf("%s %s → %d %s\n  response: %s", c.method, c.target, res.StatusCode, truncate(b), msg)
		}
		if op := operationOf(spec.Operations(), c.method, req.URL.Path); op != "" {
			covered[op] = true
		}
		return res.StatusCode, b
	}

	// A session of alice's, for the chat events (whose session id is an example's).
	_, b := do(t, call{method: "POST", target: "/chat/sessions", token: user, body: `{"title":"OpenAPI"}`, want: http.StatusCreated})
	var session struct{ ID string }
	if err := json.Unmarshal(b, &session); err != nil || session.ID == "" {
		t.Fatalf("session: %s (%v)", b, err)
	}
	do(t, call{method: "POST", target: "/chat/sessions", token: user, want: http.StatusCreated}) // no body

	// What no event covers, and error responses.
	for _, c := range []call{
		{name: "health", method: "GET", target: "/healthz", want: 200},
		{name: "openapi", method: "GET", target: "/openapi.json", want: 200},
		{name: "optimize", method: "POST", target: "/dev/optimize/run", token: admin, want: 200},
		{name: "optimize as a user", method: "POST", target: "/dev/optimize/run", token: user, want: 403},
		{name: "v1 model auto", method: "GET", target: "/v1/models/auto", token: user, want: 200},
		{name: "v1 model unknown", method: "GET", target: "/v1/models/nope", token: user, want: 404},
		{name: "v1 without token", method: "GET", target: "/v1/models", want: 401},
		{name: "v1 bad body", method: "POST", target: "/v1/chat/completions", token: user, body: `{"model":"auto","messages":[]}`, want: 400, invalid: true},
		{name: "v1 streaming", method: "POST", target: "/v1/chat/completions", token: user,
			body: `{"model":"auto","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`, want: 200},
		{name: "no token", method: "GET", target: "/ai-router/budget", want: 401},
		{name: "bad token", method: "GET", target: "/ai-router/budget", token: "not.a.token", want: 401},
		{name: "malformed body", method: "POST", target: "/ai-router/route", token: user, body: `{"operation_id":`, want: 400, invalid: true},
		{name: "unknown operation", method: "POST", target: "/ai-router/route", token: user, body: `{"operation_id":"nope"}`, want: 404},
		{name: "someone else's budget", method: "GET", target: "/ai-router/budget?user_id=bob", token: user, want: 403},
		{name: "admin route as a user", method: "GET", target: "/admin/routes", token: user, want: 403},
		{name: "unknown session", method: "GET", target: "/chat/sessions/0d9f8a52-3b1e-4c5a-9f2e-7a6b5c4d3e21", token: user, want: 404},
		{name: "unknown model", method: "GET", target: "/admin/models/nope", token: admin, want: 404},
		{name: "unknown toggle", method: "PUT", target: "/admin/toggles/NOPE", token: admin, body: `{"enabled":true}`, want: 404},
		{name: "messages after a seq", method: "GET", target: "/chat/sessions/" + session.ID + "/messages?after=1&limit=5", token: user, want: 200},
	} {
		t.Run(c.name, func(t *testing.T) { do(t, c) })
	}

	// Every sample event, writes before reads before deletes.
	events := sampleEvents(t)
	order := map[string]int{"POST": 0, "PUT": 1, "PATCH": 2, "GET": 3, "DELETE": 4}
	sort.SliceStable(events, func(i, j int) bool { return order[events[i].method] < order[events[j].method] })
	for _, e := range events {
		t.Run("event/"+e.name, func(t *testing.T) {
			tok := user
			if adminOps[e.pattern] || strings.HasPrefix(e.pattern, "GET /monitoring/") {
				tok = admin
			}
			target := strings.ReplaceAll(e.target, "3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b", session.ID)
			do(t, call{method: e.method, target: target, token: tok, body: e.body})
		})
	}

	// An approval, end to end: held (202), listed, approved, used; and an alert rule's life.
	t.Run("approval", func(t *testing.T) {
		do(t, call{method: "PUT", target: "/admin/routes/email-compose", token: admin, body: `{"requires_approval":true}`, want: 200})
		defer do(t, call{method: "PUT", target: "/admin/routes/email-compose", token: admin, body: `{"requires_approval":false}`, want: 200})
		compose := `{"subject":"Budget","recipient_context":"CFO"}`
		_, b := do(t, call{method: "POST", target: "/intelligence/email/compose", token: user, body: compose, want: http.StatusAccepted})
		var held struct {
			ApprovalID string `json:"approval_id"`
		}
		if err := json.Unmarshal(b, &held); err != nil || held.ApprovalID == "" {
			t.Fatalf("held: %s (%v)", b, err)
		}
		do(t, call{method: "GET", target: "/admin/approvals", token: admin, want: 200})
		do(t, call{method: "POST", target: "/admin/approvals/" + held.ApprovalID + "/approve", token: admin, want: 200})
		do(t, call{method: "POST", target: "/admin/approvals/" + held.ApprovalID + "/reject", token: admin, want: http.StatusConflict})
		do(t, call{method: "POST", target: "/intelligence/email/compose", token: user,
			body: `{"subject":"Budget","recipient_context":"CFO","approval_id":"` + held.ApprovalID + `"}`, want: 200})
	})
	t.Run("alert rule", func(t *testing.T) {
		_, b := do(t, call{method: "POST", target: "/admin/alerts", token: admin,
			body: `{"name":"Spend","type":"user_spend","threshold_usd":5,"severity":"critical"}`, want: http.StatusCreated})
		var rule struct{ ID string }
		if err := json.Unmarshal(b, &rule); err != nil || rule.ID == "" {
			t.Fatalf("rule: %s (%v)", b, err)
		}
		do(t, call{method: "PATCH", target: "/admin/alerts/" + rule.ID, token: admin, body: `{"threshold_usd":6,"status":"disabled"}`, want: 200})
		do(t, call{method: "DELETE", target: "/admin/alerts/" + rule.ID, token: admin, want: http.StatusNoContent})
		do(t, call{method: "PATCH", target: "/admin/alerts/not-a-uuid", token: admin, body: `{"threshold":1}`, want: 400, invalid: true})
	})

	// Maintenance mode: writes answer 503 maintenance; the document still needs no token.
	t.Run("maintenance", func(t *testing.T) {
		do(t, call{method: "PUT", target: "/admin/toggles/ENABLE_MAINTENANCE_MODE", token: admin, body: `{"enabled":true}`, want: 200})
		defer do(t, call{method: "PUT", target: "/admin/toggles/ENABLE_MAINTENANCE_MODE", token: admin, body: `{"enabled":false}`, want: 200})
		// The toggle cache may hold the old value for HELIX_TOGGLES_TTL: wait for the gate.
		for i := 0; ; i++ {
			status, _ := do(t, call{method: "POST", target: "/chat/sessions", token: user})
			if status == http.StatusServiceUnavailable {
				break
			}
			if i == 100 {
				t.Fatal("maintenance mode did not take effect")
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, b := do(t, call{method: "GET", target: "/openapi.json", want: 200})
		var doc struct {
			OpenAPI string `json:"openapi"`
		}
		if err := json.Unmarshal(b, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.1.") {
			t.Errorf("GET /openapi.json: openapi %q (%v)", doc.OpenAPI, err)
		}
	})

	t.Logf("responses by status: %v", statuses)
	if statuses[http.StatusOK]+statuses[http.StatusCreated] < 40 {
		t.Errorf("only %d successful responses: %v", statuses[http.StatusOK]+statuses[http.StatusCreated], statuses)
	}
	for _, op := range spec.Operations() {
		if !covered[op.Pattern()] {
			t.Errorf("no request covered %s", op.Pattern())
		}
	}
}

// startDevServer runs the dev server in process on a fresh database and returns its URL.
func startDevServer(t *testing.T) string {
	t.Helper()
	port := strconv.Itoa(freePort(t))
	var out, announce lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"DATABASE_URL=" + pg.NewDatabase(t), "PORT=" + port}, &out, &announce)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	for i := 0; !strings.Contains(announce.String(), "running at"); i++ {
		if i == 300 {
			t.Fatalf("no announcement after 30 s:\n%s", announce.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "http://127.0.0.1:" + port
}

// sampleEvent is the HTTP request of one file of events/.
type sampleEvent struct {
	name, pattern, method, target, body string
}

func sampleEvents(t *testing.T) []sampleEvent {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []sampleEvent
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			RouteKey       string `json:"routeKey"`
			RawPath        string `json:"rawPath"`
			RawQueryString string `json:"rawQueryString"`
			Body           string `json:"body"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if e.RouteKey == "" {
			continue
		}
		method, _, _ := strings.Cut(e.RouteKey, " ")
		target := e.RawPath
		if e.RawQueryString != "" {
			target += "?" + e.RawQueryString
		}
		out = append(out, sampleEvent{name: filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f),
			pattern: e.RouteKey, method: method, target: target, body: e.Body})
	}
	if len(out) < 50 {
		t.Fatalf("only %d HTTP events", len(out))
	}
	return out
}

// operationOf is the document's operation for a request: the template that matches the path,
// literal segments first.
func operationOf(ops []openapitest.Operation, method, path string) string {
	best, bestLiterals := "", -1
	segs := strings.Split(path, "/")
	for _, op := range ops {
		if op.Method != method {
			continue
		}
		tmpl := strings.Split(op.Path, "/")
		if len(tmpl) != len(segs) {
			continue
		}
		literals := 0
		ok := true
		for i, s := range tmpl {
			switch {
			case strings.HasPrefix(s, "{"):
			case s == segs[i]:
				literals++
			default:
				ok = false
			}
		}
		if ok && literals > bestLiterals {
			best, bestLiterals = op.Pattern(), literals
		}
	}
	return best
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)
