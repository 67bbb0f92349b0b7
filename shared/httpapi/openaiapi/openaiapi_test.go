package openaiapi_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/helixhq/helix/shared/llm/llmtest"
)

// headerTap is the client's transport: it keeps the last response's status and headers, which
// the SDK does not hand out for every call.
type headerTap struct {
	mu     sync.Mutex
	header http.Header
	status int
}

func (h *headerTap) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		h.mu.Lock()
		h.header, h.status = res.Header.Clone(), res.StatusCode
		h.mu.Unlock()
	}
	return res, err
}

func (h *headerTap) last() (int, http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status, h.header
}

// sdk returns the official go-openai client pointed at Helix's /v1 with tok as its API key.
func (e *env) sdk(tok string) (*openai.Client, *headerTap) {
	tap := &headerTap{}
	cfg := openai.DefaultConfig(tok)
	cfg.BaseURL = e.URL + "/v1"
	cfg.HTTPClient = &http.Client{Transport: tap}
	return openai.NewClientWithConfig(cfg), tap
}

func userMessage(text string) []openai.ChatCompletionMessage {
	return []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: "You are terse."},
		{Role: openai.ChatMessageRoleUser, Content: text},
	}
}

// The official client, unchanged, against Helix: model "auto", an operation, and a model key.
func TestSDKChatCompletion(t *testing.T) {
	e := newEnv(t)
	client, tap := e.sdk(e.Alice)
	// Usage reported by DeepSeek's wire: 1000 uncached + 200 cached input, 300 visible + 50
	// reasoning output. Cost: 1000×280 + 200×28 + 350×420 = 432600 nano-USD.
	usage := llmtest.Usage{InputTokens: 1000, CachedInputTokens: 200, OutputTokens: 300, ReasoningTokens: 50}
	for _, tc := range []struct {
		model, op, answeredBy string
		server                *llmtest.Server
		costUSD               string
	}{
		{"auto", "chat_message", "deepseek", e.DeepSeek, "0.0004326"},
		{"helix/email-compose", "email-compose", "deepseek", e.DeepSeek, "0.0004326"},
		{"deepseek", "chat_message", "deepseek", e.DeepSeek, "0.0004326"},
		// Pinned to Gemini: 1000×100 + 200×10 + 350×400 = 242000 nano-USD.
		{"gemini_flash", "chat_message", "gemini_flash", e.Gemini, "0.000242"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			before := e.RequestCounts()
			tc.server.Script(llmtest.OK("Hello from " + tc.answeredBy).WithUsage(usage))
			res, err := client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
				Model: tc.model, Messages: userMessage("Say hello."), MaxCompletionTokens: 64,
			})
			if err != nil {
				t.Fatalf("CreateChatCompletion: %v", err)
			}
			if len(res.Choices) != 1 || res.Choices[0].Message.Content != "Hello from "+tc.answeredBy ||
				res.Choices[0].Message.Role != openai.ChatMessageRoleAssistant || res.Choices[0].FinishReason != openai.FinishReasonStop {
				t.Errorf("choices = %+v", res.Choices)
			}
			if res.Model != tc.answeredBy || res.Object != "chat.completion" || !strings.HasPrefix(res.ID, "chatcmpl-") || res.Created == 0 {
				t.Errorf("response = id %q object %q model %q created %d", res.ID, res.Object, res.Model, res.Created)
			}
			u := res.Usage
			if u.PromptTokens != 1200 || u.CompletionTokens != 350 || u.TotalTokens != 1550 ||
				u.PromptTokensDetails == nil || u.PromptTokensDetails.CachedTokens != 200 ||
				u.CompletionTokensDetails == nil || u.CompletionTokensDetails.ReasoningTokens != 50 {
				t.Errorf("usage = %+v (details %+v %+v)", u, u.PromptTokensDetails, u.CompletionTokensDetails)
			}
			status, h := tap.last()
			if status != http.StatusOK || h.Get("X-Helix-Cost-Usd") != tc.costUSD || h.Get("X-Helix-Model") != tc.answeredBy ||
				h.Get("X-Helix-Operation-Id") != tc.op {
				t.Errorf("status %d, headers cost %q model %q op %q; want cost %s", status, h.Get("X-Helix-Cost-Usd"),
					h.Get("X-Helix-Model"), h.Get("X-Helix-Operation-Id"), tc.costUSD)
			}
			// The SDK exposes the headers too.
			if got := res.Header().Get("X-Helix-Cost-Usd"); got != tc.costUSD {
				t.Errorf("res.Header() cost = %q", got)
			}
			if id := h.Get("X-Request-Id"); res.ID != "chatcmpl-"+id {
				t.Errorf("id %q, X-Request-Id %q", res.ID, id)
			}
			after := e.RequestCounts()
			if sum(after)-sum(before) != 1 {
				t.Fatalf("provider requests %v → %v, want one", before, after)
			}
			// max_completion_tokens reached the provider as its output cap.
			reqs := tc.server.Requests()
			body := reqs[len(reqs)-1].JSON()
			limit := body["max_tokens"]
			if gc, ok := body["generationConfig"].(map[string]any); ok {
				limit = gc["maxOutputTokens"]
			}
			if limit != 64.0 {
				t.Errorf("provider output cap %v, want 64", limit)
			}
		})
	}
	rows := e.LogRows(t)
	want := []string{"chat_message", "email-compose", "chat_message", "chat_message"}
	var ops []string
	for _, r := range rows {
		ops = append(ops, r.OperationID)
	}
	if !slices.Equal(ops, want) {
		t.Errorf("logged operations %v, want %v", ops, want)
	}
	if len(rows) == 4 && (rows[0].CostNano != 432600 || rows[3].CostNano != 242000 || rows[3].Model != "gemini_flash" || rows[3].Fallback) {
		t.Errorf("log rows = %+v", rows)
	}
}

func sum(c [3]int) int { return c[0] + c[1] + c[2] }

func TestSDKListModels(t *testing.T) {
	e := newEnv(t)
	client, _ := e.sdk(e.Alice)
	list, err := client.ListModels(context.Background())
	if err != nil {
		t.Fatalf("ListModels: %v", err)
	}
	ids := map[string]string{}
	for _, m := range list.Models {
		if m.Object != "model" {
			t.Errorf("%s: object %q", m.ID, m.Object)
		}
		ids[m.ID] = m.OwnedBy
	}
	for id, owner := range map[string]string{
		"auto": "helix", "helix/chat_message": "helix", "helix/email-compose": "helix", "helix/analytics-anomaly": "helix",
		"deepseek": "deepseek", "gemini_flash": "gemini",
	} {
		if got, ok := ids[id]; !ok || got != owner {
			t.Errorf("model %s: listed %v, owned by %q; want owned by %q", id, ok, got, owner)
		}
	}
	// Disabled operations, models without a provider, and the emergency model (not open to
	// direct access by default) are not offered to a user.
	for _, id := range []string{"helix/email_analysis", "helix/audio_transcription", "speech", "claude"} {
		if _, ok := ids[id]; ok {
			t.Errorf("model %s is listed", id)
		}
	}
	noAuth, _ := e.sdk("")
	if _, err := noAuth.ListModels(context.Background()); !isAPIError(err, http.StatusUnauthorized, "unauthorized", "authentication_error") {
		t.Errorf("ListModels without a token: %v", err)
	}
}

func isAPIError(err error, status int, code, typ string) bool {
	var apiErr *openai.APIError
	return errors.As(err, &apiErr) && apiErr.HTTPStatusCode == status && apiErr.Code == code && apiErr.Type == typ && apiErr.Message != ""
}

// Errors reach the SDK as *openai.APIError with the status, Helix's code and OpenAI's type.
func TestSDKErrors(t *testing.T) {
	e := newEnv(t)
	client, _ := e.sdk(e.Alice)
	ctx := context.Background()
	req := func(model string) openai.ChatCompletionRequest {
		return openai.ChatCompletionRequest{Model: model, Messages: userMessage("hi")}
	}
	withTools := req("auto")
	withTools.Tools = []openai.Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_weather"}}}
	withN := req("auto")
	withN.N = 2
	hot := req("auto")
	hot.Temperature = 2.5
	withStop := req("auto")
	withStop.Stop = []string{"\n"}

	cases := []struct {
		name             string
		call             func() error
		status           int
		code, typ, param string
	}{
		{"unknown model", func() error { _, err := client.CreateChatCompletion(ctx, req("gpt-4o")); return err },
			404, "model_not_found", "not_found_error", ""},
		{"unknown operation", func() error { _, err := client.CreateChatCompletion(ctx, req("helix/poetry")); return err },
			404, "model_not_found", "not_found_error", ""},
		{"stream of an unknown model", func() error { _, err := client.CreateChatCompletionStream(ctx, req("gpt-4o")); return err },
			404, "model_not_found", "not_found_error", ""},
		{"tools", func() error { _, err := client.CreateChatCompletion(ctx, withTools); return err },
			400, "unsupported_parameter", "invalid_request_error", "tools"},
		{"n", func() error { _, err := client.CreateChatCompletion(ctx, withN); return err },
			400, "unsupported_parameter", "invalid_request_error", "n"},
		{"stop", func() error { _, err := client.CreateChatCompletion(ctx, withStop); return err },
			400, "unsupported_parameter", "invalid_request_error", "stop"},
		{"temperature", func() error { _, err := client.CreateChatCompletion(ctx, hot); return err },
			400, "invalid_field", "invalid_request_error", "temperature"},
		{"no token", func() error {
			c, _ := e.sdk("")
			_, err := c.CreateChatCompletion(ctx, req("auto"))
			return err
		}, 401, "unauthorized", "authentication_error", ""},
		{"foreign token", func() error {
			c, _ := e.sdk("sk-proj-not-a-helix-token")
			_, err := c.CreateChatCompletion(ctx, req("auto"))
			return err
		}, 401, "unauthorized", "authentication_error", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v (%T), want *openai.APIError", err, err)
			}
			if apiErr.HTTPStatusCode != tc.status || apiErr.Code != tc.code || apiErr.Type != tc.typ || apiErr.Message == "" {
				t.Errorf("APIError = status %d code %v type %q message %q; want %d %s %s",
					apiErr.HTTPStatusCode, apiErr.Code, apiErr.Type, apiErr.Message, tc.status, tc.code, tc.typ)
			}
			switch {
			case tc.param == "" && apiErr.Param != nil:
				t.Errorf("param = %q, want none", *apiErr.Param)
			case tc.param != "" && (apiErr.Param == nil || *apiErr.Param != tc.param):
				t.Errorf("param = %v, want %q", apiErr.Param, tc.param)
			}
		})
	}
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v for refused requests", c)
	}
	if rows := e.LogRows(t); len(rows) != 0 {
		t.Errorf("log rows %+v for refused requests", rows)
	}
}

func TestSDKBudgetExceeded(t *testing.T) {
	e := newEnv(t)
	e.SetLimits(t, "alice", 0.0001)
	client, tap := e.sdk(e.Alice)
	_, err := client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "auto", Messages: userMessage("hi")})
	if !isAPIError(err, http.StatusPaymentRequired, "budget_exceeded", "insufficient_quota") {
		t.Fatalf("err = %#v, want a 402 budget_exceeded APIError", err)
	}
	if _, h := tap.last(); h.Get("X-Helix-Cost-Usd") != "" {
		t.Errorf("cost header on a refused call: %q", h.Get("X-Helix-Cost-Usd"))
	}
	if c := e.RequestCounts(); c != [3]int{} {
		t.Errorf("provider requests %v, want none", c)
	}
	// Bob is not limited.
	bob, _ := e.sdk(e.Bob)
	if _, err := bob.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "auto", Messages: userMessage("hi")}); err != nil {
		t.Errorf("bob: %v", err)
	}
}

// A pinned model is that model only: when its provider fails, nothing else is asked.
func TestPinnedModelDoesNotFailOver(t *testing.T) {
	e := newEnv(t)
	e.DeepSeek.SetDefault(llmtest.Error(http.StatusInternalServerError, "internal error"))
	client, _ := e.sdk(e.Alice)
	_, err := client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "deepseek", Messages: userMessage("hi")})
	if !isAPIError(err, http.StatusServiceUnavailable, "providers_unavailable", "api_error") {
		t.Fatalf("err = %v, want a 503 providers_unavailable APIError", err)
	}
	if c := e.RequestCounts(); c[0] == 0 || c[1] != 0 || c[2] != 0 {
		t.Errorf("provider requests %v: only DeepSeek may be asked", c)
	}
	if d := e.Today(t, "alice"); d.Spent != 0 || d.Reserved != 0 {
		t.Errorf("spent %d reserved %d after a failed call", d.Spent, d.Reserved)
	}

	// "auto" fails over.
	e.Gemini.Script(llmtest.OK("from gemini"))
	res, err := client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "auto", Messages: userMessage("hi")})
	if err != nil || res.Model != "gemini_flash" || res.Choices[0].Message.Content != "from gemini" {
		t.Errorf("auto with DeepSeek down: %+v, %v", res, err)
	}
}
