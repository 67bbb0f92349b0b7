package intelligence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/intelligence"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/offline"
	"github.com/helixhq/helix/shared/money"
)

// The nine operations, their paths and result types: the public contract of the endpoints.
var wantOperations = map[string]struct {
	path   string
	result any
}{
	"email-compose":     {"/email/compose", &intelligence.EmailComposeResult{}},
	"email-classify":    {"/email/classify", &intelligence.EmailClassifyResult{}},
	"email-respond":     {"/email/respond", &intelligence.EmailRespondResult{}},
	"calendar-prep":     {"/calendar/prep", &intelligence.CalendarPrepResult{}},
	"calendar-time":     {"/calendar/time", &intelligence.CalendarTimeResult{}},
	"task-prioritize":   {"/task/prioritize", &intelligence.TaskPrioritizeResult{}},
	"task-breakdown":    {"/task/breakdown", &intelligence.TaskBreakdownResult{}},
	"analytics-summary": {"/analytics/summary", &intelligence.AnalyticsSummaryResult{}},
	"analytics-anomaly": {"/analytics/anomaly", &intelligence.AnalyticsAnomalyResult{}},
}

func TestOperations(t *testing.T) {
	ops := intelligence.Operations()
	if len(ops) != len(wantOperations) {
		t.Fatalf("%d operations, want %d", len(ops), len(wantOperations))
	}
	paths := map[string]bool{}
	for _, op := range ops {
		want, ok := wantOperations[op.OperationID()]
		if !ok {
			t.Errorf("unexpected operation %q", op.OperationID())
			continue
		}
		if op.Path() != want.path {
			t.Errorf("%s: path %q, want %q", op.OperationID(), op.Path(), want.path)
		}
		if paths[op.Path()] {
			t.Errorf("path %q served twice", op.Path())
		}
		paths[op.Path()] = true
		// Each call returns a fresh input: requests must not share state.
		if a, b := op.NewInput(), op.NewInput(); a == b {
			t.Errorf("%s: NewInput returned the same value twice", op.OperationID())
		}
	}
}

// compile compiles a result schema the way a strict validator does (formats asserted).
func compile(t *testing.T, schema []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		t.Fatalf("schema is not JSON: %v\n%s", err, schema)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("mem://schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("mem://schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v\n%s", err, schema)
	}
	return s
}

// The offline model's answer for the schema each operation sends validates and decodes into the
// operation's result type, so `make dev` serves every endpoint without provider keys.
func TestOfflineModelAnswersEveryOperation(t *testing.T) {
	for id, op := range operations(t) {
		t.Run(id, func(t *testing.T) {
			in := decodeInput(t, op, sample[id])
			ex := offlineExec()
			out, err := op.Run(context.Background(), ex, in, baseCall("req-offline"))
			if err != nil {
				t.Fatalf("Run with the offline model: %v", err)
			}
			calls := ex.Calls()
			if len(calls) != 1 || out.Repaired {
				t.Fatalf("%d calls, repaired %v: the offline answer needed a repair", len(calls), out.Repaired)
			}
			if !out.Offline || out.Cost != 0 {
				t.Errorf("Offline %v Cost %v, want true and 0", out.Offline, out.Cost)
			}
			want := wantOperations[id].result
			if reflect.TypeOf(out.Result) != reflect.TypeOf(want) {
				t.Fatalf("Result is %T, want %T", out.Result, want)
			}

			// The same, step by step: the example validates against the schema sent, and decodes
			// with no unknown fields into the result type.
			schema := calls[0].Schema
			doc, err := offline.Example(schema)
			if err != nil {
				t.Fatalf("offline.Example: %v", err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
			if err != nil {
				t.Fatal(err)
			}
			if err := compile(t, schema).Validate(inst); err != nil {
				t.Fatalf("offline example does not validate: %v\n%s", err, doc)
			}
			dst := reflect.New(reflect.TypeOf(want).Elem()).Interface()
			dec := json.NewDecoder(bytes.NewReader(doc))
			dec.DisallowUnknownFields()
			if err := dec.Decode(dst); err != nil {
				t.Fatalf("offline example does not decode into %T: %v\n%s", dst, err, doc)
			}
		})
	}
}

// The first call carries the operation, JSON mode, the schema (also in the system prompt) and
// the caller's ids.
func TestRunCall(t *testing.T) {
	op := operations(t)["email-compose"]
	in := decodeInput(t, op, sample["email-compose"])
	ex := &fakeExec{script: []answer{{text: `{"suggestions":[{"subject":"s","body":"b","tone":"formal"}]}`, cost: 1234}}}
	out, err := op.Run(context.Background(), ex, in, baseCall("req-1"))
	if err != nil {
		t.Fatal(err)
	}
	c := ex.Calls()[0]
	if c.OperationID != "email-compose" || c.RequestID != "req-1" || c.UserID != "alice" || !c.JSON || c.Continuation {
		t.Errorf("call = %+v", c)
	}
	if len(c.Messages) != 2 || c.Messages[0].Role != llm.RoleSystem || c.Messages[1].Role != llm.RoleUser {
		t.Fatalf("messages = %+v", c.Messages)
	}
	if !strings.Contains(c.Messages[0].Content, string(c.Schema)) {
		t.Errorf("the system prompt does not hold the schema")
	}
	for _, s := range []string{"Project Update", "Manager", "v2 shipped", "formal", "3 alternative"} {
		if !strings.Contains(c.Messages[1].Content, s) {
			t.Errorf("prompt lacks %q: %s", s, c.Messages[1].Content)
		}
	}
	if c.Summary == "" || len(c.Fingerprint) == 0 {
		t.Errorf("summary %q, fingerprint %q", c.Summary, c.Fingerprint)
	}
	// The schema's maxItems follows the requested number of suggestions.
	var schema struct {
		Properties struct {
			Suggestions struct {
				MaxItems int `json:"maxItems"`
			} `json:"suggestions"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(c.Schema, &schema); err != nil || schema.Properties.Suggestions.MaxItems != 3 {
		t.Errorf("schema maxItems = %d (%v), want 3", schema.Properties.Suggestions.MaxItems, err)
	}
	res := out.Result.(*intelligence.EmailComposeResult)
	if out.OperationID != "email-compose" || out.Model != "deepseek" || out.Cost != 1234 || out.RequestID != "req-1" ||
		out.Repaired || len(res.Suggestions) != 1 || res.Suggestions[0].Body != "b" {
		t.Errorf("outcome = %+v, result %+v", out, res)
	}
}

func TestRunRejectsAnotherOperationsInput(t *testing.T) {
	ops := operations(t)
	ex := &fakeExec{}
	_, err := ops["email-compose"].Run(context.Background(), ex, ops["task-breakdown"].NewInput(), baseCall("r"))
	if err == nil || len(ex.Calls()) != 0 {
		t.Fatalf("err %v, %d calls; want an error and no call", err, len(ex.Calls()))
	}
}

const validCompose = `{"suggestions":[{"subject":"Update","body":"All on track.","tone":"formal"}]}`

// An invalid first answer gets one repair call that shows the model its answer and the error.
func TestRepair(t *testing.T) {
	cases := []struct {
		name    string
		first   string
		wantErr string // in the repair prompt
	}{
		{"not JSON", "Sure! Here are your drafts.", "not JSON"},
		{"truncated JSON", `{"suggestions":[{"subject":"Up`, "not JSON"},
		{"no suggestions", `{"suggestions":[]}`, "/suggestions"},
		{"missing required field", `{"suggestions":[{"subject":"s","tone":"t"}]}`, "/suggestions/0"},
		{"unknown property", `{"suggestions":[{"subject":"s","body":"b","tone":"t"}],"extra":1}`, "extra"},
		{"wrong type", `{"suggestions":"none"}`, "/suggestions"},
		{"more drafts than asked", `{"suggestions":[` + repeat(`{"subject":"s","body":"b","tone":"t"}`, 4) + `]}`, "/suggestions"},
		{"an array", `[` + validCompose + `]`, "object"},
	}
	op := operations(t)["email-compose"]
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := decodeInput(t, op, withApproval(sample["email-compose"], "ap-7"))
			ex := &fakeExec{script: []answer{
				{text: tc.first, cost: 1500, model: "deepseek", fallback: true},
				{text: validCompose, cost: 2700, model: "gemini_flash"},
			}}
			out, err := op.Run(context.Background(), ex, in, baseCall("req-9"))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !out.Repaired || out.Cost != 4200 || out.Model != "gemini_flash" || !out.FallbackUsed || out.RequestID != "req-9" {
				t.Errorf("outcome = %+v, want repaired, cost 4200 (both calls), model of the repair, fallback from the first", out)
			}
			calls := ex.Calls()
			if len(calls) != 2 {
				t.Fatalf("%d calls, want 2", len(calls))
			}
			first, repair := calls[0], calls[1]
			if first.Continuation || first.RequestID != "req-9" || first.ApprovalID != "ap-7" {
				t.Errorf("first call: continuation %v, request %q, approval %q", first.Continuation, first.RequestID, first.ApprovalID)
			}
			if !repair.Continuation || repair.RequestID != "req-9-repair" || repair.ApprovalID != "" {
				t.Errorf("repair call: continuation %v, request %q, approval %q; want true, req-9-repair, none",
					repair.Continuation, repair.RequestID, repair.ApprovalID)
			}
			if repair.OperationID != first.OperationID || repair.UserID != "alice" || !repair.JSON || !bytes.Equal(repair.Schema, first.Schema) {
				t.Errorf("repair call lost the operation, user, JSON mode or schema: %+v", repair)
			}
			if n := len(first.Messages); len(repair.Messages) != n+2 || !slices.Equal(repair.Messages[:n], first.Messages) {
				t.Fatalf("repair messages = %+v, want the first call's plus two", repair.Messages)
			}
			n := len(repair.Messages)
			if m := repair.Messages[n-2]; m.Role != llm.RoleAssistant || m.Content != tc.first {
				t.Errorf("second to last message = %+v, want the invalid answer as the assistant's", m)
			}
			if m := repair.Messages[n-1]; m.Role != llm.RoleUser || !strings.Contains(m.Content, tc.wantErr) {
				t.Errorf("last message = %+v, want the user's naming the error (%q)", m, tc.wantErr)
			}
			if res := out.Result.(*intelligence.EmailComposeResult); len(res.Suggestions) != 1 || res.Suggestions[0].Body != "All on track." {
				t.Errorf("result = %+v, want the repaired answer", res)
			}
		})
	}
}

func TestRepairFailsTwice(t *testing.T) {
	op := operations(t)["email-compose"]
	in := decodeInput(t, op, sample["email-compose"])
	ex := &fakeExec{script: []answer{{text: "no", cost: 1000}, {text: `{"suggestions":[]}`, cost: 2000}}}
	out, err := op.Run(context.Background(), ex, in, baseCall("req-2"))
	var bad *intelligence.BadOutputError
	if !errors.As(err, &bad) {
		t.Fatalf("Run = %+v, %v; want a *BadOutputError", out, err)
	}
	if bad.Cost != 3000 || bad.OperationID != "email-compose" || bad.RequestID != "req-2" || !strings.Contains(bad.Reason, "/suggestions") {
		t.Errorf("BadOutputError = %+v, want cost 3000 of both calls and the second answer's error", bad)
	}
	if !strings.Contains(bad.Error(), "email-compose") {
		t.Errorf("Error() = %q", bad.Error())
	}
	if n := len(ex.Calls()); n != 2 {
		t.Errorf("%d calls, want 2: only one repair", n)
	}
}

// Pipeline errors pass through unchanged on the first call; on the repair they come wrapped in a
// *BadOutputError that carries the first answer's cost, and still unwrap to the executor's error.
func TestRunExecutorErrors(t *testing.T) {
	exceeded := &budget.ExceededError{Requested: money.MustUSD(1)}
	op := operations(t)["task-breakdown"]
	for _, tc := range []struct {
		name   string
		script []answer
		calls  int
	}{
		{"first call", []answer{{err: exceeded}}, 1},
		{"repair call", []answer{{text: "nope", cost: 10}, {err: exceeded}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := &fakeExec{script: tc.script}
			_, err := op.Run(context.Background(), ex, decodeInput(t, op, sample["task-breakdown"]), baseCall("r"))
			var got *budget.ExceededError
			if !errors.As(err, &got) || got != exceeded {
				t.Errorf("err = %v, want the executor's", err)
			}
			if n := len(ex.Calls()); n != tc.calls {
				t.Errorf("%d calls, want %d", n, tc.calls)
			}
		})
	}
	t.Run("pending approval", func(t *testing.T) {
		pending := &execute.PendingApprovalError{}
		ex := &fakeExec{script: []answer{{err: pending}}}
		_, err := op.Run(context.Background(), ex, decodeInput(t, op, sample["task-breakdown"]), baseCall("r"))
		if !errors.Is(err, pending) {
			t.Errorf("err = %v", err)
		}
	})
}

// Offline is reported only when every call was answered offline.
func TestRepairOfflineAndFallbackFlags(t *testing.T) {
	op := operations(t)["email-compose"]
	for _, tc := range []struct {
		name                     string
		first, second            answer
		wantOffline, wantFallbak bool
	}{
		{"both offline", answer{text: "x", offline: true}, answer{text: validCompose, offline: true}, true, false},
		{"only the first offline", answer{text: "x", offline: true}, answer{text: validCompose}, false, false},
		{"fallback on the repair", answer{text: "x"}, answer{text: validCompose, fallback: true}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := &fakeExec{script: []answer{tc.first, tc.second}}
			out, err := op.Run(context.Background(), ex, decodeInput(t, op, sample["email-compose"]), baseCall("r"))
			if err != nil {
				t.Fatal(err)
			}
			if out.Offline != tc.wantOffline || out.FallbackUsed != tc.wantFallbak {
				t.Errorf("offline %v fallback %v, want %v %v", out.Offline, out.FallbackUsed, tc.wantOffline, tc.wantFallbak)
			}
		})
	}
}

// Models wrap JSON in Markdown fences; the answer is accepted without a repair.
func TestCodeFencedJSON(t *testing.T) {
	op := operations(t)["email-compose"]
	for _, text := range []string{
		"```json\n" + validCompose + "\n```",
		"```JSON\n" + validCompose + "```",
		"```\n" + validCompose + "\n```",
		"  \n```json\n" + validCompose + "\n```\n  ",
		"```" + validCompose + "```",
		"```json\n\n" + validCompose + "\n\n```",
		"\n" + validCompose + "\n",
	} {
		ex := &fakeExec{script: []answer{{text: text}}}
		out, err := op.Run(context.Background(), ex, decodeInput(t, op, sample["email-compose"]), baseCall("r"))
		if err != nil || out.Repaired {
			t.Errorf("%q: err %v, repaired %v; want accepted as is", text, err, out.Repaired)
		}
	}
	// Prose around the JSON is not JSON.
	ex := &fakeExec{script: []answer{{text: "Here you go:\n```json\n" + validCompose + "\n```"}, {text: validCompose}}}
	out, err := op.Run(context.Background(), ex, decodeInput(t, op, sample["email-compose"]), baseCall("r"))
	if err != nil || !out.Repaired {
		t.Errorf("prose before the fence: err %v, repaired %v; want a repair", err, out.Repaired)
	}
}

// task-prioritize's schema makes the ids an enum of the input's: an invented id is invalid and
// gets repaired.
func TestTaskPrioritizeRejectsUnknownIDs(t *testing.T) {
	op := operations(t)["task-prioritize"]
	in := decodeInput(t, op, sample["task-prioritize"])
	good := `{"ordered":[{"id":"t1","priority":"high","reason":"due tomorrow"},{"id":"t3","priority":"medium","reason":"quick"},{"id":"t2","priority":"low","reason":"can wait"}]}`
	ex := &fakeExec{script: []answer{
		{text: `{"ordered":[{"id":"t1","priority":"high","reason":"r"},{"id":"t9","priority":"low","reason":"r"}]}`, cost: 5},
		{text: good, cost: 7},
	}}
	out, err := op.Run(context.Background(), ex, in, baseCall("r"))
	if err != nil {
		t.Fatal(err)
	}
	calls := ex.Calls()
	if !out.Repaired || len(calls) != 2 || out.Cost != 12 {
		t.Fatalf("repaired %v after %d calls, cost %v; want a repair costing 12", out.Repaired, len(calls), out.Cost)
	}
	if msg := calls[1].Messages[len(calls[1].Messages)-1].Content; !strings.Contains(msg, "/ordered/1/id") {
		t.Errorf("repair prompt does not point at the bad id: %s", msg)
	}
	var schema struct {
		Properties struct {
			Ordered struct {
				MaxItems int `json:"maxItems"`
				Items    struct {
					Properties struct {
						ID struct {
							Enum []string `json:"enum"`
						} `json:"id"`
					} `json:"properties"`
				} `json:"items"`
			} `json:"ordered"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(calls[0].Schema, &schema); err != nil {
		t.Fatal(err)
	}
	if ids := schema.Properties.Ordered.Items.Properties.ID.Enum; !slices.Equal(ids, []string{"t1", "t2", "t3"}) || schema.Properties.Ordered.MaxItems != 3 {
		t.Errorf("schema ids %v maxItems %d, want [t1 t2 t3] and 3", ids, schema.Properties.Ordered.MaxItems)
	}
	res := out.Result.(*intelligence.TaskPrioritizeResult)
	var got []string
	for _, r := range res.Ordered {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, []string{"t1", "t3", "t2"}) {
		t.Errorf("order %v, want the model's t1 t3 t2", got)
	}
}

// email-classify restricts the category to the ones given, when given.
func TestEmailClassifyCategories(t *testing.T) {
	op := operations(t)["email-classify"]
	in := decodeInput(t, op, sample["email-classify"])
	ex := &fakeExec{script: []answer{
		{text: `{"category":"travel","priority":"low","needs_reply":false,"confidence":0.5,"reasons":[]}`},
		{text: `{"category":"personal","priority":"normal","needs_reply":true,"confidence":0.9,"reasons":["a question"]}`},
	}}
	out, err := op.Run(context.Background(), ex, in, baseCall("r"))
	if err != nil {
		t.Fatal(err)
	}
	res := out.Result.(*intelligence.EmailClassifyResult)
	if !out.Repaired || res.Category != "personal" || !res.NeedsReply || res.Confidence != 0.9 {
		t.Errorf("repaired %v, result %+v", out.Repaired, res)
	}
}

// calendar-time drops slots a schema cannot rule out (outside the window, overlapping a busy
// interval, of the wrong length) and counts them.
func TestCalendarTimeDropsBadSlots(t *testing.T) {
	op := operations(t)["calendar-time"]
	// 30 minutes between 09:00 and 17:00 UTC; busy 12:00-13:00.
	in := decodeInput(t, op, sample["calendar-time"])
	slots := []intelligence.Slot{
		{Start: "2026-11-23T09:00:00Z", End: "2026-11-23T09:30:00Z", Reason: "first thing"},       // kept: starts at the window
		{Start: "2026-11-23T08:45:00Z", End: "2026-11-23T09:15:00Z", Reason: "before the window"}, // dropped
		{Start: "2026-11-23T11:45:00Z", End: "2026-11-23T12:15:00Z", Reason: "into busy"},         // dropped
		{Start: "2026-11-23T12:15:00Z", End: "2026-11-23T12:45:00Z", Reason: "inside busy"},       // dropped
		{Start: "2026-11-23T14:00:00+01:00", End: "2026-11-23T14:30:00+01:00", Reason: "offset"},  // kept: 13:00-13:30Z, right after busy
	}
	first := mustJSON(t, map[string]any{"slots": slots})
	ex := &fakeExec{script: []answer{{text: first}}}
	out, err := op.Run(context.Background(), ex, in, baseCall("r"))
	if err != nil {
		t.Fatal(err)
	}
	res := out.Result.(*intelligence.CalendarTimeResult)
	if out.Repaired || res.Discarded != 3 || len(res.Slots) != 2 || res.Slots[0].Reason != "first thing" || res.Slots[1].Reason != "offset" {
		t.Errorf("repaired %v, result %+v; want 2 kept (first thing, offset) and 3 discarded", out.Repaired, res)
	}

	more := []intelligence.Slot{
		{Start: "2026-11-23T10:00:00Z", End: "2026-11-23T11:00:00Z", Reason: "an hour"},         // dropped: wrong length
		{Start: "2026-11-23T16:45:00Z", End: "2026-11-23T17:15:00Z", Reason: "past the window"}, // dropped
		{Start: "2026-11-23T16:30:00Z", End: "2026-11-23T17:00:00Z", Reason: "ends at the end"}, // kept
		{Start: "2026-11-23T10:00:00Z", End: "2026-11-23T09:30:00Z", Reason: "backwards"},       // dropped
		{Start: "2026-11-24T10:00:00Z", End: "2026-11-24T10:30:00Z", Reason: "the day after"},   // dropped
	}
	ex = &fakeExec{script: []answer{{text: mustJSON(t, map[string]any{"slots": more})}}}
	out, err = op.Run(context.Background(), ex, decodeInput(t, op, sample["calendar-time"]), baseCall("r"))
	if err != nil {
		t.Fatal(err)
	}
	res = out.Result.(*intelligence.CalendarTimeResult)
	if res.Discarded != 4 || len(res.Slots) != 1 || res.Slots[0].Reason != "ends at the end" {
		t.Errorf("result %+v; want only 'ends at the end' kept and 4 discarded", res)
	}

	// A slot whose time is not a date-time fails the schema itself: repaired, not dropped.
	ex = &fakeExec{script: []answer{
		{text: `{"slots":[{"start":"10am","end":"10:30am","reason":"r"}]}`},
		{text: `{"slots":[]}`},
	}}
	out, err = op.Run(context.Background(), ex, decodeInput(t, op, sample["calendar-time"]), baseCall("r"))
	if err != nil {
		t.Fatal(err)
	}
	res = out.Result.(*intelligence.CalendarTimeResult)
	if !out.Repaired || res.Discarded != 0 || len(res.Slots) != 0 {
		t.Errorf("repaired %v, result %+v", out.Repaired, res)
	}
}

// The approval binds to the request without its approval_id: a held request re-sent with the id
// has the same fingerprint; any other request has another.
func TestFingerprintExcludesApprovalID(t *testing.T) {
	fingerprint := func(t *testing.T, op intelligence.Operation, body string) execute.Call {
		t.Helper()
		ex := offlineExec()
		if _, err := op.Run(context.Background(), ex, decodeInput(t, op, body), baseCall("r")); err != nil {
			t.Fatal(err)
		}
		return ex.Calls()[0]
	}
	for id, op := range operations(t) {
		t.Run(id, func(t *testing.T) {
			plain := fingerprint(t, op, sample[id])
			held := fingerprint(t, op, withApproval(sample[id], "0b5f6a6e-8d1e-4a57-9d5c-0c4a8f0e6f11"))
			if !bytes.Equal(plain.Fingerprint, held.Fingerprint) {
				t.Errorf("fingerprints differ:\n%s\n%s", plain.Fingerprint, held.Fingerprint)
			}
			if bytes.Contains(held.Fingerprint, []byte("0b5f6a6e")) {
				t.Errorf("fingerprint holds the approval id: %s", held.Fingerprint)
			}
			if plain.ApprovalID != "" || held.ApprovalID != "0b5f6a6e-8d1e-4a57-9d5c-0c4a8f0e6f11" {
				t.Errorf("approval ids %q and %q", plain.ApprovalID, held.ApprovalID)
			}
		})
	}
	op := operations(t)["email-compose"]
	base := fingerprint(t, op, `{"subject":"Hi","recipient_context":"Boss"}`)
	for _, tc := range []struct {
		body string
		same bool
	}{
		// Validation trims and fills defaults first, so the same request spelt differently binds the same.
		{`{"subject":" Hi ","recipient_context":"Boss","tone":"neutral","length":"medium","suggestions":2}`, true},
		{`{"subject":"Hi!","recipient_context":"Boss"}`, false},
		{`{"subject":"Hi","recipient_context":"Boss","suggestions":3}`, false},
		{`{"subject":"Hi","recipient_context":"Boss","key_points":["raise"]}`, false},
	} {
		got := fingerprint(t, op, tc.body)
		if bytes.Equal(got.Fingerprint, base.Fingerprint) != tc.same {
			t.Errorf("%s: same fingerprint = %v, want %v", tc.body, !tc.same, tc.same)
		}
	}
	// Different operations with alike inputs are told apart by the approval hash's operation id;
	// here it is enough that each call names its own operation.
	if c := fingerprint(t, operations(t)["task-breakdown"], sample["task-breakdown"]); c.OperationID != "task-breakdown" {
		t.Errorf("operation %q", c.OperationID)
	}
}

// The enum keeps ids to the tasks given, but not each task once: a ranking that lists one task
// twice (and so leaves another out) is not a priority order of the tasks.
func TestTaskPrioritizeDuplicateIDs(t *testing.T) {
	op := operations(t)["task-prioritize"]
	in := decodeInput(t, op, sample["task-prioritize"])
	good := `{"ordered":[{"id":"t1","priority":"high","reason":"r"},{"id":"t2","priority":"low","reason":"r"},{"id":"t3","priority":"low","reason":"r"}]}`
	ex := &fakeExec{script: []answer{
		{text: `{"ordered":[{"id":"t1","priority":"high","reason":"r"},{"id":"t1","priority":"low","reason":"again"}]}`},
		{text: good},
	}}
	out, err := op.Run(context.Background(), ex, in, baseCall("r"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range out.Result.(*intelligence.TaskPrioritizeResult).Ordered {
		if seen[r.ID] {
			t.Errorf("task-prioritize returned task %q twice without a repair; a JSON Schema cannot say 'each id "+
				"once', so the operation needs a check after validation (a repeated id treated as invalid, so it is repaired)", r.ID)
		}
		seen[r.ID] = true
	}
}
