package intelapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/routeapp/routeapptest"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/intelligence"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/offline"
)

// opCase is one intelligence endpoint with a valid request, the JSON its primary model answers,
// the usage it reports and the cost of that usage at the seeded prices, computed by hand
// (per token: DeepSeek 280 in / 420 out / 28 cached nano-USD; Gemini Flash-Lite 100 / 400 / 10;
// reasoning tokens at the output price).
type opCase struct {
	op, path, body string
	primary        string // "deepseek" or "gemini_flash"
	maxTokens      int    // the route's seeded max_output_tokens, always sent
	answer         string
	want           string // the result fields of the response, when not the answer itself
	usage          llmtest.Usage
	costNano       int64
	costUSD        string // the JSON number text
	result         any    // a pointer to the operation's result type
}

var opCases = []opCase{
	{op: "email-compose", path: "/email/compose", primary: "deepseek", maxTokens: 1024,
		body:   `{"subject":"Project Update","recipient_context":"Manager","key_points":["v2 shipped"]}`,
		answer: `{"suggestions":[{"subject":"Project Update","body":"Hi, v2 shipped.","tone":"neutral"}]}`,
		// 1000×280 + 200×28 + (300+50)×420 = 280000 + 5600 + 147000
		usage:    llmtest.Usage{InputTokens: 1000, CachedInputTokens: 200, OutputTokens: 300, ReasoningTokens: 50},
		costNano: 432600, costUSD: "0.0004326", result: &intelligence.EmailComposeResult{}},
	{op: "email-classify", path: "/email/classify", primary: "deepseek", maxTokens: 256,
		body:   `{"subject":"Lunch?","body":"Are you free on Friday?"}`,
		answer: `{"category":"personal","priority":"normal","needs_reply":true,"confidence":0.8,"reasons":["asks a question"]}`,
		// 500×280 + 40×420 = 140000 + 16800
		usage: llmtest.Usage{InputTokens: 500, OutputTokens: 40}, costNano: 156800, costUSD: "0.0001568",
		result: &intelligence.EmailClassifyResult{}},
	{op: "email-respond", path: "/email/respond", primary: "deepseek", maxTokens: 1024,
		body:   `{"original":{"subject":"Lunch?","body":"Are you free on Friday?"},"intent":"accept"}`,
		answer: `{"suggestions":[{"subject":"Re: Lunch?","body":"Friday works!"},{"subject":"Re: Lunch?","body":"Yes, gladly."}]}`,
		// 900×280 + 100×28 + 250×420 = 252000 + 2800 + 105000
		usage: llmtest.Usage{InputTokens: 900, CachedInputTokens: 100, OutputTokens: 250}, costNano: 359800, costUSD: "0.0003598",
		result: &intelligence.EmailRespondResult{}},
	{op: "calendar-prep", path: "/calendar/prep", primary: "deepseek", maxTokens: 1024,
		body:   `{"title":"Quarterly review","attendees":["Ann"]}`,
		answer: `{"summary":"Q3 numbers","talking_points":["growth"],"questions":["hiring?"],"preparation_tasks":["read the deck"]}`,
		// 700×280 + 400×420 = 196000 + 168000
		usage: llmtest.Usage{InputTokens: 700, OutputTokens: 400}, costNano: 364000, costUSD: "0.000364",
		result: &intelligence.CalendarPrepResult{}},
	{op: "calendar-time", path: "/calendar/time", primary: "gemini_flash", maxTokens: 512,
		body: `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z",
			"busy":[{"start":"2026-11-23T12:00:00Z","end":"2026-11-23T13:00:00Z"}]}`,
		answer: `{"slots":[{"start":"2026-11-23T09:00:00Z","end":"2026-11-23T09:30:00Z","reason":"morning"},
			{"start":"2026-11-23T12:00:00Z","end":"2026-11-23T12:30:00Z","reason":"busy then"}]}`,
		want: `{"slots":[{"start":"2026-11-23T09:00:00Z","end":"2026-11-23T09:30:00Z","reason":"morning"}],"discarded_slots":1}`,
		// 600×100 + 300×10 + (150+100)×400 = 60000 + 3000 + 100000
		usage:    llmtest.Usage{InputTokens: 600, CachedInputTokens: 300, OutputTokens: 150, ReasoningTokens: 100},
		costNano: 163000, costUSD: "0.000163", result: &intelligence.CalendarTimeResult{}},
	{op: "task-prioritize", path: "/task/prioritize", primary: "deepseek", maxTokens: 1024,
		body:   `{"tasks":[{"id":"t1","title":"Write the report"},{"id":"t2","title":"Pay the invoice"}]}`,
		answer: `{"ordered":[{"id":"t2","priority":"high","reason":"overdue"},{"id":"t1","priority":"medium","reason":"next week"}]}`,
		// 3×280 + 1×420 = 840 + 420
		usage: llmtest.Usage{InputTokens: 3, OutputTokens: 1}, costNano: 1260, costUSD: "0.00000126",
		result: &intelligence.TaskPrioritizeResult{}},
	{op: "task-breakdown", path: "/task/breakdown", primary: "deepseek", maxTokens: 1024,
		body:   `{"task":"Plan the offsite","max_steps":3}`,
		answer: `{"steps":[{"title":"Pick a venue","estimate_minutes":30,"details":"two options"},{"title":"Send invites","estimate_minutes":10,"details":""}]}`,
		// 300×280 + 400×420 = 84000 + 168000
		usage: llmtest.Usage{InputTokens: 300, OutputTokens: 400}, costNano: 252000, costUSD: "0.000252",
		result: &intelligence.TaskBreakdownResult{}},
	{op: "analytics-summary", path: "/analytics/summary", primary: "gemini_flash", maxTokens: 1024,
		body:   `{"metrics":[{"name":"revenue","value":120,"previous":100}]}`,
		answer: `{"summary":"Revenue is up 20%.","highlights":["revenue +20%"],"concerns":[]}`,
		// 2000×100 + 400×400 = 200000 + 160000
		usage: llmtest.Usage{InputTokens: 2000, OutputTokens: 400}, costNano: 360000, costUSD: "0.00036",
		result: &intelligence.AnalyticsSummaryResult{}},
	{op: "analytics-anomaly", path: "/analytics/anomaly", primary: "deepseek", maxTokens: 1024,
		body: `{"series":[{"timestamp":"2026-11-01T00:00:00Z","value":10},{"timestamp":"2026-11-02T00:00:00Z","value":11},
			{"timestamp":"2026-11-03T00:00:00Z","value":95}]}`,
		answer: `{"anomalies":[{"timestamp":"2026-11-03T00:00:00Z","value":95,"expected":11,"severity":"high","explanation":"spike"}],"summary":"one spike"}`,
		// 1500×280 + 1000×28 + 300×420 = 420000 + 28000 + 126000
		usage:    llmtest.Usage{InputTokens: 1500, CachedInputTokens: 1000, OutputTokens: 300},
		costNano: 574000, costUSD: "0.000574", result: &intelligence.AnalyticsAnomalyResult{}},
}

func caseFor(t *testing.T, op string) opCase {
	t.Helper()
	for _, c := range opCases {
		if c.op == op {
			return c
		}
	}
	t.Fatalf("no case for %s", op)
	return opCase{}
}

// server returns the wire server of a model key.
func (e *env) server(model string) *llmtest.Server {
	switch model {
	case "deepseek":
		return e.DeepSeek
	case "gemini_flash":
		return e.Gemini
	}
	return e.Claude
}

// providerRequest reads what an adapter sent: whether it asked for JSON, the schema it passed
// (nil when none), and the output cap.
func providerRequest(t *testing.T, r llmtest.Request, wire llmtest.Wire) (jsonMode bool, schema any, maxTokens float64) {
	t.Helper()
	body := r.JSON()
	if body == nil {
		t.Fatalf("provider request is not JSON: %s", r.Body)
	}
	switch wire {
	case llmtest.OpenAI:
		rf, _ := body["response_format"].(map[string]any)
		mt, _ := body["max_tokens"].(float64)
		return rf["type"] == "json_object", rf["json_schema"], mt
	case llmtest.Gemini:
		gc, _ := body["generationConfig"].(map[string]any)
		mt, _ := gc["maxOutputTokens"].(float64)
		return gc["responseMimeType"] == "application/json", gc["responseJsonSchema"], mt
	}
	mt, _ := body["max_tokens"].(float64)
	return strings.Contains(fmt.Sprint(body["system"]), "JSON"), nil, mt
}

// Every endpoint: a valid request, a valid answer from its primary model over the provider's
// wire format → 200 with the typed result, the meta fields, the exact cost, and one log row.
func TestEndpoints(t *testing.T) {
	e := newEnv(t)
	for _, tc := range opCases {
		t.Run(tc.op, func(t *testing.T) {
			srv := e.server(tc.primary)
			before := srv.Count()
			countsBefore := e.RequestCounts()
			srv.Script(llmtest.OK(tc.answer).WithUsage(tc.usage))

			r := e.post(t, tc.path, e.Alice, tc.body)
			r.WantStatus(t, http.StatusOK)
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}

			// The typed result is the model's answer (after the operation's own clean-up).
			want := tc.want
			if want == "" {
				want = tc.answer
			}
			got := reflect.New(reflect.TypeOf(tc.result).Elem()).Interface()
			exp := reflect.New(reflect.TypeOf(tc.result).Elem()).Interface()
			r.Decode(t, got)
			if err := json.Unmarshal([]byte(want), exp); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("result = %+v, want %+v", got, exp)
			}

			f := r.fields(t)
			id := r.Header.Get("X-Request-Id")
			for k, v := range map[string]string{
				"operation_id": `"` + tc.op + `"`, "model": `"` + tc.primary + `"`,
				"cost_usd": tc.costUSD, "request_id": `"` + id + `"`,
			} {
				if string(f[k]) != v {
					t.Errorf("%s = %s, want %s", k, f[k], v)
				}
			}
			for _, k := range []string{"repaired", "fallback_used", "offline"} {
				if _, ok := f[k]; ok {
					t.Errorf("%s present (%s) on a plain successful call", k, f[k])
				}
			}
			if h := r.Header.Get("X-Helix-Cost-Usd"); h != tc.costUSD {
				t.Errorf("X-Helix-Cost-Usd = %q, want %q", h, tc.costUSD)
			}

			// One call, to the primary, in JSON mode, with the route's output cap.
			after := e.RequestCounts()
			if total := after[0] + after[1] + after[2] - countsBefore[0] - countsBefore[1] - countsBefore[2]; total != 1 || srv.Count() != before+1 {
				t.Fatalf("provider requests %v → %v, want one to %s", countsBefore, after, tc.primary)
			}
			jsonMode, schema, maxTokens := providerRequest(t, srv.Requests()[before], srv.Wire())
			if !jsonMode || int(maxTokens) != tc.maxTokens {
				t.Errorf("provider request: json %v, max tokens %v; want JSON mode and %d", jsonMode, maxTokens, tc.maxTokens)
			}
			if srv.Wire() == llmtest.Gemini && schema == nil {
				t.Errorf("Gemini was not given the result schema")
			}

			// One log row with the exact cost.
			var row *routeapptest.LogRow
			for _, l := range e.LogRows(t) {
				if l.RequestID == id {
					if row != nil {
						t.Fatalf("two log rows for %s", id)
					}
					row = &l
				}
			}
			if row == nil {
				t.Fatalf("no log row for request %s", id)
			}
			wantIn := tc.usage.InputTokens
			if row.OperationID != tc.op || row.UserID != "alice" || row.Model != tc.primary || !row.Success || row.Fallback ||
				row.CostNano != tc.costNano || row.ErrorCode != "" || row.PriceVersion == "" ||
				row.In != wantIn || row.Cached != tc.usage.CachedInputTokens || row.Out != tc.usage.OutputTokens || row.Reasoning != tc.usage.ReasoningTokens {
				t.Errorf("log row = %+v, want %s by %s, %d nano, usage %+v", *row, tc.op, tc.primary, tc.costNano, tc.usage)
			}
		})
	}
	var total int64
	for _, c := range opCases {
		total += c.costNano
	}
	if d := e.Today(t, "alice"); int64(d.Spent) != total || d.Reserved != 0 {
		t.Errorf("alice spent %d nano with %d reserved, want %d and 0", d.Spent, d.Reserved, total)
	}
	if n := len(e.LogRows(t)); n != len(opCases) {
		t.Errorf("%d log rows, want %d", n, len(opCases))
	}
}

// With no provider reachable and the offline model forced (make dev without keys), every endpoint
// still answers, at no cost, and says it was offline.
func TestEndpointsOffline(t *testing.T) {
	e := newEnvWith(t, func(r *llm.Registry) execute.Providers { return r.WithOfflineFallback(offline.New(), true) })
	for _, tc := range opCases {
		r := e.post(t, tc.path, e.Alice, tc.body)
		r.WantStatus(t, http.StatusOK)
		f := r.fields(t)
		if string(f["offline"]) != "true" || string(f["cost_usd"]) != "0" || string(f["operation_id"]) != `"`+tc.op+`"` {
			t.Errorf("%s: offline %s cost %s op %s", tc.op, f["offline"], f["cost_usd"], f["operation_id"])
		}
		if _, ok := f["repaired"]; ok {
			t.Errorf("%s: the offline answer needed a repair", tc.op)
		}
	}
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v with offline forced", c)
	}
	for _, l := range e.LogRows(t) {
		if l.Provider != "offline" || l.CostNano != 0 || !l.Success {
			t.Errorf("log row %+v, want offline, free, successful", l)
		}
	}
}

// An invalid answer is repaired once through the whole pipeline: two provider calls, two log
// rows (the request id and <id>-repair), both costs charged.
func TestRepairOverHTTP(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "task-prioritize")
	// t9 is not one of the tasks given: the schema's enum rejects it.
	bad := `{"ordered":[{"id":"t9","priority":"high","reason":"made up"}]}`
	e.DeepSeek.Script(
		llmtest.OK(bad).WithUsage(llmtest.Usage{InputTokens: 100, OutputTokens: 10}),       // 28000 + 4200
		llmtest.OK(tc.answer).WithUsage(llmtest.Usage{InputTokens: 200, OutputTokens: 20}), // 56000 + 8400
	)
	r := e.post(t, tc.path, e.Alice, tc.body)
	r.WantStatus(t, http.StatusOK)
	f := r.fields(t)
	id := r.Header.Get("X-Request-Id")
	if string(f["repaired"]) != "true" || string(f["cost_usd"]) != "0.0000966" || string(f["request_id"]) != `"`+id+`"` {
		t.Errorf("repaired %s cost %s request %s; want true, 0.0000966, %s", f["repaired"], f["cost_usd"], f["request_id"], id)
	}
	reqs := e.DeepSeek.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d provider requests, want 2", len(reqs))
	}
	var repair struct {
		Messages []struct{ Role, Content string } `json:"messages"`
	}
	if err := json.Unmarshal(reqs[1].Body, &repair); err != nil {
		t.Fatal(err)
	}
	n := len(repair.Messages)
	if n < 4 || repair.Messages[n-2].Role != "assistant" || repair.Messages[n-2].Content != bad ||
		repair.Messages[n-1].Role != "user" || !strings.Contains(repair.Messages[n-1].Content, "/ordered/0/id") {
		t.Errorf("repair request messages = %+v", repair.Messages)
	}
	rows := e.LogRows(t)
	if len(rows) != 2 || rows[0].RequestID != id || rows[1].RequestID != id+"-repair" ||
		rows[0].CostNano != 32200 || rows[1].CostNano != 64400 || !rows[0].Success || !rows[1].Success {
		t.Errorf("log rows = %+v, want %s (32200 nano) and %s-repair (64400 nano)", rows, id, id)
	}
	if d := e.Today(t, "alice"); d.Spent != 96600 || d.Reserved != 0 {
		t.Errorf("spent %d reserved %d, want 96600 and 0", d.Spent, d.Reserved)
	}
}

func TestBadModelOutput(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "email-compose")
	e.DeepSeek.Script(
		llmtest.OK("I'd rather chat.").WithUsage(llmtest.Usage{InputTokens: 10, OutputTokens: 10}),  // 2800 + 4200
		llmtest.OK(`{"suggestions":[]}`).WithUsage(llmtest.Usage{InputTokens: 20, OutputTokens: 1}), // 5600 + 420
	)
	r := e.post(t, tc.path, e.Alice, tc.body)
	b := r.wantError(t, http.StatusBadGateway, "bad_model_output")
	var details struct {
		Reason  string          `json:"reason"`
		CostUSD json.RawMessage `json:"cost_usd"`
	}
	if err := json.Unmarshal(b.Error.Details, &details); err != nil {
		t.Fatalf("details %s: %v", b.Error.Details, err)
	}
	if string(details.CostUSD) != "0.00001302" || !strings.Contains(details.Reason, "/suggestions") {
		t.Errorf("details = %s, want cost 0.00001302 and the reason", b.Error.Details)
	}
	if r.Header.Get("X-Helix-Cost-Usd") != "" {
		t.Errorf("cost header on an error: %q", r.Header.Get("X-Helix-Cost-Usd"))
	}
	if n := e.DeepSeek.Count(); n != 2 {
		t.Errorf("%d provider requests, want 2 (no second repair)", n)
	}
	rows := e.LogRows(t)
	if len(rows) != 2 || rows[1].RequestID != rows[0].RequestID+"-repair" || rows[0].CostNano+rows[1].CostNano != 13020 {
		t.Errorf("log rows = %+v", rows)
	}
	if d := e.Today(t, "alice"); d.Spent != 13020 || d.Reserved != 0 {
		t.Errorf("spent %d reserved %d: the calls happened and must be charged", d.Spent, d.Reserved)
	}
}

func TestFallback(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "email-compose")
	e.DeepSeek.SetDefault(llmtest.Error(http.StatusInternalServerError, "internal error"))
	e.Gemini.Script(llmtest.OK(tc.answer).WithUsage(llmtest.Usage{InputTokens: 1000, OutputTokens: 100})) // 100000 + 40000
	r := e.post(t, tc.path, e.Alice, tc.body)
	r.WantStatus(t, http.StatusOK)
	f := r.fields(t)
	if string(f["fallback_used"]) != "true" || string(f["model"]) != `"gemini_flash"` || string(f["cost_usd"]) != "0.00014" {
		t.Errorf("fallback_used %s model %s cost %s; want true, gemini_flash, 0.00014", f["fallback_used"], f["model"], f["cost_usd"])
	}
	if c := e.RequestCounts(); c[0] < 1 || c[1] != 1 || c[2] != 0 {
		t.Errorf("provider requests %v: want DeepSeek tried, then one Gemini call, no Claude", c)
	}
	rows := e.LogRows(t)
	if len(rows) != 1 || !rows[0].Fallback || rows[0].Model != "gemini_flash" || rows[0].Provider != "gemini" || rows[0].CostNano != 140000 {
		t.Errorf("log rows = %+v", rows)
	}
}

func TestAllProvidersDown(t *testing.T) {
	e := newEnv(t)
	for _, s := range []*llmtest.Server{e.DeepSeek, e.Gemini, e.Claude} {
		s.SetDefault(llmtest.Error(http.StatusServiceUnavailable, "overloaded"))
	}
	tc := caseFor(t, "task-breakdown")
	r := e.post(t, tc.path, e.Alice, tc.body)
	r.wantError(t, http.StatusServiceUnavailable, "providers_unavailable")
	if c := e.RequestCounts(); c[0] == 0 || c[1] == 0 || c[2] == 0 {
		t.Errorf("provider requests %v: want DeepSeek, Gemini and the Claude emergency fallback tried", c)
	}
	if d := e.Today(t, "alice"); d.Spent != 0 || d.Reserved != 0 {
		t.Errorf("spent %d reserved %d, want nothing (the reservation released)", d.Spent, d.Reserved)
	}
	rows := e.LogRows(t)
	if len(rows) != 1 || rows[0].Success || rows[0].ErrorCode != "providers_unavailable" || rows[0].CostNano != 0 {
		t.Errorf("log rows = %+v", rows)
	}
}

func TestContentFiltered(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "email-compose")
	e.DeepSeek.Script(llmtest.Filtered())
	e.post(t, tc.path, e.Alice, tc.body).wantError(t, http.StatusUnprocessableEntity, "content_filtered")
	if c := e.RequestCounts(); c != [3]int{1, 0, 0} {
		t.Errorf("provider requests %v: a refusal is final, no other model is asked", c)
	}
}

func TestBudgetExceeded(t *testing.T) {
	e := newEnv(t)
	e.SetLimits(t, "alice", 0.0001) // below the worst case of any operation
	tc := caseFor(t, "email-compose")
	r := e.post(t, tc.path, e.Alice, tc.body)
	b := r.wantError(t, http.StatusPaymentRequired, "budget_exceeded")
	var details map[string]json.RawMessage
	if err := json.Unmarshal(b.Error.Details, &details); err != nil {
		t.Fatalf("details: %s", b.Error.Details)
	}
	if string(details["daily_limit"]) != "0.0001" || string(details["remaining"]) != "0.0001" {
		t.Errorf("details = %s", b.Error.Details)
	}
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v, want none", c)
	}
	rows := e.LogRows(t)
	if len(rows) != 1 || rows[0].Success || rows[0].ErrorCode != "budget_exceeded" {
		t.Errorf("log rows = %+v", rows)
	}
	// Bob's budget is his own.
	e.DeepSeek.Script(llmtest.OK(tc.answer))
	e.post(t, tc.path, e.Bob, tc.body).WantStatus(t, http.StatusOK)
}

func TestOperationDisabled(t *testing.T) {
	e := newEnv(t)
	e.do(t, http.MethodPut, "/admin/routes/email-compose", e.Admin, `{"enabled":false}`).WantStatus(t, http.StatusOK)
	tc := caseFor(t, "email-compose")
	e.post(t, tc.path, e.Alice, tc.body).wantError(t, http.StatusForbidden, "operation_disabled")
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v", c)
	}
}

// Bad requests are refused before anything is routed, reserved or called.
func TestRequestErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, path, tok, body string
		status                int
		code                  string
	}{
		{"no token", "/email/compose", "", `{"subject":"s","recipient_context":"r"}`, 401, "unauthorized"},
		{"bad token", "/email/compose", "not-a-jwt", `{"subject":"s","recipient_context":"r"}`, 401, "unauthorized"},
		{"missing field", "/email/compose", e.Alice, `{"subject":"s"}`, 400, "missing_field"},
		{"invalid field", "/email/compose", e.Alice, `{"subject":"s","recipient_context":"r","tone":"angry"}`, 400, "invalid_field"},
		{"unknown field", "/email/compose", e.Alice, `{"subject":"s","recipient_context":"r","recipient":"x"}`, 400, "unknown_field"},
		{"wrong type", "/task/breakdown", e.Alice, `{"task":"t","max_steps":"3"}`, 400, "invalid_type"},
		{"malformed", "/task/breakdown", e.Alice, `{"task":`, 400, "malformed_json"},
		{"empty body", "/task/breakdown", e.Alice, ``, 400, "empty_body"},
		{"two values", "/task/breakdown", e.Alice, `{"task":"a"}{"task":"b"}`, 400, "malformed_json"},
		{"duplicate task ids", "/task/prioritize", e.Alice, `{"tasks":[{"id":"a","title":"x"},{"id":"a","title":"y"}]}`, 400, "invalid_field"},
		{"bad timestamp", "/calendar/time", e.Alice, `{"duration_minutes":30,"window_start":"today","window_end":"2026-11-23T17:00:00Z"}`, 400, "invalid_field"},
		{"too large", "/email/classify", e.Alice, `{"body":"` + strings.Repeat("x", 70_000) + `"}`, 413, "body_too_large"},
		{"unknown endpoint", "/email/translate", e.Alice, `{}`, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.post(t, tc.path, tc.tok, tc.body).wantError(t, tc.status, tc.code)
		})
	}
	if r := e.do(t, http.MethodGet, "/intelligence/email/compose", e.Alice, ""); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET on an operation: %d, want 405", r.Status)
	}
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v", c)
	}
	if rows := e.LogRows(t); len(rows) != 0 {
		t.Errorf("log rows %+v for refused requests", rows)
	}
}

// The first answer was made and charged; when the repair call then cannot be made, the client
// must not be told that nothing was charged, and should learn what was.
func TestRepairCallFailsAfterAChargedAnswer(t *testing.T) {
	e := newEnv(t)
	tc := caseFor(t, "task-breakdown")
	e.DeepSeek.Script(llmtest.OK("Sure, here are the steps: ...").WithUsage(llmtest.Usage{InputTokens: 100, OutputTokens: 10})) // 28000 + 4200
	for _, s := range []*llmtest.Server{e.DeepSeek, e.Gemini, e.Claude} {
		s.SetDefault(llmtest.Error(http.StatusServiceUnavailable, "overloaded"))
	}
	r := e.post(t, tc.path, e.Alice, tc.body)
	if r.Status < 500 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if d := e.Today(t, "alice"); d.Spent != 32200 || d.Reserved != 0 {
		t.Fatalf("spent %d reserved %d, want the first answer's 32200 charged", d.Spent, d.Reserved)
	}
	var b apitest.ErrorBody
	r.Decode(t, &b)
	var details struct {
		CostUSD json.RawMessage `json:"cost_usd"`
	}
	_ = json.Unmarshal(b.Error.Details, &details)
	reported := string(details.CostUSD) == "0.0000322" || r.Header.Get("X-Helix-Cost-Usd") == "0.0000322"
	if strings.Contains(b.Error.Message, "nothing was charged") || !reported {
		t.Errorf("after a charged first answer the failed repair answers %d %s %q with no cost: the user "+
			"was charged $0.0000322 (see intelligence.go Run: the repair's Execute error is returned as is, "+
			"dropping out.Cost; execapi.ClientError then says nothing was charged)", r.Status, b.Error.Code, b.Error.Message)
	}
}
