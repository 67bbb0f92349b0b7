package intelligence_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/intelligence"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/offline"
	"github.com/helixhq/helix/shared/money"
)

// sample is a valid request body for every operation, keyed by operation id. Each one sets most
// of its input's fields, so prompts and schemas see realistic input.
var sample = map[string]string{
	"email-compose": `{"subject":"Project Update","recipient_context":"Manager","key_points":["v2 shipped","budget on track"],"tone":"formal","suggestions":3}`,
	"email-classify": `{"subject":"Lunch?","from":"ann@example.com","body":"Are you free for lunch on Friday?",
		"categories":["work","personal","spam"]}`,
	"email-respond": `{"original":{"from":"ann@example.com","subject":"Lunch?","body":"Are you free for lunch on Friday?"},
		"intent":"accept","tone":"friendly","suggestions":2}`,
	"calendar-prep": `{"title":"Quarterly review","start":"2026-11-23T09:00:00Z","attendees":["Ann","Bo"],
		"agenda":"Q3 numbers, hiring","notes":"Bo wants more budget"}`,
	"calendar-time": `{"duration_minutes":30,"window_start":"2026-11-23T09:00:00Z","window_end":"2026-11-23T17:00:00Z",
		"busy":[{"start":"2026-11-23T12:00:00Z","end":"2026-11-23T13:00:00Z"}],"attendees":["Ann"],"timezone":"Europe/Berlin"}`,
	"task-prioritize": `{"tasks":[{"id":"t1","title":"Write the report","due":"2026-11-24T17:00:00Z","estimate_minutes":90},
		{"id":"t2","title":"Book travel"},{"id":"t3","title":"Reply to Ann","notes":"about Friday"}],"context":"busy week"}`,
	"task-breakdown":    `{"task":"Plan the team offsite","context":"12 people, 2 days","max_steps":4}`,
	"analytics-summary": `{"metrics":[{"name":"revenue","value":120.5,"unit":"kUSD","previous":100},{"name":"churn","value":0}],"period":"November","audience":"the board"}`,
	"analytics-anomaly": `{"metric":"signups","sensitivity":"high","series":[{"timestamp":"2026-11-01T00:00:00Z","value":10},
		{"timestamp":"2026-11-02T00:00:00Z","value":11},{"timestamp":"2026-11-03T00:00:00Z","value":95},
		{"timestamp":"2026-11-04T00:00:00Z","value":12}]}`,
}

// operations returns the operations by id.
func operations(t testing.TB) map[string]intelligence.Operation {
	t.Helper()
	ops := map[string]intelligence.Operation{}
	for _, op := range intelligence.Operations() {
		ops[op.OperationID()] = op
	}
	return ops
}

// decodeInput decodes body the way the HTTP layer does and validates it.
func decodeInput(t testing.TB, op intelligence.Operation, body string) intelligence.Input {
	t.Helper()
	in := op.NewInput()
	if err := httpapi.DecodeJSONBytes(strings.NewReader(body), in); err != nil {
		t.Fatalf("%s: decode %s: %v", op.OperationID(), body, err)
	}
	if err := in.Validate(); err != nil {
		t.Fatalf("%s: validate %s: %v", op.OperationID(), body, err)
	}
	return in
}

// withApproval adds "approval_id" to a JSON object body.
func withApproval(body, id string) string {
	return `{"approval_id":` + fmt.Sprintf("%q", id) + `,` + strings.TrimPrefix(strings.TrimSpace(body), "{")
}

// answer is one scripted reply of the fake executor.
type answer struct {
	text     string
	cost     money.Nano
	model    string
	fallback bool
	offline  bool
	err      error
}

// fakeExec is an Executor that records every call and answers from a script.
type fakeExec struct {
	mu      sync.Mutex
	script  []answer
	calls   []execute.Call
	respond func(c execute.Call) answer // used once the script is empty, when set
}

func (f *fakeExec) Execute(_ context.Context, c execute.Call) (execute.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.Messages = append([]llm.Message(nil), c.Messages...)
	f.calls = append(f.calls, c)
	var a answer
	switch {
	case len(f.script) > 0:
		a, f.script = f.script[0], f.script[1:]
	case f.respond != nil:
		a = f.respond(c)
	default:
		return execute.Result{}, errors.New("fakeExec: unexpected call")
	}
	if a.err != nil {
		return execute.Result{}, a.err
	}
	model := a.model
	if model == "" {
		model = "deepseek"
	}
	return execute.Result{
		RequestID: c.RequestID, Text: a.text, Cost: a.cost, Model: catalog.Model{Key: model},
		FallbackUsed: a.fallback, Offline: a.offline,
	}, nil
}

func (f *fakeExec) Calls() []execute.Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]execute.Call(nil), f.calls...)
}

// offlineExec answers every call the way the real pipeline does with no provider key: through
// the offline model, at no cost.
func offlineExec() *fakeExec {
	return &fakeExec{respond: func(c execute.Call) answer {
		resp, err := offline.New().Complete(context.Background(), llm.Request{
			Model: "offline", Messages: c.Messages, MaxOutputTokens: 1024, JSON: c.JSON, Schema: c.Schema,
		})
		if err != nil {
			return answer{err: err}
		}
		return answer{text: resp.Text, model: "deepseek", offline: resp.Offline}
	}}
}

// baseCall is what the HTTP layer passes to Run.
func baseCall(id string) execute.Call {
	return execute.Call{RequestID: id, UserID: "alice"}
}

// mustJSON marshals v.
func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
