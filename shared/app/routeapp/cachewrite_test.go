package routeapp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/routeapp/routeapptest"
	"github.com/helixhq/helix/shared/llm/llmtest"
)

// Anthropic's cache writes are charged at the model's cache-write prices ($1.25 per 1M for a
// 5-minute write, $2 for a 1-hour one, Claude Haiku 4.5 as seeded), from the wire's usage through
// the real adapter to the log row and the budget, checked against a computation by hand.
func TestAnthropicCacheWritesAreChargedAtTheirRate(t *testing.T) {
	e := routeapptest.New(t, pg.NewPool(t), nil)
	e.Claude.Script(llmtest.OK("cached").WithUsage(llmtest.Usage{
		InputTokens: 100, CachedInputTokens: 200, CacheWriteTokens: 1000, CacheWrite1hTokens: 2000, OutputTokens: 50,
	}))
	// An admin may name the emergency model directly. The prompt is long enough to hold the
	// 3,300 input tokens the wire reports, as a real one would be.
	prompt := strings.Repeat("context ", 500)
	res := apitest.Do(t, http.MethodPost, e.URL+"/v1/chat/completions", e.Admin,
		`{"model":"claude","messages":[{"role":"user","content":"`+prompt+`"}],"max_tokens":64}`)
	res.WantStatus(t, http.StatusOK)

	// Per token, in nano-USD: input 1000, cache read 100, 5-minute write 1250, 1-hour write 2000,
	// output 5000.
	const want = 100*1000 + 200*100 + 1000*1250 + 2000*2000 + 50*5000 // 5,620,000 = $0.00562
	if got := res.Header.Get("X-Helix-Cost-Usd"); got != "0.00562" {
		t.Errorf("X-Helix-Cost-Usd = %s, want 0.00562", got)
	}
	var cost, in, cached, w5, w1h, out int64
	err := e.Pool.QueryRow(context.Background(), `
		SELECT cost_nano, input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens
		  FROM ai_operation_log WHERE model_used = 'claude'`).Scan(&cost, &in, &cached, &w5, &w1h, &out)
	if err != nil {
		t.Fatal(err)
	}
	if cost != want || in != 100 || cached != 200 || w5 != 1000 || w1h != 2000 || out != 50 {
		t.Errorf("log row: cost %d, tokens in %d cached %d writes %d/%d out %d; want cost %d and the wire's tokens", cost, in, cached, w5, w1h, out, want)
	}
	if d := e.Today(t, "ops"); int64(d.Spent) != want || d.Reserved != 0 {
		t.Errorf("budget = %+v, want %d spent", d, want)
	}
}
