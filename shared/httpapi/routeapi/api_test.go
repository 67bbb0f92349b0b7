package routeapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/auth"
)

// The issue's example, by an admin for another user: every field a client relies on.
func TestRouteIssueExample(t *testing.T) {
	e := newRouteEnv(t)
	res := e.route(t, e.ops, `{"operation_id":"email-compose","user_id":"test-user","estimated_tokens":100}`)
	res.WantStatus(t, http.StatusOK)

	raw := res.object(t)
	for _, k := range []string{"operation_id", "model", "fallback_model", "estimated_cost_usd", "requires_approval", "budget"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("response has no %q: %s", k, res.Body)
		}
	}
	if _, ok := raw["approval_reason"]; ok {
		t.Errorf("approval_reason present without approval: %s", res.Body)
	}
	b, _ := raw["budget"].(map[string]any)
	for k, want := range map[string]string{"daily_limit": "50", "current_spend": "0", "remaining": "50"} {
		if got, ok := b[k].(json.Number); !ok || got.String() != want {
			t.Errorf("budget.%s = %v, want the JSON number %s", k, b[k], want)
		}
	}

	var d routeDecision
	res.DecodeNumbers(t, &d)
	if d.OperationID != "email-compose" || d.OperationName != "Email compose" {
		t.Errorf("operation = %q %q", d.OperationID, d.OperationName)
	}
	if d.Model != "deepseek" || d.Provider != "deepseek" || d.APIModel != "deepseek-chat" || d.PriceVersion != "deepseek-v3.2@2026-11" {
		t.Errorf("model = %s/%s/%s/%s", d.Model, d.Provider, d.APIModel, d.PriceVersion)
	}
	if deref(d.FallbackModel) != "gemini_flash" {
		t.Errorf("fallback_model = %s, want gemini_flash", deref(d.FallbackModel))
	}
	if want := []string{"deepseek", "gemini_flash", "claude"}; !reflect.DeepEqual(d.FailoverChain, want) {
		t.Errorf("failover_chain = %v, want %v", d.FailoverChain, want)
	}
	// 100 × $0.28/1M + 350 (the operation's average output) × $0.42/1M = $0.000028 + $0.000147.
	if d.EstimatedCostUSD != "0.000175" {
		t.Errorf("estimated_cost_usd = %s, want 0.000175", d.EstimatedCostUSD)
	}
	// Worst case is the dearest model of the chain at max_output_tokens: Claude, 100 × $1/1M +
	// 1024 × $5/1M.
	// 100 × $2 (Claude's dearest input, a 1-hour cache write) + 1024 × $5, per 1M.
	if d.WorstCaseCostUSD != "0.00532" {
		t.Errorf("worst_case_cost_usd = %s, want 0.00532", d.WorstCaseCostUSD)
	}
	if d.EstimatedInputTokens != 100 || d.EstimatedOutputTokens != 350 || d.MaxOutputTokens != 1024 {
		t.Errorf("tokens = %d in, %d out, %d max", d.EstimatedInputTokens, d.EstimatedOutputTokens, d.MaxOutputTokens)
	}
	if d.RequiresApproval || d.ApprovalReason != "" || !d.WithinBudget || d.CostCriticality != "LOW" {
		t.Errorf("requires_approval %v (%q), within_budget %v, criticality %s", d.RequiresApproval, d.ApprovalReason, d.WithinBudget, d.CostCriticality)
	}
	if d.Budget.UserID != "test-user" || d.Budget.Reserved != "0" {
		t.Errorf("budget = %+v", d.Budget)
	}
}

// Whose budget a decision checks: the caller's unless an admin names someone else.
func TestRouteUserSelection(t *testing.T) {
	e := newRouteEnv(t)
	e.reserve(t, "bob-1", "bob", 7)
	e.reserve(t, "alice-1", "alice", 3)

	tests := []struct {
		name     string
		token    string
		userJSON string // the user_id member, or "" to omit it
		wantUser string // "" when the request must be refused
		wantRes  string // budget.reserved
	}{
		{"user omits user_id", e.alice, "", "alice", "3"},
		{"user names herself", e.alice, `,"user_id":"alice"`, "alice", "3"},
		{"user names another user", e.alice, `,"user_id":"bob"`, "", ""},
		{"other user names the first", e.bob, `,"user_id":"alice"`, "", ""},
		{"admin omits user_id", e.ops, "", "ops", "0"},
		{"admin names a user", e.ops, `,"user_id":"bob"`, "bob", "7"},
		{"admin names an unknown user", e.ops, `,"user_id":"nobody-yet"`, "nobody-yet", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.route(t, tc.token, `{"operation_id":"email-compose","estimated_tokens":100`+tc.userJSON+`}`)
			if tc.wantUser == "" {
				res.wantError(t, http.StatusForbidden, "forbidden")
				if bytes.Contains(res.Body, []byte(`"budget"`)) {
					t.Errorf("a refused request leaks a budget: %s", res.Body)
				}
				return
			}
			res.WantStatus(t, http.StatusOK)
			var d routeDecision
			res.DecodeNumbers(t, &d)
			if d.Budget.UserID != tc.wantUser || d.Budget.Reserved != json.Number(tc.wantRes) {
				t.Errorf("budget = %+v, want user %s with %s reserved", d.Budget, tc.wantUser, tc.wantRes)
			}
		})
	}
}

// Decisions and estimates for seeded operations: the chain, the tokens used and the exact costs.
func TestRouteEstimates(t *testing.T) {
	e := newRouteEnv(t)
	tests := []struct {
		name          string
		body          string
		model         string
		fallback      string // "" for null
		chain         []string
		in, out, max  int64
		est, worst    string
		criticality   string
		operationName string
	}{
		{
			name:  "omitted estimated_tokens uses avg_input_tokens",
			body:  `{"operation_id":"email-compose"}`,
			model: "deepseek", fallback: "gemini_flash", chain: []string{"deepseek", "gemini_flash", "claude"},
			in: 300, out: 350, max: 1024,
			est: "0.000231", worst: "0.00572", // 300×0.28+350×0.42; 300×2+1024×5 (per 1M; Claude's input at its 1-hour cache-write price)
			criticality: "LOW", operationName: "Email compose",
		},
		{
			name:  "one token",
			body:  `{"operation_id":"email-compose","estimated_tokens":1}`,
			model: "deepseek", fallback: "gemini_flash", chain: []string{"deepseek", "gemini_flash", "claude"},
			in: 1, out: 350, max: 1024,
			est: "0.00014728", worst: "0.005122", // 1×0.28+350×0.42; 1×2+1024×5
			criticality: "LOW", operationName: "Email compose",
		},
		{
			name:  "the largest estimate accepted",
			body:  `{"operation_id":"email-compose","estimated_tokens":10000000}`,
			model: "deepseek", fallback: "gemini_flash", chain: []string{"deepseek", "gemini_flash", "claude"},
			in: 10_000_000, out: 350, max: 1024,
			est: "2.800147", worst: "20.00512",
			criticality: "LOW", operationName: "Email compose",
		},
		{
			name:  "gemini first, deepseek second",
			body:  `{"operation_id":"memory_synthesis","estimated_tokens":1000}`,
			model: "gemini_flash", fallback: "deepseek", chain: []string{"gemini_flash", "deepseek", "claude"},
			in: 1000, out: 600, max: 2048,
			est: "0.00034", worst: "0.01224", // 1000×0.1+600×0.4; 1000×2+2048×5
			criticality: "MEDIUM", operationName: "Memory synthesis",
		},
		{
			name:  "video has neither fallback nor emergency",
			body:  `{"operation_id":"video_understanding"}`,
			model: "gemini_flash", fallback: "", chain: []string{"gemini_flash"},
			in: 8000, out: 500, max: 2048,
			est: "0.001", worst: "0.0016192", // 8000×0.1+500×0.4; 8000×0.1+2048×0.4
			criticality: "MEDIUM", operationName: "Video understanding",
		},
		{
			name:  "high criticality chat",
			body:  `{"operation_id":"chat_message"}`,
			model: "deepseek", fallback: "gemini_flash", chain: []string{"deepseek", "gemini_flash", "claude"},
			in: 1500, out: 400, max: 2048,
			est: "0.000588", worst: "0.01324", // 1500×0.28+400×0.42; 1500×2+2048×5
			criticality: "HIGH", operationName: "Chat message",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.route(t, e.alice, tc.body)
			res.WantStatus(t, http.StatusOK)
			if tc.fallback == "" && !bytes.Contains(res.Body, []byte(`"fallback_model":null`)) {
				t.Errorf("fallback_model is not null: %s", res.Body)
			}
			var d routeDecision
			res.DecodeNumbers(t, &d)
			if d.Model != tc.model || (tc.fallback == "") != (d.FallbackModel == nil) || (d.FallbackModel != nil && *d.FallbackModel != tc.fallback) {
				t.Errorf("model %s, fallback %s; want %s, %q", d.Model, deref(d.FallbackModel), tc.model, tc.fallback)
			}
			if !reflect.DeepEqual(d.FailoverChain, tc.chain) {
				t.Errorf("failover_chain = %v, want %v", d.FailoverChain, tc.chain)
			}
			if d.EstimatedInputTokens != tc.in || d.EstimatedOutputTokens != tc.out || d.MaxOutputTokens != tc.max {
				t.Errorf("tokens = %d/%d/%d, want %d/%d/%d", d.EstimatedInputTokens, d.EstimatedOutputTokens, d.MaxOutputTokens, tc.in, tc.out, tc.max)
			}
			if d.EstimatedCostUSD.String() != tc.est || d.WorstCaseCostUSD.String() != tc.worst {
				t.Errorf("estimated %s, worst case %s; want %s, %s", d.EstimatedCostUSD, d.WorstCaseCostUSD, tc.est, tc.worst)
			}
			if d.CostCriticality != tc.criticality || d.OperationName != tc.operationName {
				t.Errorf("criticality %s, name %q", d.CostCriticality, d.OperationName)
			}
		})
	}
}

// Every bad request gets a 4xx with its stable code.
func TestRouteRejectsBadRequests(t *testing.T) {
	e := newRouteEnv(t)
	long := strings.Repeat("x", 257)
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"unknown operation", `{"operation_id":"no-such-op"}`, 404, "unknown_operation"},
		{"operation ids are case sensitive", `{"operation_id":"Email-Compose"}`, 404, "unknown_operation"},
		{"seeded disabled operation", `{"operation_id":"email_analysis"}`, 403, "operation_disabled"},
		{"speech to text is seeded disabled", `{"operation_id":"audio_transcription"}`, 403, "operation_disabled"},
		{"text to speech is seeded disabled", `{"operation_id":"text_to_speech"}`, 403, "operation_disabled"},
		{"missing operation_id", `{"estimated_tokens":100}`, 400, "missing_field"},
		{"empty operation_id", `{"operation_id":""}`, 400, "missing_field"},
		{"null body", `null`, 400, "missing_field"},
		{"operation_id too long", `{"operation_id":"` + long + `"}`, 400, "invalid_field"},
		{"empty user_id", `{"operation_id":"email-compose","user_id":""}`, 400, "invalid_field"},
		{"user_id too long", `{"operation_id":"email-compose","user_id":"` + strings.Repeat("u", 257) + `"}`, 400, "invalid_field"},
		{"zero tokens", `{"operation_id":"email-compose","estimated_tokens":0}`, 400, "invalid_field"},
		{"negative tokens", `{"operation_id":"email-compose","estimated_tokens":-5}`, 400, "invalid_field"},
		{"too many tokens", `{"operation_id":"email-compose","estimated_tokens":10000001}`, 400, "invalid_field"},
		{"tokens as a string", `{"operation_id":"email-compose","estimated_tokens":"100"}`, 400, "invalid_type"},
		{"fractional tokens", `{"operation_id":"email-compose","estimated_tokens":1.5}`, 400, "invalid_type"},
		{"tokens beyond int64", `{"operation_id":"email-compose","estimated_tokens":99999999999999999999}`, 400, "invalid_type"},
		{"operation_id as a number", `{"operation_id":5}`, 400, "invalid_type"},
		{"user_id as a number", `{"operation_id":"email-compose","user_id":7}`, 400, "invalid_type"},
		{"array body", `[]`, 400, "invalid_type"},
		{"string body", `"email-compose"`, 400, "invalid_type"},
		{"unknown field", `{"operation_id":"email-compose","estimated_token":100}`, 400, "unknown_field"},
		{"malformed JSON", `{"operation_id":`, 400, "malformed_json"},
		{"not JSON", `operation_id=email-compose`, 400, "malformed_json"},
		{"trailing data", `{"operation_id":"email-compose"} {}`, 400, "malformed_json"},
		{"empty body", ``, 400, "empty_body"},
		{"whitespace body", "  \n ", 400, "empty_body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.route(t, e.alice, tc.body).wantError(t, tc.status, tc.code)
		})
	}
}

// Bodies over 64 KiB get 413, whether the client declares the length or streams the body.
func TestRouteBodyLimit(t *testing.T) {
	e := newRouteEnv(t)
	const limit = 64 << 10
	padded := func(n int) string { // a valid request of exactly n bytes
		s := `{"operation_id":"email-compose"}`
		return s + strings.Repeat(" ", n-len(s))
	}
	tests := []struct {
		name   string
		body   string
		status int
	}{
		{"70 KiB", `{"operation_id":"` + strings.Repeat("a", 70<<10) + `"}`, 413},
		{"70 KiB of trailing whitespace", padded(70 << 10), 413},
		{"one byte over", padded(limit + 1), 413},
		{"exactly 64 KiB", padded(limit), 200},
	}
	for _, tc := range tests {
		for _, streamed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s streamed=%v", tc.name, streamed), func(t *testing.T) {
				var body io.Reader = strings.NewReader(tc.body)
				if streamed {
					body = struct{ io.Reader }{body} // hides the length: sent chunked
				}
				res := e.send(t, http.MethodPost, "/ai-router/route", e.alice, body)
				if tc.status == 413 {
					res.wantError(t, 413, "body_too_large")
					return
				}
				res.WantStatus(t, tc.status)
			})
		}
	}
}

// Every endpoint of the route function refuses requests without valid credentials.
func TestRouteAPIAuthentication(t *testing.T) {
	e := newRouteEnv(t)
	now := time.Now()
	spec := func(mod func(*auth.TokenSpec)) string {
		s := rtTokens.Spec("ops", map[string]any{"role": "admin"})
		mod(&s)
		return "Bearer " + apitest.Sign(t, s)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	unsigned := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		b64([]byte(fmt.Sprintf(`{"sub":"ops","role":"admin","iss":%q,"aud":%q,"exp":%d}`, rtTokens.Issuer, rtTokens.Audience, now.Add(time.Hour).Unix()))) + "."
	credentials := []struct {
		name, header string
	}{
		{"no Authorization header", ""},
		{"scheme without token", "Bearer"},
		{"empty token", "Bearer "},
		{"basic auth", "Basic b3BzOmFkbWlu"},
		{"token without scheme", strings.TrimPrefix(spec(func(*auth.TokenSpec) {}), "Bearer ")},
		{"garbage", "Bearer not.a.jwt"},
		{"expired", spec(func(s *auth.TokenSpec) { s.Now = now.Add(-2 * time.Hour) })},
		{"wrong audience", spec(func(s *auth.TokenSpec) { s.Audience = "someone-else" })},
		{"wrong issuer", spec(func(s *auth.TokenSpec) { s.Issuer = "https://evil.example/" })},
		{"wrong secret", spec(func(s *auth.TokenSpec) { s.Secret = []byte("another-secret-of-at-least-32-bytes!!") })},
		{"alg none", "Bearer " + unsigned},
	}
	endpoints := []struct{ method, path, body string }{
		{http.MethodPost, "/ai-router/route", `{"operation_id":"email-compose"}`},
		{http.MethodGet, "/admin/routes", ""},
		{http.MethodPut, "/admin/routes/email-compose", `{"enabled":false}`},
		{http.MethodGet, "/admin/models", ""},
	}
	for _, ep := range endpoints {
		for _, c := range credentials {
			t.Run(ep.method+" "+ep.path+"/"+c.name, func(t *testing.T) {
				var body io.Reader
				if ep.body != "" {
					body = strings.NewReader(ep.body)
				}
				req, err := http.NewRequest(ep.method, e.url+ep.path, body)
				if err != nil {
					t.Fatal(err)
				}
				if c.header != "" {
					req.Header.Set("Authorization", c.header)
				}
				res := rtDo(t, req)
				res.wantError(t, http.StatusUnauthorized, "unauthorized")
				if strings.Contains(string(res.Body), "eyJ") {
					t.Errorf("the error echoes the token: %s", res.Body)
				}
			})
		}
	}
	// None of the refused PUTs disabled the operation.
	e.decision(t, e.alice, `{"operation_id":"email-compose"}`)

	// The scheme is case-insensitive.
	req, _ := http.NewRequest(http.MethodGet, e.url+"/admin/models", nil)
	req.Header.Set("Authorization", "bearer "+e.ops)
	rtDo(t, req).WantStatus(t, http.StatusOK)
}

// The admin rule: the "role" claim, or one of its values, must be exactly "admin".
func TestAdminRoleClaim(t *testing.T) {
	e := newRouteEnv(t)
	tests := []struct {
		name   string
		claims map[string]any
		admin  bool
	}{
		{"role admin", map[string]any{"role": "admin"}, true},
		{"admin among roles", map[string]any{"role": []any{"user", "admin"}}, true},
		{"no role", nil, false},
		{"another role", map[string]any{"role": "user"}, false},
		{"different case", map[string]any{"role": "Admin"}, false},
		{"another claim", map[string]any{"roles": "admin"}, false},
		{"nested", map[string]any{"app_metadata": map[string]any{"role": "admin"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := rtTokens.Token(t, "carol", tc.claims)
			res := e.do(t, http.MethodGet, "/admin/models", tok, "")
			if tc.admin {
				res.WantStatus(t, http.StatusOK)
			} else {
				res.wantError(t, http.StatusForbidden, "forbidden")
			}
			// Admin or not, carol may route for herself; only an admin may route for bob.
			e.route(t, tok, `{"operation_id":"email-compose","user_id":"carol"}`).WantStatus(t, http.StatusOK)
			res = e.route(t, tok, `{"operation_id":"email-compose","user_id":"bob"}`)
			if tc.admin {
				res.WantStatus(t, http.StatusOK)
			} else {
				res.wantError(t, http.StatusForbidden, "forbidden")
			}
		})
	}
}

// Non-admins get 403 from every admin endpoint, and their writes change nothing.
func TestAdminEndpointsForbidUsers(t *testing.T) {
	e := newRouteEnv(t)
	before := e.listRoutes(t)
	endpoints := []struct{ method, path, body string }{
		{http.MethodGet, "/admin/routes", ""},
		{http.MethodPut, "/admin/routes/email-compose", `{"enabled":false}`},
		{http.MethodPut, "/admin/routes/chat_message", `{"primary_model":"claude","fallback_model":null}`},
		{http.MethodPut, "/admin/routes/no-such-op", `{"enabled":false}`},
		{http.MethodPut, "/admin/routes/email-compose", `not json`},
		{http.MethodGet, "/admin/models", ""},
	}
	for _, ep := range endpoints {
		for _, user := range []struct{ name, token string }{{"alice", e.alice}, {"bob", e.bob}} {
			t.Run(user.name+" "+ep.method+" "+ep.path, func(t *testing.T) {
				e.do(t, ep.method, ep.path, user.token, ep.body).wantError(t, http.StatusForbidden, "forbidden")
			})
		}
	}
	if after := e.listRoutes(t); !reflect.DeepEqual(after, before) {
		t.Errorf("routes changed by refused requests:\nbefore %+v\nafter  %+v", before, after)
	}
	if d := e.decision(t, e.alice, `{"operation_id":"chat_message"}`); d.Model != "deepseek" {
		t.Errorf("chat_message routes to %s", d.Model)
	}
}

// Unknown paths and methods get JSON errors too.
func TestRouteAPIUnknownPathsAndMethods(t *testing.T) {
	e := newRouteEnv(t)
	e.do(t, http.MethodGet, "/ai-router/route", e.alice, "").wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	e.do(t, http.MethodDelete, "/admin/routes/email-compose", e.ops, "").wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	e.do(t, http.MethodGet, "/ai-router/nothing-here", e.alice, "").wantError(t, http.StatusNotFound, "not_found")
}

// seededRoute is one row of the design's table of 17 operations.
type seededRoute struct {
	op, primary, fallback, criticality string
	enabled, emergency                 bool
	maxOut, avgIn, avgOut              int64
}

var seededRoutes = []seededRoute{
	{"agent_execution", "deepseek", "gemini_flash", "HIGH", true, true, 4096, 3000, 800},
	{"analytics-anomaly", "deepseek", "gemini_flash", "LOW", true, true, 1024, 1500, 300},
	{"analytics-summary", "gemini_flash", "deepseek", "MEDIUM", true, true, 1024, 2000, 400},
	{"audio_transcription", "speech", "", "MEDIUM", false, false, 4096, 2000, 1500},
	{"calendar-prep", "deepseek", "gemini_flash", "LOW", true, true, 1024, 700, 400},
	{"calendar-time", "gemini_flash", "deepseek", "LOW", true, true, 512, 600, 150},
	{"chat_message", "deepseek", "gemini_flash", "HIGH", true, true, 2048, 1500, 400},
	{"email-classify", "deepseek", "gemini_flash", "LOW", true, true, 256, 800, 80},
	{"email-compose", "deepseek", "gemini_flash", "LOW", true, true, 1024, 300, 350},
	{"email-respond", "deepseek", "gemini_flash", "LOW", true, true, 1024, 900, 300},
	{"email_analysis", "gemini_flash", "deepseek", "LOW", false, true, 1024, 1200, 250},
	{"memory_synthesis", "gemini_flash", "deepseek", "MEDIUM", true, true, 2048, 4000, 600},
	{"sentiment_analysis", "gemini_flash", "deepseek", "LOW", true, true, 256, 400, 60},
	{"task-breakdown", "deepseek", "gemini_flash", "LOW", true, true, 1024, 300, 400},
	{"task-prioritize", "deepseek", "gemini_flash", "LOW", true, true, 1024, 600, 300},
	{"text_to_speech", "speech", "", "LOW", false, false, 4096, 500, 0},
	{"video_understanding", "gemini_flash", "", "MEDIUM", true, false, 2048, 8000, 500},
}

func TestListRoutes(t *testing.T) {
	e := newRouteEnv(t)
	routes := e.listRoutes(t)
	if len(routes) != len(seededRoutes) {
		t.Fatalf("%d routes, want %d", len(routes), len(seededRoutes))
	}
	for i, want := range seededRoutes { // seededRoutes is sorted by operation_id
		got := routes[i]
		if got.OperationID != want.op {
			t.Errorf("routes[%d] = %s, want %s (sorted by operation_id)", i, got.OperationID, want.op)
			continue
		}
		fb := ""
		if got.FallbackModel != nil {
			fb = *got.FallbackModel
			if fb == "" {
				t.Errorf("%s: fallback_model is an empty string, want null", want.op)
			}
		}
		if got.PrimaryModel != want.primary || fb != want.fallback || got.CostCriticality != want.criticality ||
			got.Enabled != want.enabled || got.AllowEmergency != want.emergency {
			t.Errorf("%s = %s/%s %s enabled=%v emergency=%v, want %s/%s %s enabled=%v emergency=%v", want.op,
				got.PrimaryModel, fb, got.CostCriticality, got.Enabled, got.AllowEmergency,
				want.primary, want.fallback, want.criticality, want.enabled, want.emergency)
		}
		if got.MaxOutputTokens != want.maxOut || got.AvgInputTokens != want.avgIn || got.AvgOutputTokens != want.avgOut {
			t.Errorf("%s tokens = %d/%d/%d, want %d/%d/%d", want.op, got.MaxOutputTokens, got.AvgInputTokens, got.AvgOutputTokens, want.maxOut, want.avgIn, want.avgOut)
		}
		if got.RequiresApproval || got.OperationName == "" || got.UpdatedBy != "migration" || got.UpdatedAt.IsZero() {
			t.Errorf("%s = %+v", want.op, got)
		}
	}
	// Routes without a fallback show an explicit null.
	res := e.do(t, http.MethodGet, "/admin/routes", e.ops, "")
	if n := strings.Count(string(res.Body), `"fallback_model":null`); n != 3 {
		t.Errorf("%d null fallbacks, want 3 (video, audio, tts)", n)
	}
}

func TestListModels(t *testing.T) {
	e := newRouteEnv(t)
	res := e.do(t, http.MethodGet, "/admin/models", e.ops, "")
	res.WantStatus(t, http.StatusOK)
	var body struct {
		Models []struct {
			Model        string      `json:"model"`
			Provider     string      `json:"provider"`
			APIModel     string      `json:"api_model"`
			Input        json.Number `json:"input_usd_per_mtok"`
			Output       json.Number `json:"output_usd_per_mtok"`
			Cached       json.Number `json:"cached_input_usd_per_mtok"`
			PriceVersion string      `json:"price_version"`
			Enabled      bool        `json:"enabled"`
			Emergency    bool        `json:"emergency"`
		} `json:"models"`
	}
	res.DecodeNumbers(t, &body)
	type row struct {
		model, provider, apiModel, in, out, cached string
		enabled, emergency                         bool
	}
	want := []row{
		{"claude", "anthropic", "claude-haiku-4-5", "1", "5", "0.1", true, true},
		{"deepseek", "deepseek", "deepseek-chat", "0.28", "0.42", "0.028", true, false},
		{"gemini_flash", "gemini", "gemini-2.5-flash-lite", "0.1", "0.4", "0.01", true, false},
		{"speech", "none", "", "0", "0", "0", false, false},
	}
	if len(body.Models) != len(want) {
		t.Fatalf("%d models, want %d: %s", len(body.Models), len(want), res.Body)
	}
	for i, w := range want {
		m := body.Models[i]
		got := row{m.Model, m.Provider, m.APIModel, m.Input.String(), m.Output.String(), m.Cached.String(), m.Enabled, m.Emergency}
		if got != w {
			t.Errorf("models[%d] = %+v, want %+v", i, got, w)
		}
		if m.PriceVersion == "" {
			t.Errorf("%s has no price_version", m.Model)
		}
	}
}

// Admin route edits take effect on the very next decision of the same server: the catalog
// cache's clock stands still, so only the invalidation can make them visible.
func TestUpdateRoute(t *testing.T) {
	e := newRouteEnv(t)
	// Load the catalog into the cache first.
	if d := e.decision(t, e.alice, `{"operation_id":"email-compose","estimated_tokens":100}`); d.Model != "deepseek" {
		t.Fatalf("model = %s", d.Model)
	}

	t.Run("swap primary and fallback", func(t *testing.T) {
		v := e.putRoute(t, "email-compose", `{"primary_model":"gemini_flash","fallback_model":"deepseek"}`)
		if v.OperationID != "email-compose" || v.PrimaryModel != "gemini_flash" || deref(v.FallbackModel) != "deepseek" {
			t.Errorf("view = %+v", v)
		}
		if !v.Enabled || v.MaxOutputTokens != 1024 || v.CostCriticality != "LOW" || v.AvgInputTokens != 300 || v.UpdatedBy != "ops" {
			t.Errorf("other fields changed: %+v", v)
		}
		d := e.decision(t, e.alice, `{"operation_id":"email-compose","estimated_tokens":100}`)
		if d.Model != "gemini_flash" || deref(d.FallbackModel) != "deepseek" {
			t.Errorf("decision %s -> %s", d.Model, deref(d.FallbackModel))
		}
		if d.EstimatedCostUSD != "0.00015" { // 100×0.1 + 350×0.4 per 1M
			t.Errorf("estimated_cost_usd = %s, want 0.00015", d.EstimatedCostUSD)
		}
		for _, r := range e.listRoutes(t) {
			if r.OperationID == "email-compose" && (r.PrimaryModel != "gemini_flash" || deref(r.FallbackModel) != "deepseek" || r.UpdatedBy != "ops") {
				t.Errorf("listed = %+v", r)
			}
		}
	})

	t.Run("disable and re-enable", func(t *testing.T) {
		v := e.putRoute(t, "email-compose", `{"enabled":false}`)
		if v.Enabled || v.PrimaryModel != "gemini_flash" || deref(v.FallbackModel) != "deepseek" {
			t.Errorf("view = %+v (omitted fields must stay)", v)
		}
		e.route(t, e.alice, `{"operation_id":"email-compose"}`).wantError(t, http.StatusForbidden, "operation_disabled")
		e.route(t, e.ops, `{"operation_id":"email-compose"}`).wantError(t, http.StatusForbidden, "operation_disabled")
		if v := e.putRoute(t, "email-compose", `{"enabled":true}`); !v.Enabled {
			t.Errorf("view = %+v", v)
		}
		e.decision(t, e.alice, `{"operation_id":"email-compose"}`)
	})

	t.Run("enable the seeded disabled email_analysis", func(t *testing.T) {
		e.putRoute(t, "email_analysis", `{"enabled":true}`)
		if d := e.decision(t, e.alice, `{"operation_id":"email_analysis"}`); d.Model != "gemini_flash" || deref(d.FallbackModel) != "deepseek" {
			t.Errorf("decision %s -> %s", d.Model, deref(d.FallbackModel))
		}
	})

	t.Run("requires_approval", func(t *testing.T) {
		if v := e.putRoute(t, "email-classify", `{"requires_approval":true}`); !v.RequiresApproval {
			t.Errorf("view = %+v", v)
		}
		d := e.decision(t, e.alice, `{"operation_id":"email-classify","estimated_tokens":10}`)
		if !d.RequiresApproval || d.ApprovalReason != "operation_requires_approval" {
			t.Errorf("requires_approval %v, reason %q", d.RequiresApproval, d.ApprovalReason)
		}
		e.putRoute(t, "email-classify", `{"requires_approval":false}`)
		if d := e.decision(t, e.alice, `{"operation_id":"email-classify","estimated_tokens":10}`); d.RequiresApproval || d.ApprovalReason != "" {
			t.Errorf("requires_approval %v, reason %q", d.RequiresApproval, d.ApprovalReason)
		}
	})

	t.Run("max_output_tokens", func(t *testing.T) {
		if v := e.putRoute(t, "task-breakdown", `{"max_output_tokens":2000}`); v.MaxOutputTokens != 2000 {
			t.Errorf("view = %+v", v)
		}
		d := e.decision(t, e.alice, `{"operation_id":"task-breakdown","estimated_tokens":100}`)
		// Claude at the new maximum: 100×2 + 2000×5 per 1M.
		if d.MaxOutputTokens != 2000 || d.WorstCaseCostUSD != "0.0102" {
			t.Errorf("max_output_tokens %d, worst case %s", d.MaxOutputTokens, d.WorstCaseCostUSD)
		}
		for _, n := range []string{"1", "1000000"} {
			if v := e.putRoute(t, "task-breakdown", `{"max_output_tokens":`+n+`}`); fmt.Sprint(v.MaxOutputTokens) != n {
				t.Errorf("max_output_tokens = %d, want %s", v.MaxOutputTokens, n)
			}
		}
	})

	t.Run("null fallback removes it, omitted keeps it", func(t *testing.T) {
		res := e.do(t, http.MethodPut, "/admin/routes/calendar-prep", e.ops, `{"fallback_model":null}`)
		res.WantStatus(t, http.StatusOK)
		if !bytes.Contains(res.Body, []byte(`"fallback_model":null`)) {
			t.Errorf("fallback not removed: %s", res.Body)
		}
		if v := e.putRoute(t, "calendar-prep", `{"requires_approval":false}`); v.FallbackModel != nil || v.PrimaryModel != "deepseek" {
			t.Errorf("view = %+v", v)
		}
		// Without a fallback the chain goes straight from the primary to the emergency model.
		d := e.decision(t, e.alice, `{"operation_id":"calendar-prep"}`)
		if want := []string{"deepseek", "claude"}; !reflect.DeepEqual(d.FailoverChain, want) {
			t.Errorf("failover_chain = %v, want %v", d.FailoverChain, want)
		}
		if d.FallbackModel == nil || *d.FallbackModel != d.FailoverChain[1] {
			t.Errorf("fallback_model = %s, chain %v", deref(d.FallbackModel), d.FailoverChain)
		}
		// And a fallback can be set again.
		if v := e.putRoute(t, "calendar-prep", `{"fallback_model":"gemini_flash"}`); deref(v.FallbackModel) != "gemini_flash" {
			t.Errorf("view = %+v", v)
		}
	})

	t.Run("cost_criticality", func(t *testing.T) {
		if v := e.putRoute(t, "email-respond", `{"cost_criticality":"HIGH"}`); v.CostCriticality != "HIGH" {
			t.Errorf("view = %+v", v)
		}
		// HIGH now: an estimate above bob's warning threshold needs approval.
		e.setLimits(t, "bob", 50, 0.0001)
		d := e.decision(t, e.bob, `{"operation_id":"email-respond"}`)
		if d.CostCriticality != "HIGH" || !d.RequiresApproval || d.ApprovalReason != "high_criticality_estimate_above_warning_threshold" {
			t.Errorf("criticality %s, requires_approval %v (%q)", d.CostCriticality, d.RequiresApproval, d.ApprovalReason)
		}
	})

	t.Run("enabling an operation whose model is not served", func(t *testing.T) {
		if v := e.putRoute(t, "audio_transcription", `{"enabled":true}`); !v.Enabled || v.PrimaryModel != "speech" {
			t.Errorf("view = %+v", v)
		}
		e.route(t, e.alice, `{"operation_id":"audio_transcription"}`).wantError(t, http.StatusServiceUnavailable, "no_model_available")
		// The seeded text_to_speech is still disabled.
		e.route(t, e.alice, `{"operation_id":"text_to_speech"}`).wantError(t, http.StatusForbidden, "operation_disabled")
	})

	t.Run("several fields at once", func(t *testing.T) {
		v := e.putRoute(t, "analytics-anomaly", `{"primary_model":"claude","fallback_model":"deepseek","requires_approval":true,"max_output_tokens":300,"cost_criticality":"MEDIUM","enabled":true}`)
		if v.PrimaryModel != "claude" || deref(v.FallbackModel) != "deepseek" || !v.RequiresApproval || v.MaxOutputTokens != 300 || v.CostCriticality != "MEDIUM" || !v.Enabled {
			t.Errorf("view = %+v", v)
		}
		d := e.decision(t, e.alice, `{"operation_id":"analytics-anomaly"}`)
		// Claude is both primary and emergency: it appears once.
		if want := []string{"claude", "deepseek"}; !reflect.DeepEqual(d.FailoverChain, want) {
			t.Errorf("failover_chain = %v, want %v", d.FailoverChain, want)
		}
	})
}

// Refused route edits: status, code, and nothing changed.
func TestUpdateRouteRejects(t *testing.T) {
	e := newRouteEnv(t)
	before := e.listRoutes(t)
	tests := []struct {
		name, op, body string
		status         int
		code           string
	}{
		{"unknown operation", "no-such-op", `{"enabled":false}`, 404, "unknown_operation"},
		{"unknown primary model", "email-compose", `{"primary_model":"gpt-9"}`, 400, "unknown_model"},
		{"unknown fallback model", "email-compose", `{"fallback_model":"gpt-9"}`, 400, "unknown_model"},
		{"primary equals the current fallback", "email-classify", `{"primary_model":"gemini_flash"}`, 400, "invalid_field"},
		{"fallback equals the current primary", "email-classify", `{"fallback_model":"deepseek"}`, 400, "invalid_field"},
		{"fallback equals the new primary", "email-classify", `{"primary_model":"claude","fallback_model":"claude"}`, 400, "invalid_field"},
		{"max_output_tokens 0", "email-compose", `{"max_output_tokens":0}`, 400, "invalid_field"},
		{"max_output_tokens negative", "email-compose", `{"max_output_tokens":-1}`, 400, "invalid_field"},
		{"max_output_tokens too large", "email-compose", `{"max_output_tokens":1000001}`, 400, "invalid_field"},
		{"max_output_tokens as a string", "email-compose", `{"max_output_tokens":"100"}`, 400, "invalid_type"},
		{"max_output_tokens fractional", "email-compose", `{"max_output_tokens":1.5}`, 400, "invalid_type"},
		{"unknown criticality", "email-compose", `{"cost_criticality":"CRITICAL"}`, 400, "invalid_field"},
		{"lower-case criticality", "email-compose", `{"cost_criticality":"high"}`, 400, "invalid_field"},
		{"empty criticality", "email-compose", `{"cost_criticality":""}`, 400, "invalid_field"},
		{"criticality as a number", "email-compose", `{"cost_criticality":2}`, 400, "invalid_type"},
		{"empty fallback string", "email-compose", `{"fallback_model":""}`, 400, "invalid_field"},
		{"fallback as a number", "email-compose", `{"fallback_model":5}`, 400, "invalid_field"},
		{"enabled as a string", "email-compose", `{"enabled":"yes"}`, 400, "invalid_type"},
		{"requires_approval as a number", "email-compose", `{"requires_approval":1}`, 400, "invalid_type"},
		{"null primary", "email-compose", `{"primary_model":null}`, 400, "missing_field"},
		{"empty object", "email-compose", `{}`, 400, "missing_field"},
		{"null body", "email-compose", `null`, 400, "missing_field"},
		{"unknown field", "email-compose", `{"enable":false}`, 400, "unknown_field"},
		{"valid change with an unknown field", "email-compose", `{"enabled":false,"note":"x"}`, 400, "unknown_field"},
		{"malformed JSON", "email-compose", `{"enabled":`, 400, "malformed_json"},
		{"trailing data", "email-compose", `{"enabled":false}{"enabled":true}`, 400, "malformed_json"},
		{"empty body", "email-compose", ``, 400, "empty_body"},
		{"70 KiB body", "email-compose", `{"primary_model":"` + strings.Repeat("d", 70<<10) + `"}`, 413, "body_too_large"},
		{"invalid change on an unknown operation", "no-such-op", `{"max_output_tokens":0}`, 404, "unknown_operation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.do(t, http.MethodPut, "/admin/routes/"+tc.op, e.ops, tc.body).wantError(t, tc.status, tc.code)
		})
	}
	if after := e.listRoutes(t); !reflect.DeepEqual(after, before) {
		t.Errorf("refused edits changed routes:\nbefore %+v\nafter  %+v", before, after)
	}
	e.decision(t, e.alice, `{"operation_id":"email-compose"}`)
}

// Models switched off in ai_models (by SQL, seen after the cache TTL) drop out of the chain.
func TestRouteSkipsUnusableModels(t *testing.T) {
	e := newRouteEnv(t)
	e.decision(t, e.alice, `{"operation_id":"email-compose"}`) // cache the seeded catalog
	steps := []struct {
		name     string
		disabled []string // models disabled in ai_models for this step
		op       string
		chain    []string // nil: no_model_available
		est      string
		worst    string
	}{
		{"primary disabled: the fallback serves", []string{"deepseek"}, "email-compose",
			[]string{"gemini_flash", "claude"}, "0.00015", "0.00532"},
		{"primary disabled, gemini-first op", []string{"gemini_flash"}, "memory_synthesis",
			[]string{"deepseek", "claude"}, "0.001372", "0.01824"},
		{"emergency disabled", []string{"claude"}, "email-compose",
			[]string{"deepseek", "gemini_flash"}, "0.000175", "0.00045808"},
		{"both cheap models disabled: emergency only", []string{"deepseek", "gemini_flash"}, "email-compose",
			[]string{"claude"}, "0.00185", "0.00532"},
		{"video without gemini", []string{"gemini_flash"}, "video_understanding", nil, "", ""},
		{"all back", nil, "email-compose",
			[]string{"deepseek", "gemini_flash", "claude"}, "0.000175", "0.00532"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			disabled := s.disabled
			if disabled == nil {
				disabled = []string{}
			}
			e.execAndExpireCache(t, `UPDATE ai_models SET enabled = NOT (model_key = ANY($1)) WHERE model_key <> 'speech'`, disabled)
			body := `{"operation_id":"` + s.op + `","estimated_tokens":100}`
			if s.op != "email-compose" {
				body = `{"operation_id":"` + s.op + `"}`
			}
			if s.chain == nil {
				e.route(t, e.alice, body).wantError(t, http.StatusServiceUnavailable, "no_model_available")
				return
			}
			d := e.decision(t, e.alice, body)
			if !reflect.DeepEqual(d.FailoverChain, s.chain) || d.Model != s.chain[0] {
				t.Errorf("model %s, chain %v; want %v", d.Model, d.FailoverChain, s.chain)
			}
			wantFallback := "<null>"
			if len(s.chain) > 1 {
				wantFallback = s.chain[1]
			}
			if deref(d.FallbackModel) != wantFallback {
				t.Errorf("fallback_model = %s, want %s", deref(d.FallbackModel), wantFallback)
			}
			if d.EstimatedCostUSD.String() != s.est || d.WorstCaseCostUSD.String() != s.worst {
				t.Errorf("estimated %s, worst case %s; want %s, %s", d.EstimatedCostUSD, d.WorstCaseCostUSD, s.est, s.worst)
			}
		})
	}

	t.Run("speech enabled without a provider", func(t *testing.T) {
		e.putRoute(t, "audio_transcription", `{"enabled":true}`)
		e.execAndExpireCache(t, `UPDATE ai_models SET enabled = true WHERE model_key = 'speech'`)
		e.route(t, e.alice, `{"operation_id":"audio_transcription"}`).wantError(t, http.StatusServiceUnavailable, "no_model_available")
	})

	t.Run("price changes by SQL are seen after the TTL", func(t *testing.T) {
		e.execAndExpireCache(t, `UPDATE ai_models SET input_nano_per_mtok = 560000000, price_version = 'deepseek-test' WHERE model_key = 'deepseek'`)
		d := e.decision(t, e.alice, `{"operation_id":"email-compose","estimated_tokens":100}`)
		if d.EstimatedCostUSD != "0.000203" || d.PriceVersion != "deepseek-test" { // 100×0.56 + 350×0.42
			t.Errorf("estimated %s at %s", d.EstimatedCostUSD, d.PriceVersion)
		}
	})
}

// The budget in a decision is the user's day as the ledger has it.
func TestRouteBudget(t *testing.T) {
	e := newRouteEnv(t)
	const body = `{"operation_id":"email-compose","estimated_tokens":100}` // worst case $0.00532

	type want struct{ limit, spend, reserved, remaining string }
	check := func(t *testing.T, token string, w want, within bool) {
		t.Helper()
		d := e.decision(t, token, body)
		got := want{d.Budget.DailyLimit.String(), d.Budget.CurrentSpend.String(), d.Budget.Reserved.String(), d.Budget.Remaining.String()}
		if got != w || d.WithinBudget != within {
			t.Errorf("budget %+v within %v, want %+v within %v", got, d.WithinBudget, w, within)
		}
	}

	t.Run("spend and reservations", func(t *testing.T) {
		check(t, e.alice, want{"50", "0", "0", "50"}, true)
		e.reserve(t, "a1", "alice", 10)
		check(t, e.alice, want{"50", "0", "10", "40"}, true)
		e.settle(t, "a1", 3.5)
		check(t, e.alice, want{"50", "3.5", "0", "46.5"}, true)
		e.reserve(t, "a2", "alice", 2)
		check(t, e.alice, want{"50", "3.5", "2", "44.5"}, true)
		// bob's day is his own.
		check(t, e.bob, want{"50", "0", "0", "50"}, true)
	})

	t.Run("within_budget compares the worst case with what remains", func(t *testing.T) {
		e.reserve(t, "c1", "carol", 49.99468) // leaves exactly the worst case
		carol := rtTokens.Token(t, "carol", nil)
		check(t, carol, want{"50", "0", "49.99468", "0.00532"}, true)
		e.reserve(t, "c2", "carol", 0.000000001)
		check(t, carol, want{"50", "0", "49.994680001", "0.005319999"}, false)
		e.settle(t, "c1", 50)
		check(t, carol, want{"50", "50", "0.000000001", "0"}, false)
	})

	t.Run("changed limits", func(t *testing.T) {
		e.setLimits(t, "dave", 100, 10)
		dave := rtTokens.Token(t, "dave", nil)
		check(t, dave, want{"100", "0", "0", "100"}, true)
		e.setLimits(t, "dave", 0.005, 0.001)
		check(t, dave, want{"0.005", "0", "0", "0.005"}, false)
	})
}

// HIGH criticality operations whose estimate is above the user's warning threshold need approval.
func TestRouteApproval(t *testing.T) {
	e := newRouteEnv(t)
	tests := []struct {
		name    string
		user    string
		warning float64 // the user's warning threshold; limit $50
		token   func() string
		body    string
		reason  string // "" when no approval is needed
	}{
		{"default warning", "alice", 25, func() string { return e.alice }, `{"operation_id":"chat_message"}`, ""},
		{"HIGH above the warning", "alice", 0.0005, func() string { return e.alice }, `{"operation_id":"chat_message"}`,
			"high_criticality_estimate_above_warning_threshold"},
		{"HIGH exactly at the warning", "alice", 0.000588, func() string { return e.alice }, `{"operation_id":"chat_message"}`, ""},
		{"HIGH one nano above the warning", "alice", 0.000587999, func() string { return e.alice }, `{"operation_id":"chat_message"}`,
			"high_criticality_estimate_above_warning_threshold"},
		{"small estimate below the warning", "alice", 0.0005, func() string { return e.alice },
			`{"operation_id":"chat_message","estimated_tokens":1}`, ""},
		{"other HIGH op", "alice", 0.0005, func() string { return e.alice }, `{"operation_id":"agent_execution"}`,
			"high_criticality_estimate_above_warning_threshold"},
		{"LOW op above the warning", "alice", 0.0001, func() string { return e.alice }, `{"operation_id":"email-compose"}`, ""},
		{"MEDIUM op above the warning", "alice", 0.0001, func() string { return e.alice }, `{"operation_id":"memory_synthesis"}`, ""},
		{"warning zero", "alice", 0, func() string { return e.alice }, `{"operation_id":"chat_message"}`,
			"high_criticality_estimate_above_warning_threshold"},
		{"admin routing for bob uses bob's threshold", "bob", 0.0001, func() string { return e.ops },
			`{"operation_id":"chat_message","user_id":"bob"}`, "high_criticality_estimate_above_warning_threshold"},
		{"admin routing for self uses the default", "bob", 0.0001, func() string { return e.ops },
			`{"operation_id":"chat_message"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.setLimits(t, tc.user, 50, tc.warning)
			d := e.decision(t, tc.token(), tc.body)
			if d.RequiresApproval != (tc.reason != "") || d.ApprovalReason != tc.reason {
				t.Errorf("requires_approval %v (%q), want reason %q; estimate %s", d.RequiresApproval, d.ApprovalReason, tc.reason, d.EstimatedCostUSD)
			}
		})
	}
}
