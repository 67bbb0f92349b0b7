package anthropic_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/anthropic"
	"github.com/helixhq/helix/shared/llm/llmtest"
)

const model = "claude-haiku-4-5"

func newProvider(t *testing.T, baseURL, apiKey string) llm.Provider {
	return anthropic.New(anthropic.Config{BaseURL: baseURL, APIKey: apiKey})
}

func TestContract(t *testing.T) {
	llmtest.Contract(t, llmtest.Anthropic, model, newProvider)
}

func complete(t *testing.T, p llm.Provider, req llm.Request) (llm.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Complete(ctx, req)
}

type sentBody struct {
	Model     string   `json:"model"`
	MaxTokens *int64   `json:"max_tokens"`
	Temp      *float64 `json:"temperature"`
	System    []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"system"`
	Messages []struct {
		Role    string `json:"role"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	} `json:"messages"`
	OutputConfig *struct {
		Format struct {
			Type   string          `json:"type"`
			Schema json.RawMessage `json:"schema"`
		} `json:"format"`
	} `json:"output_config"`
}

func sent(t *testing.T, s *llmtest.Server) (llmtest.Request, sentBody) {
	t.Helper()
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	var b sentBody
	if err := json.Unmarshal(reqs[0].Body, &b); err != nil {
		t.Fatalf("body: %v", err)
	}
	return reqs[0], b
}

func TestRequestOnTheWire(t *testing.T) {
	s := llmtest.NewAnthropic(t)
	p := anthropic.New(anthropic.Config{BaseURL: s.URL, APIKey: "sk-ant-test"})
	temp := 0.0
	_, err := complete(t, p, llm.Request{
		Model: model, MaxOutputTokens: 700, Temperature: &temp,
		Messages: []llm.Message{
			{Role: llm.RoleSystem, Content: "You are Helix."},
			{Role: llm.RoleUser, Content: "Hi"},
			{Role: llm.RoleAssistant, Content: "Hello"},
			{Role: llm.RoleUser, Content: "Plan my day"},
		},
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	r, b := sent(t, s)
	if r.Path != "/v1/messages" {
		t.Errorf("path = %q, want /v1/messages", r.Path)
	}
	if got := r.Header.Get("x-api-key"); got != "sk-ant-test" {
		t.Errorf("x-api-key = %q", got)
	}
	if got := r.Header.Get("anthropic-version"); got == "" {
		t.Error("anthropic-version header missing")
	}
	if got := r.Header.Get("Authorization"); got != "" {
		t.Errorf("Authorization = %q, want none (the key goes in x-api-key)", got)
	}
	if b.Model != model || b.MaxTokens == nil || *b.MaxTokens != 700 {
		t.Errorf("model %q max_tokens %v, want %s and 700", b.Model, b.MaxTokens, model)
	}
	if b.Temp == nil || *b.Temp != 0 {
		t.Errorf("temperature = %v, want an explicit 0", b.Temp)
	}
	if len(b.System) != 1 || b.System[0].Text != "You are Helix." {
		t.Errorf("system = %+v, want the system message there and only there", b.System)
	}
	var turns []string
	for _, m := range b.Messages {
		for _, c := range m.Content {
			turns = append(turns, m.Role+":"+c.Type+":"+c.Text)
		}
	}
	want := []string{"user:text:Hi", "assistant:text:Hello", "user:text:Plan my day"}
	if !reflect.DeepEqual(turns, want) {
		t.Errorf("messages = %q, want %q", turns, want)
	}
	if b.OutputConfig != nil {
		t.Errorf("output_config sent for a text request: %+v", b.OutputConfig)
	}
}

func TestJSONRequests(t *testing.T) {
	schema := `{"type":"object","required":["steps"],"properties":{"steps":{"type":"array","items":{"type":"string"}}}}`
	req := llm.Request{Model: model, MaxOutputTokens: 300, JSON: true, Schema: json.RawMessage(schema),
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "Break down: ship the release"}}}

	t.Run("schema in the system prompt, fences stripped", func(t *testing.T) {
		s := llmtest.NewAnthropic(t)
		s.Script(llmtest.OK("```json\n{\"steps\":[\"tag\",\"build\"]}\n```"))
		resp, err := complete(t, anthropic.New(anthropic.Config{BaseURL: s.URL, APIKey: "k"}), req)
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		if resp.Text != `{"steps":["tag","build"]}` {
			t.Errorf("text = %q, want the bare JSON", resp.Text)
		}
		_, b := sent(t, s)
		if len(b.System) != 1 || !strings.Contains(b.System[0].Text, "JSON") || !strings.Contains(b.System[0].Text, schema) {
			t.Errorf("system = %+v, want a JSON instruction carrying the schema", b.System)
		}
		if b.OutputConfig != nil {
			t.Error("output_config sent without StructuredOutputs")
		}
	})

	t.Run("structured outputs", func(t *testing.T) {
		s := llmtest.NewAnthropic(t)
		s.Script(llmtest.OK(`{"steps":["tag"]}`))
		p := anthropic.New(anthropic.Config{BaseURL: s.URL, APIKey: "k", StructuredOutputs: true})
		if _, err := complete(t, p, req); err != nil {
			t.Fatalf("Complete: %v", err)
		}
		_, b := sent(t, s)
		if b.OutputConfig == nil || b.OutputConfig.Format.Type != "json_schema" {
			t.Fatalf("output_config = %+v, want format json_schema", b.OutputConfig)
		}
		var got, want any
		_ = json.Unmarshal(b.OutputConfig.Format.Schema, &got)
		_ = json.Unmarshal([]byte(schema), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("schema sent = %s, want %s", b.OutputConfig.Format.Schema, schema)
		}
		if len(b.System) != 1 || strings.Contains(b.System[0].Text, schema) {
			t.Errorf("system = %+v, want the short JSON instruction only", b.System)
		}
	})

	t.Run("fences left alone for text", func(t *testing.T) {
		s := llmtest.NewAnthropic(t)
		s.Script(llmtest.OK("```go\nfmt.Println()\n```"))
		resp, err := complete(t, anthropic.New(anthropic.Config{BaseURL: s.URL, APIKey: "k"}), llmtest.ContractRequest(model))
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		if !strings.HasPrefix(resp.Text, "```go") {
			t.Errorf("text = %q, want it unchanged", resp.Text)
		}
	})
}

func TestRecordedUsage(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want llm.Usage
	}{
		{
			name: "cache read and write without a breakdown (5-minute writes), thinking",
			raw:  `{"input_tokens":50,"cache_creation_input_tokens":200,"cache_read_input_tokens":1000,"output_tokens":300,"output_tokens_details":{"thinking_tokens":120},"service_tier":"standard"}`,
			want: llm.Usage{InputTokens: 50, CachedInputTokens: 1000, CacheWriteTokens: 200, OutputTokens: 180, ReasoningTokens: 120},
		},
		{
			name: "cache writes by lifetime",
			raw:  `{"input_tokens":12,"cache_creation_input_tokens":3000,"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},"cache_read_input_tokens":0,"output_tokens":40}`,
			want: llm.Usage{InputTokens: 12, CacheWriteTokens: 1000, CacheWrite1hTokens: 2000, OutputTokens: 40},
		},
		{
			name: "a breakdown larger than the total is capped by it",
			raw:  `{"input_tokens":1,"cache_creation_input_tokens":100,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":500},"output_tokens":1}`,
			want: llm.Usage{InputTokens: 1, CacheWrite1hTokens: 100, OutputTokens: 1},
		},
		{
			name: "plain (older shape without details)",
			raw:  `{"input_tokens":2095,"output_tokens":503}`,
			want: llm.Usage{InputTokens: 2095, OutputTokens: 503},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.NewAnthropic(t)
			s.Script(llmtest.OK("ok").WithRawUsage(tt.raw))
			resp, err := complete(t, newProvider(t, s.URL, "k"), llmtest.ContractRequest(model))
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
		{"529 overloaded", llmtest.Error(529, "Overloaded"), llm.KindUnavailable, 0},
		{"413 too large", llmtest.Error(413, "Request exceeds the maximum size"), llm.KindInvalidRequest, 0},
		{"403 permission", llmtest.Error(403, "not allowed"), llm.KindAuth, 0},
		{"refusal with partial text", llmtest.OK("I can't").WithFinishReason("refusal"), llm.KindContentFiltered, 0},
		{"empty answer", llmtest.OK(""), llm.KindBadResponse, 0},
		{"429 retry-after", llmtest.RateLimited("12"), llm.KindRateLimited, 12 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.NewAnthropic(t)
			s.Script(tt.reply)
			_, err := complete(t, newProvider(t, s.URL, "k"), llmtest.ContractRequest(model))
			e := llmtest.RequireError(t, err, tt.kind)
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retryAfter)
			}
			if e.RequestID == "" {
				t.Error("RequestID empty; Anthropic sends request-id on every response")
			}
			if n := len(s.Requests()); n != 1 {
				t.Errorf("server got %d requests, want 1", n)
			}
		})
	}
}

func TestLargeMaxTokensWithoutStreaming(t *testing.T) {
	// The SDK refuses non-streaming calls whose max_tokens suggests more than ten minutes of
	// generation unless a request timeout is set; the adapter always sets one.
	s := llmtest.NewAnthropic(t)
	req := llmtest.ContractRequest(model)
	req.MaxOutputTokens = 64000
	if _, err := complete(t, newProvider(t, s.URL, "k"), req); err != nil {
		t.Fatalf("Complete: %v", err)
	}
}

func TestIgnoresEnvironment(t *testing.T) {
	// The SDK would otherwise read these and override the configured base URL and add headers.
	t.Setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
	t.Setenv("ANTHROPIC_CUSTOM_HEADERS", "X-Leak: yes")
	s := llmtest.NewAnthropic(t)
	if _, err := complete(t, newProvider(t, s.URL, "k"), llmtest.ContractRequest(model)); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	r, _ := sent(t, s)
	if r.Header.Get("X-Leak") != "" {
		t.Error("custom headers from the environment were sent")
	}
}

func TestStreamContract(t *testing.T) {
	llmtest.StreamContract(t, llmtest.Anthropic, model, newProvider)
}
