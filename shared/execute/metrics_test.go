package execute_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/oplog"
)

// lockedBuffer is a log stream several calls may write at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// emfLines parses every line of out as one JSON object.
func emfLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var d map[string]any
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("a metrics line that is not one JSON object: %q", sc.Text())
		}
		docs = append(docs, d)
	}
	return docs
}

// Every finished call, answered or not, writes one EMF line through the pipeline's Metrics port,
// with the operation and model as dimensions and the cost the log row holds; a failed call
// counts one error. The user id never reaches the metrics.
func TestEveryFinishedCallWritesOneMetricsLine(t *testing.T) {
	const user = "user-metrics-private"
	tests := []struct {
		name  string
		setup func(e *env)
		model string
		cost  money.Nano
		// errors and fallbacks are the line's Errors and Fallbacks.
		errors, fallbacks float64
		in, out           float64
		wantErr           bool
	}{
		{name: "answered by the primary", setup: func(e *env) {
			e.deepseek.Default(okStep(llm.Usage{InputTokens: 100, OutputTokens: 50}))
		}, model: "deepseek", cost: 100*deepseekIn + 50*deepseekOut, in: 100, out: 50},
		{name: "answered by the fallback", setup: func(e *env) {
			e.deepseek.Default(failStep(llm.KindUnavailable))
			e.gemini.Default(okStep(llm.Usage{InputTokens: 100, OutputTokens: 50}))
		}, model: "gemini_flash", cost: 100*geminiIn + 50*geminiOut, fallbacks: 1, in: 100, out: 50},
		{name: "every model failed", setup: func(e *env) {
			e.deepseek.Default(failStep(llm.KindUnavailable))
			e.gemini.Default(failStep(llm.KindUnavailable))
			e.claude.Default(failStep(llm.KindUnavailable))
		}, model: emf.NoModel, errors: 1, wantErr: true},
		{name: "refused for its budget", setup: func(e *env) {
			if _, err := e.ledger.SetLimits(t.Context(), user, budget.Limits{DailyLimit: 1, Warning: 1}, "test"); err != nil {
				t.Fatal(err)
			}
		}, model: emf.NoModel, errors: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(e)
			var out lockedBuffer
			e.p.Metrics = emf.New(&out, emf.Options{Function: "route"})
			c := composeCall("metrics-1")
			c.UserID = user
			_, err := e.execute(c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("execute: %v, want an error: %v", err, tt.wantErr)
			}
			var exceeded *budget.ExceededError
			if tt.name == "refused for its budget" && !errors.As(err, &exceeded) {
				t.Fatalf("execute: %v, want the budget refusal", err)
			}
			docs := emfLines(t, out.String())
			if len(docs) != 1 {
				t.Fatalf("%d metrics lines, want 1:\n%s", len(docs), out.String())
			}
			if strings.Contains(out.String(), user) || strings.Contains(out.String(), c.RequestID) {
				t.Errorf("the metrics carry the user or request id:\n%s", out.String())
			}
			row := e.mustLog(c.RequestID)
			if money.Nano(row.Cost) != tt.cost {
				t.Fatalf("test setup: the log row costs %d, want %d", row.Cost, tt.cost)
			}
			d := docs[0]
			want := map[string]any{
				"function": "route", "operation": "email-compose", "model": tt.model,
				emf.MetricCost: float64(tt.cost), emf.MetricErrors: tt.errors, emf.MetricFallbacks: tt.fallbacks,
				emf.MetricInputTokens: tt.in, emf.MetricOutputTokens: tt.out,
				emf.MetricLatency: float64(row.LatencyMS),
			}
			for k, v := range want {
				if d[k] != v {
					t.Errorf("%s = %v, want %v", k, d[k], v)
				}
			}
		})
	}
}

// A call held for an admin's approval has not run: no metrics line (its approval is counted
// where it is decided, not here).
func TestAHeldCallWritesNoMetrics(t *testing.T) {
	e := newEnv(t)
	e.setRoute("email-compose", catalog.RouteChange{RequiresApproval: ptr(true)})
	var out lockedBuffer
	e.p.Metrics = emf.New(&out, emf.Options{Function: "route"})
	_, err := e.execute(composeCall("held-1"))
	var held *execute.PendingApprovalError
	if !errors.As(err, &held) {
		t.Fatalf("execute: %v, want it held for approval", err)
	}
	if out.String() != "" {
		t.Errorf("a held call wrote metrics:\n%s", out.String())
	}
}

// failingLog is an operation log that cannot be written (Postgres gone after the answer).
type failingLog struct{}

func (failingLog) Finish(context.Context, oplog.Record, oplog.Outcome) error {
	return errors.New("connection refused")
}

// An answer whose cost could not be recorded is withheld from the caller: the metrics count it
// as an error, at the cost the provider's usage came to.
func TestAnUnrecordedAnswerCountsAsAnError(t *testing.T) {
	e := newEnv(t)
	e.p.Log = failingLog{}
	var out lockedBuffer
	e.p.Metrics = emf.New(&out, emf.Options{Function: "route"})
	if _, err := e.execute(composeCall("unrecorded-1")); err == nil {
		t.Fatal("execute answered although its cost was not recorded")
	}
	docs := emfLines(t, out.String())
	if len(docs) != 1 {
		t.Fatalf("%d metrics lines, want 1:\n%s", len(docs), out.String())
	}
	if d := docs[0]; d[emf.MetricErrors] != 1.0 || d["model"] != "deepseek" || d[emf.MetricCost] != float64(100*deepseekIn+50*deepseekOut) {
		t.Errorf("line %v, want Errors 1 for deepseek at %d nano-USD", d, 100*deepseekIn+50*deepseekOut)
	}
}
