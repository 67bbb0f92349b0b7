package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/pipeline"
	"github.com/helixhq/helix/shared/emf"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// deepseek answers every call with 100 tokens in and 50 out.
type deepseek struct{}

func (deepseek) Name() string { return "deepseek" }
func (deepseek) Complete(context.Context, llm.Request) (llm.Response, error) {
	return llm.Response{Text: "ok", FinishReason: "stop", Usage: llm.Usage{InputTokens: 100, OutputTokens: 50}}, nil
}

type providers struct{}

func (providers) Get(name string) (llm.Provider, bool) { return deepseek{}, name == "deepseek" }

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

var tokens = apitest.Tokens{Secret: "pipeline-test-secret-0123456789-0123456789", Issuer: "https://auth.helix.test/pipeline", Audience: "helix-pipeline"}

// The pipeline a function builds writes its calls' metrics to the core's writer, the one its
// main sets (functions/route, chat, synthesis): one line per executed call, priced as the log
// row is. Without one (tests, the dev server) it has no Metrics at all, not a nil writer
// in an interface that would not compare equal to nil.
func TestNewWiresTheCoresMetricsWriter(t *testing.T) {
	for _, withWriter := range []bool{true, false} {
		name := map[bool]string{true: "writer set", false: "no writer"}[withWriter]
		t.Run(name, func(t *testing.T) {
			var out lockedBuffer
			a := apitest.NewApp(t, tokens, pg.NewPool(t), apitest.Log(t))
			if withWriter {
				a.Metrics = emf.New(&out, emf.Options{Function: "route"})
			}
			cache, _ := a.Catalog()
			p := pipeline.New(a.Core, cache, a.Toggles, providers{})
			if !withWriter {
				if p.Metrics != nil {
					t.Fatalf("Metrics %#v without a writer, want nil", p.Metrics)
				}
				return
			}
			res, err := p.Execute(t.Context(), execute.Call{RequestID: "pipeline-metrics-1", UserID: "u-pipeline",
				OperationID: "email-compose", Messages: []llm.Message{{Role: llm.RoleUser, Content: "hello"}}})
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 1 {
				t.Fatalf("%d lines, want 1:\n%s", len(lines), out.String())
			}
			var d map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &d); err != nil {
				t.Fatal(err)
			}
			const cost = 100*280 + 50*420 // DeepSeek's seeded prices, nano-USD per token
			if res.Cost != cost {
				t.Fatalf("test setup: the call cost %d, want %d", res.Cost, cost)
			}
			if d["function"] != "route" || d["operation"] != "email-compose" || d["model"] != "deepseek" ||
				d[emf.MetricCost] != float64(cost) || d[emf.MetricErrors] != 0.0 {
				t.Errorf("line %v, want route/email-compose/deepseek at %d nano-USD without error", d, cost)
			}
		})
	}
}
