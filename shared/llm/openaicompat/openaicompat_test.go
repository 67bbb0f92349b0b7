package openaicompat_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/openaicompat"
)

func newProvider(t *testing.T, baseURL, apiKey string) llm.Provider {
	return openaicompat.New(openaicompat.Config{Name: "deepseek", BaseURL: baseURL, APIKey: apiKey})
}

func TestContract(t *testing.T) {
	llmtest.Contract(t, llmtest.OpenAI, "deepseek-chat", newProvider)
}

func complete(t *testing.T, p llm.Provider, req llm.Request) (llm.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Complete(ctx, req)
}

func TestRequestOnTheWire(t *testing.T) {
	temp := 0.3
	zero := 0.0
	schema := []byte(`{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}}`)
	tests := []struct {
		name  string
		req   llm.Request
		check func(t *testing.T, body map[string]any)
	}{
		{
			name: "messages, max_tokens and temperature",
			req: llm.Request{Model: "deepseek-chat", MaxOutputTokens: 321, Temperature: &temp, Messages: []llm.Message{
				{Role: llm.RoleSystem, Content: "Be brief."},
				{Role: llm.RoleUser, Content: "Hi"},
				{Role: llm.RoleAssistant, Content: "Hello"},
				{Role: llm.RoleUser, Content: "Bye"},
			}},
			check: func(t *testing.T, body map[string]any) {
				wantMessages(t, body, "system:Be brief.", "user:Hi", "assistant:Hello", "user:Bye")
				if body["max_tokens"] != 321.0 {
					t.Errorf("max_tokens = %v, want 321", body["max_tokens"])
				}
				if got, _ := body["temperature"].(float64); got < 0.299 || got > 0.301 {
					t.Errorf("temperature = %v, want 0.3", body["temperature"])
				}
				if _, ok := body["response_format"]; ok {
					t.Error("response_format sent for a text request")
				}
				if body["stream"] != false {
					t.Errorf("stream = %v, want false", body["stream"])
				}
			},
		},
		{
			name: "temperature zero is still sent",
			req:  llm.Request{Model: "deepseek-chat", MaxOutputTokens: 10, Temperature: &zero, Messages: []llm.Message{{Role: llm.RoleUser, Content: "Hi"}}},
			check: func(t *testing.T, body map[string]any) {
				got, ok := body["temperature"].(float64)
				if !ok || got > 1e-30 {
					t.Errorf("temperature = %v (present %t), want (effectively) 0", body["temperature"], ok)
				}
			},
		},
		{
			name: "JSON mode adds a json hint when the prompt lacks one",
			req:  llm.Request{Model: "deepseek-chat", MaxOutputTokens: 50, JSON: true, Schema: schema, Messages: []llm.Message{{Role: llm.RoleUser, Content: "Classify this email."}}},
			check: func(t *testing.T, body map[string]any) {
				rf, _ := body["response_format"].(map[string]any)
				if rf["type"] != "json_object" {
					t.Errorf("response_format = %v, want json_object", body["response_format"])
				}
				msgs := messages(body)
				if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "system:") || !strings.Contains(strings.ToLower(msgs[0]), "json") {
					t.Errorf("messages = %q, want a system json hint first", msgs)
				}
			},
		},
		{
			name: "JSON hint joins an existing system message",
			req: llm.Request{Model: "deepseek-chat", MaxOutputTokens: 50, JSON: true, Messages: []llm.Message{
				{Role: llm.RoleSystem, Content: "You sort mail."}, {Role: llm.RoleUser, Content: "Classify."}}},
			check: func(t *testing.T, body map[string]any) {
				msgs := messages(body)
				if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "system:You sort mail.\n\n") || !strings.Contains(strings.ToLower(msgs[0]), "json") {
					t.Errorf("messages = %q, want the hint appended to the one system message", msgs)
				}
			},
		},
		{
			name: "JSON mode leaves a prompt that says json alone",
			req: llm.Request{Model: "deepseek-chat", MaxOutputTokens: 50, JSON: true, Messages: []llm.Message{
				{Role: llm.RoleSystem, Content: "Reply in JSON."}, {Role: llm.RoleUser, Content: "Classify."}}},
			check: func(t *testing.T, body map[string]any) {
				wantMessages(t, body, "system:Reply in JSON.", "user:Classify.")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.NewOpenAI(t)
			s.Script(llmtest.OK(`{"a":"x"}`))
			p := newProvider(t, s.URL, "sk-test")
			if _, err := complete(t, p, tt.req); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			reqs := s.Requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			if reqs[0].Path != "/chat/completions" {
				t.Errorf("path = %q, want /chat/completions", reqs[0].Path)
			}
			if got := reqs[0].Header.Get("Authorization"); got != "Bearer sk-test" {
				t.Errorf("Authorization = %q, want Bearer sk-test", got)
			}
			body := reqs[0].JSON()
			if body["model"] != tt.req.Model {
				t.Errorf("model = %v, want %s", body["model"], tt.req.Model)
			}
			tt.check(t, body)
		})
	}
}

// TestRecordedUsage feeds usage objects in the shapes the providers document and checks the
// normalization: prompt_tokens and completion_tokens include cached and reasoning tokens.
func TestRecordedUsage(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want llm.Usage
	}{
		{
			name: "DeepSeek chat with cache hits",
			raw:  `{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":1024},"prompt_cache_hit_tokens":1024,"prompt_cache_miss_tokens":176}`,
			want: llm.Usage{InputTokens: 176, CachedInputTokens: 1024, OutputTokens: 300},
		},
		{
			name: "DeepSeek cache fields only",
			raw:  `{"prompt_tokens":900,"completion_tokens":40,"total_tokens":940,"prompt_cache_hit_tokens":640,"prompt_cache_miss_tokens":260}`,
			want: llm.Usage{InputTokens: 260, CachedInputTokens: 640, OutputTokens: 40},
		},
		{
			name: "DeepSeek reasoner",
			raw:  `{"prompt_tokens":50,"completion_tokens":900,"total_tokens":950,"completion_tokens_details":{"reasoning_tokens":700},"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":50}`,
			want: llm.Usage{InputTokens: 50, OutputTokens: 200, ReasoningTokens: 700},
		},
		{
			name: "OpenAI style",
			raw:  `{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":128,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`,
			want: llm.Usage{InputTokens: 86, CachedInputTokens: 1920, OutputTokens: 172, ReasoningTokens: 128},
		},
		{
			name: "bare (vLLM, Ollama)",
			raw:  `{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}`,
			want: llm.Usage{InputTokens: 12, OutputTokens: 7},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.NewOpenAI(t)
			s.Script(llmtest.OK("ok").WithRawUsage(tt.raw))
			resp, err := complete(t, newProvider(t, s.URL, "k"), llmtest.ContractRequest("deepseek-chat"))
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if resp.Usage != tt.want {
				t.Errorf("usage = %+v, want %+v", resp.Usage, tt.want)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name       string
		reply      llmtest.Reply
		kind       llm.ErrorKind
		retryAfter time.Duration
	}{
		{"retry-after as HTTP date in the past", llmtest.RateLimited("Wed, 21 Oct 2015 07:28:00 GMT"), llm.KindRateLimited, 0},
		{"no retry-after", llmtest.RateLimited(""), llm.KindRateLimited, 0},
		{"fractional retry-after", llmtest.RateLimited("1.5"), llm.KindRateLimited, 1500 * time.Millisecond},
		{"402 insufficient balance", llmtest.Error(http.StatusPaymentRequired, "Insufficient Balance"), llm.KindInvalidRequest, 0},
		{"403", llmtest.Error(http.StatusForbidden, "forbidden"), llm.KindAuth, 0},
		{"422", llmtest.Error(http.StatusUnprocessableEntity, "bad parameter"), llm.KindInvalidRequest, 0},
		{"empty answer", llmtest.OK(""), llm.KindBadResponse, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.NewOpenAI(t)
			s.Script(tt.reply)
			_, err := complete(t, newProvider(t, s.URL, "k"), llmtest.ContractRequest("deepseek-chat"))
			e := llmtest.RequireError(t, err, tt.kind)
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retryAfter)
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	s := llmtest.StartOpenAI()
	url := s.URL
	s.Close()
	_, err := complete(t, newProvider(t, url, "k"), llmtest.ContractRequest("deepseek-chat"))
	llmtest.RequireError(t, err, llm.KindUnavailable)
}

func TestNameAndDefaults(t *testing.T) {
	if got := openaicompat.New(openaicompat.Config{}).Name(); got != "deepseek" {
		t.Errorf("default name = %q, want deepseek", got)
	}
	if got := openaicompat.New(openaicompat.Config{Name: "ollama", BaseURL: "http://localhost:11434/v1"}).Name(); got != "ollama" {
		t.Errorf("name = %q, want ollama", got)
	}
}

func messages(body map[string]any) []string {
	var out []string
	list, _ := body["messages"].([]any)
	for _, m := range list {
		mm, _ := m.(map[string]any)
		out = append(out, mm["role"].(string)+":"+mm["content"].(string))
	}
	return out
}

func wantMessages(t *testing.T, body map[string]any, want ...string) {
	t.Helper()
	got := messages(body)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages = %q, want %q", got, want)
	}
}

func TestStreamContract(t *testing.T) {
	llmtest.StreamContract(t, llmtest.OpenAI, "deepseek-chat", newProvider)
}

func TestStreamUsageShapes(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want llm.Usage
	}{
		{"DeepSeek cache fields only", `{"prompt_tokens":50,"completion_tokens":5,"total_tokens":55,"prompt_cache_hit_tokens":20,"prompt_cache_miss_tokens":30}`,
			llm.Usage{InputTokens: 30, CachedInputTokens: 20, OutputTokens: 5}},
		{"OpenAI details", `{"prompt_tokens":50,"completion_tokens":9,"total_tokens":59,"prompt_tokens_details":{"cached_tokens":10},"completion_tokens_details":{"reasoning_tokens":4}}`,
			llm.Usage{InputTokens: 40, CachedInputTokens: 10, OutputTokens: 5, ReasoningTokens: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.NewOpenAI(t)
			s.Script(llmtest.StreamOK("a ", "b").WithRawUsage(tt.raw))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := openaicompat.New(openaicompat.Config{BaseURL: s.URL, APIKey: "k"}).Stream(ctx, llmtest.ContractRequest("deepseek-chat"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := llmtest.ReadStream(t, st); err != io.EOF {
				t.Fatal(err)
			}
			if got := st.Response(); got.Usage != tt.want || !got.HasUsage {
				t.Errorf("usage %+v (HasUsage %t), want %+v", got.Usage, got.HasUsage, tt.want)
			}
		})
	}
}

// A server that ignores stream_options (some OpenAI-compatible ones do) sends no usage chunk:
// the stream still succeeds, with HasUsage false for the pipeline to bound.
func TestStreamWithoutUsageChunk(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, c := range []string{
			`{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`,
			`{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`[DONE]`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", c)
		}
	}))
	defer srv.Close()
	st, err := openaicompat.New(openaicompat.Config{BaseURL: srv.URL}).Stream(context.Background(), llmtest.ContractRequest("m"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := llmtest.ReadStream(t, st); err != io.EOF || strings.Join(got, "") != "Hi" {
		t.Fatalf("got %q then %v", got, err)
	}
	if r := st.Response(); r.HasUsage || r.Usage != (llm.Usage{}) || r.FinishReason != "stop" || r.ProviderRequestID != "c1" || r.Chunks != 1 {
		t.Errorf("response %+v, want no usage, stop, the chunk id, 1 chunk", r)
	}
}
