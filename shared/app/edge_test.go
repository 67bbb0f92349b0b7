package app_test

// Bad bytes at every identifier position of every route: a NUL, invalid UTF-8 or an 8,000-byte
// value in a path segment, a query parameter, a JSON field that names something, a header or the
// token's sub must be answered with a 4xx and a stable code, never reach Postgres as a 500.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/budgetapp"
	"github.com/helixhq/helix/shared/app/routeapp"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/offline"
)

var edgeTokens = apitest.Tokens{
	Secret:   "edge-test-secret-0123456789abcdef-0123",
	Issuer:   "https://auth.helix.test/edge",
	Audience: "helix-edge",
}

// badValue is one kind of bad identifier, in the three encodings a request carries it in.
type badValue struct {
	name string
	raw  string // the bytes themselves
}

var badValues = []badValue{
	{"NUL", "ab\x00cd"},
	{"invalid UTF-8", "ab\xffcd"},
	{"8000 bytes", strings.Repeat("u", 8000)},
}

// pathEscape percent-encodes every byte that is not unreserved, so the server decodes exactly raw.
func pathEscape(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// jsonString puts raw in a JSON string: a NUL as \u0000; other bytes as they are (invalid UTF-8
// stays invalid on the wire, which JSON decoders turn into U+FFFD).
func jsonString(raw string) string {
	return `"` + strings.ReplaceAll(raw, "\x00", `\u0000`) + `"`
}

// position is one place a route takes an identifier from.
type position struct {
	where string // "path", "query", "body", "header"
	name  string
	// request builds the request with the bad value in this position: method, path (escaped),
	// body and headers.
	request func(v string) (path, body string, header http.Header)
}

func pathPos(name, tmpl, body string) position {
	return position{"path", name, func(v string) (string, string, http.Header) {
		return strings.Replace(tmpl, "{}", pathEscape(v), 1), body, nil
	}}
}

func queryPos(name, path string) position {
	return position{"query", name, func(v string) (string, string, http.Header) {
		return path + "?" + name + "=" + url.QueryEscape(v), "", nil
	}}
}

func bodyPos(name, path, tmpl string) position {
	return position{"body", name, func(v string) (string, string, http.Header) {
		return path, strings.Replace(tmpl, "{}", jsonString(v), 1), nil
	}}
}

func headerPos(name, path, body string) position {
	return position{"header", name, func(v string) (string, string, http.Header) {
		return path, body, http.Header{name: {v}}
	}}
}

// route is a registered route and where it takes identifiers from; none for routes that take
// none (they are listed so that a new route cannot be forgotten here).
type route struct {
	pattern   string
	positions []position
}

const chat = `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`

var routes = []route{
	{"POST /ai-router/route", []position{
		bodyPos("operation_id", "/ai-router/route", `{"operation_id":{}}`),
		bodyPos("user_id", "/ai-router/route", `{"operation_id":"email-compose","user_id":{}}`),
	}},
	{"GET /ai-router/budget", []position{queryPos("user_id", "/ai-router/budget")}},
	{"GET /admin/budgets/{user_id}", []position{pathPos("user_id", "/admin/budgets/{}", "")}},
	{"PUT /admin/budgets/{user_id}", []position{pathPos("user_id", "/admin/budgets/{}", `{"daily_limit":10}`)}},
	// The audit log's numbers (seq, sizes, limits) come from the path and the query.
	{"GET /admin/audit/entries", []position{queryPos("after", "/admin/audit/entries"), queryPos("limit", "/admin/audit/entries")}},
	{"GET /admin/audit/entries/{seq}/proof", []position{
		pathPos("seq", "/admin/audit/entries/{}/proof", ""), queryPos("size", "/admin/audit/entries/0/proof")}},
	{"GET /admin/audit/consistency", []position{queryPos("from", "/admin/audit/consistency"),
		{"query", "to", func(v string) (string, string, http.Header) {
			return "/admin/audit/consistency?from=1&to=" + url.QueryEscape(v), "", nil
		}}}},
	{"GET /admin/audit/verify", []position{queryPos("from", "/admin/audit/verify")}},
	{"GET /admin/audit/checkpoints", []position{queryPos("limit", "/admin/audit/checkpoints")}},
	// Monitoring: every query value is a number, a date, a grouping or the feed's cursor.
	{"GET /monitoring/operations/realtime", []position{
		queryPos("limit", "/monitoring/operations/realtime"), queryPos("after", "/monitoring/operations/realtime")}},
	{"GET /admin/spend", []position{queryPos("group_by", "/admin/spend"), queryPos("from", "/admin/spend"),
		queryPos("to", "/admin/spend"), queryPos("limit", "/admin/spend")}},
	{"GET /admin/spend/summary", nil},
	{"GET /me/usage", []position{queryPos("group_by", "/me/usage"), queryPos("from", "/me/usage"), queryPos("to", "/me/usage")}},
	{"GET /admin/routes", nil},
	{"PUT /admin/routes/{operation_id}", []position{
		pathPos("operation_id", "/admin/routes/{}", `{"enabled":true}`),
		bodyPos("primary_model", "/admin/routes/email-compose", `{"primary_model":{}}`),
		bodyPos("fallback_model", "/admin/routes/email-compose", `{"fallback_model":{}}`),
	}},
	{"GET /admin/models", nil},
	{"GET /admin/models/{key}", []position{pathPos("key", "/admin/models/{}", "")}},
	{"PUT /admin/models/{key}", []position{
		pathPos("key", "/admin/models/{}", `{"enabled":true}`),
		bodyPos("api_model", "/admin/models/deepseek", `{"api_model":{}}`),
		bodyPos("price_version", "/admin/models/deepseek", `{"input_usd_per_mtok":1,"price_version":{}}`),
	}},
	// Alert rules: the rule id in the path, the events' cursor and limit; names are free text
	// (checked for length and control characters), not identifiers.
	{"POST /admin/alerts", nil},
	{"POST /admin/alerts/create", nil},
	{"GET /admin/alerts", nil},
	{"GET /admin/alerts/events", []position{queryPos("before", "/admin/alerts/events"), queryPos("limit", "/admin/alerts/events")}},
	{"PATCH /admin/alerts/{id}", []position{pathPos("id", "/admin/alerts/{}", `{"status":"disabled"}`)}},
	{"DELETE /admin/alerts/{id}", []position{pathPos("id", "/admin/alerts/{}", "")}},
	{"GET /admin/approvals", []position{queryPos("status", "/admin/approvals")}},
	{"POST /admin/approvals/{id}/approve", []position{pathPos("id", "/admin/approvals/{}/approve", "")}},
	{"POST /admin/approvals/{id}/reject", []position{pathPos("id", "/admin/approvals/{}/reject", "")}},
	{"GET /admin/recommendations", []position{queryPos("status", "/admin/recommendations"), queryPos("limit", "/admin/recommendations")}},
	{"POST /admin/recommendations/{id}/approve", []position{pathPos("id", "/admin/recommendations/{}/approve", "")}},
	{"POST /admin/recommendations/{id}/reject", []position{pathPos("id", "/admin/recommendations/{}/reject", "")}},
	{"GET /admin/toggles", nil},
	{"PUT /admin/toggles/{key}", []position{pathPos("key", "/admin/toggles/{}", `{"enabled":false}`)}},
	{"POST /v1/chat/completions", []position{
		bodyPos("model", "/v1/chat/completions", `{"model":{},"messages":[{"role":"user","content":"hi"}]}`),
		headerPos("X-Helix-Approval-Id", "/v1/chat/completions", chat),
	}},
	{"GET /v1/models", nil},
	{"GET /v1/models/{id...}", []position{pathPos("id", "/v1/models/{}", "")}},
	{"GET /healthz", nil},
}

// The intelligence operations all take the same envelope identifier.
func intelligenceRoutes() []route {
	ops := map[string]string{
		"/email/compose":     `{"subject":"s","recipient_context":"c","approval_id":{}}`,
		"/email/classify":    `{"body":"b","approval_id":{}}`,
		"/email/respond":     `{"original":{"body":"b"},"approval_id":{}}`,
		"/calendar/prep":     `{"title":"t","approval_id":{}}`,
		"/calendar/time":     `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z","approval_id":{}}`,
		"/task/prioritize":   `{"tasks":[{"id":"t1","title":"x"}],"approval_id":{}}`,
		"/task/breakdown":    `{"task":"t","approval_id":{}}`,
		"/analytics/summary": `{"metrics":[{"name":"n","value":1}],"approval_id":{}}`,
		"/analytics/anomaly": `{"metric":"m","series":[{"timestamp":"2026-11-20T00:00:00Z","value":1},{"timestamp":"2026-11-21T00:00:00Z","value":2},{"timestamp":"2026-11-22T00:00:00Z","value":3}],"approval_id":{}}`,
	}
	var out []route
	for path, body := range ops {
		out = append(out, route{"POST /intelligence" + path, []position{bodyPos("approval_id", "/intelligence"+path, body)}})
	}
	return out
}

func TestBadIdentifiersAreRefusedAtTheEdge(t *testing.T) {
	a := apitest.NewApp(t, edgeTokens, pg.NewPool(t), apitest.Log(t))
	srv := a.NewServer(slices.Concat(routeapp.MaintenanceExempt, budgetapp.MaintenanceExempt)...)
	routeapp.Mount(a, srv, llm.NewRegistry().WithOfflineFallback(offline.New(), true))
	budgetapp.Mount(a, srv)
	a.MountHealth(srv)
	base := apitest.Serve(t, srv)
	admin := edgeTokens.Token(t, "ops", map[string]any{"role": "admin"})

	all := append(slices.Clone(routes), intelligenceRoutes()...)
	covered := map[string]bool{}
	for _, r := range all {
		covered[r.pattern] = true
	}
	for _, p := range srv.Routes() {
		if !covered[p] {
			t.Errorf("route %s is not in the table: add its identifier positions (or none)", p)
		}
	}

	for _, r := range all {
		method, _, _ := strings.Cut(r.pattern, " ")
		for _, pos := range r.positions {
			for _, bad := range badValues {
				if pos.where == "header" && bad.name == "NUL" {
					continue // HTTP cannot carry it: clients refuse to send it, servers to read it
				}
				t.Run(r.pattern+"/"+pos.where+" "+pos.name+"/"+bad.name, func(t *testing.T) {
					path, body, header := pos.request(bad.raw)
					req := apitest.NewRequest(t, method, base+path, admin, apitest.Body(body))
					for k, v := range header {
						req.Header[k] = v
					}
					res := apitest.Send(t, req)
					if res.Status >= 500 {
						t.Fatalf("status %d: %s", res.Status, res.Body)
					}
					// A JSON body that is not UTF-8 is not JSON: malformed_json. Everything else is
					// an invalid field.
					wantCode := "invalid_field"
					if pos.where == "body" && bad.name == "invalid UTF-8" {
						wantCode = "malformed_json"
					}
					if res.Status != http.StatusBadRequest {
						t.Fatalf("status %d, want 400: %s", res.Status, res.Body)
					}
					var e struct {
						Error struct {
							Code string `json:"code"`
						} `json:"error"`
					}
					res.Decode(t, &e)
					if e.Error.Code != wantCode {
						t.Errorf("error.code %q, want %s: %s", e.Error.Code, wantCode, res.Body)
					}
				})
			}
		}
	}
}

// hs256 signs a token whose payload is the given JSON, byte for byte (SignHS256 would
// re-encode, and could not carry every kind of bad sub).
func hs256(secret, payload string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(head))
	return head + "." + enc.EncodeToString(mac.Sum(nil))
}

// The token's sub is an identifier from outside like any other: a signed token with a bad sub
// gets a 401 that says why, never a 500 from Postgres.
func TestBadTokenSubjectsAreRefused(t *testing.T) {
	a := apitest.NewApp(t, edgeTokens, pg.NewPool(t), apitest.Log(t))
	srv := a.NewServer()
	budgetapp.Mount(a, srv)
	base := apitest.Serve(t, srv)
	exp := time.Now().Add(time.Hour).Unix()
	for _, sub := range []struct{ name, json string }{
		{"NUL", `"ab\u0000cd"`},
		{"8000 bytes", `"` + strings.Repeat("s", 8000) + `"`},
		{"empty", `""`},
		{"control character", `"ab\u0007cd"`},
	} {
		t.Run(sub.name, func(t *testing.T) {
			payload := fmt.Sprintf(`{"sub":%s,"iss":%q,"aud":%q,"exp":%d}`, sub.json, edgeTokens.Issuer, edgeTokens.Audience, exp)
			res := apitest.Do(t, http.MethodGet, base+"/ai-router/budget", hs256(edgeTokens.Secret, payload), "")
			body := res.WantErrorBody(t, http.StatusUnauthorized)
			if body.Error.Code != "unauthorized" || !strings.Contains(body.Error.Message, "sub") {
				t.Errorf("error = %+v", body.Error)
			}
			if !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q", res.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// The same signing with a good sub passes, so the refusals above are about the sub.
	payload := fmt.Sprintf(`{"sub":"alice","iss":%q,"aud":%q,"exp":%d}`, edgeTokens.Issuer, edgeTokens.Audience, exp)
	res := apitest.Do(t, http.MethodGet, base+"/ai-router/budget", hs256(edgeTokens.Secret, payload), "")
	res.WantStatus(t, http.StatusOK)
	var day map[string]any
	if err := json.Unmarshal(res.Body, &day); err != nil || day["user_id"] != "alice" {
		t.Fatalf("budget = %s", res.Body)
	}
}
