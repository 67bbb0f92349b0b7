package gemini_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/gemini"
	"github.com/helixhq/helix/shared/llm/llmtest"
)

const model = "gemini-2.5-flash-lite"

func newProvider(t *testing.T, baseURL, apiKey string) llm.Provider {
	t.Helper()
	p, err := gemini.New(context.Background(), gemini.Config{BaseURL: baseURL, APIKey: apiKey})
	if err != nil {
		t.Fatalf("gemini.New: %v", err)
	}
	return p
}

func TestContract(t *testing.T) {
	llmtest.Contract(t, llmtest.Gemini, model, newProvider)
}

func complete(t *testing.T, p llm.Provider, req llm.Request) (llm.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Complete(ctx, req)
}

func TestRequestOnTheWire(t *testing.T) {
	s := llmtest.NewGemini(t)
	s.Script(llmtest.OK(`{"label":"work"}`))
	p := newProvider(t, s.URL, "AIza-test")
	temp := 0.0
	schema := `{"type":"object","required":["label"],"properties":{"label":{"type":"string","enum":["work","personal"]}}}`
	_, err := complete(t, p, llm.Request{
		Model: model, MaxOutputTokens: 512, Temperature: &temp, JSON: true, Schema: json.RawMessage(schema),
		Messages: []llm.Message{
			{Role: llm.RoleSystem, Content: "You classify email."},
			{Role: llm.RoleUser, Content: "First part."},
			{Role: llm.RoleUser, Content: "Second part."},
			{Role: llm.RoleAssistant, Content: "Noted."},
			{Role: llm.RoleUser, Content: "Classify now."},
		},
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v1beta/models/"+model+":generateContent" {
		t.Errorf("path = %q", r.Path)
	}
	if got := r.Header.Get("x-goog-api-key"); got != "AIza-test" {
		t.Errorf("x-goog-api-key = %q, want AIza-test", got)
	}
	body := r.JSON()

	var got struct {
		SystemInstruction struct {
			Parts []struct{ Text string } `json:"parts"`
		} `json:"systemInstruction"`
		Contents []struct {
			Role  string                  `json:"role"`
			Parts []struct{ Text string } `json:"parts"`
		} `json:"contents"`
		GenerationConfig struct {
			MaxOutputTokens    *int            `json:"maxOutputTokens"`
			Temperature        *float64        `json:"temperature"`
			ResponseMimeType   string          `json:"responseMimeType"`
			ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
		} `json:"generationConfig"`
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("body: %v", err)
	}
	if len(got.SystemInstruction.Parts) != 1 || got.SystemInstruction.Parts[0].Text != "You classify email." {
		t.Errorf("systemInstruction = %+v", got.SystemInstruction)
	}
	type turn struct {
		role  string
		texts []string
	}
	var turns []turn
	for _, c := range got.Contents {
		tr := turn{role: c.Role}
		for _, p := range c.Parts {
			tr.texts = append(tr.texts, p.Text)
		}
		turns = append(turns, tr)
	}
	wantTurns := []turn{
		{"user", []string{"First part.", "Second part."}},
		{"model", []string{"Noted."}},
		{"user", []string{"Classify now."}},
	}
	if !reflect.DeepEqual(turns, wantTurns) {
		t.Errorf("contents = %+v, want %+v", turns, wantTurns)
	}
	gc := got.GenerationConfig
	if gc.MaxOutputTokens == nil || *gc.MaxOutputTokens != 512 {
		t.Errorf("maxOutputTokens = %v, want 512", gc.MaxOutputTokens)
	}
	if gc.Temperature == nil || *gc.Temperature != 0 {
		t.Errorf("temperature = %v, want an explicit 0", gc.Temperature)
	}
	if gc.ResponseMimeType != "application/json" {
		t.Errorf("responseMimeType = %q", gc.ResponseMimeType)
	}
	var sentSchema, wantSchema any
	_ = json.Unmarshal(gc.ResponseJSONSchema, &sentSchema)
	_ = json.Unmarshal([]byte(schema), &wantSchema)
	if !reflect.DeepEqual(sentSchema, wantSchema) {
		t.Errorf("responseJsonSchema = %s, want %s", gc.ResponseJSONSchema, schema)
	}
	if _, ok := body["continuationToken"]; ok {
		t.Error("continuation token sent on a first request")
	}
}

func TestRecordedUsage(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want llm.Usage
	}{
		{
			name: "implicit cache hit with thinking",
			raw:  `{"promptTokenCount":1200,"candidatesTokenCount":250,"totalTokenCount":1530,"cachedContentTokenCount":1000,"thoughtsTokenCount":80,"promptTokensDetails":[{"modality":"TEXT","tokenCount":1200}],"cacheTokensDetails":[{"modality":"TEXT","tokenCount":1000}]}`,
			want: llm.Usage{InputTokens: 200, CachedInputTokens: 1000, OutputTokens: 250, ReasoningTokens: 80},
		},
		{
			name: "plain",
			raw:  `{"promptTokenCount":42,"candidatesTokenCount":17,"totalTokenCount":59}`,
			want: llm.Usage{InputTokens: 42, OutputTokens: 17},
		},
		{
			name: "tool-use prompt tokens are input",
			raw:  `{"promptTokenCount":100,"toolUsePromptTokenCount":30,"candidatesTokenCount":10,"totalTokenCount":140}`,
			want: llm.Usage{InputTokens: 130, OutputTokens: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.NewGemini(t)
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
		{"429 with RetryInfo", llmtest.RateLimited("").WithRetryDelay("7s"), llm.KindRateLimited, 7 * time.Second},
		{"RetryInfo wins over the header", llmtest.RateLimited("30").WithRetryDelay("1.5s"), llm.KindRateLimited, 1500 * time.Millisecond},
		{"candidate stopped for safety", llmtest.OK("").WithFinishReason("SAFETY"), llm.KindContentFiltered, 0},
		{"recitation", llmtest.OK("partial").WithFinishReason("RECITATION"), llm.KindContentFiltered, 0},
		{"prohibited content", llmtest.OK("").WithFinishReason("PROHIBITED_CONTENT"), llm.KindContentFiltered, 0},
		{"empty answer", llmtest.OK(""), llm.KindBadResponse, 0},
		{"403 permission denied", llmtest.Error(403, "Permission denied"), llm.KindAuth, 0},
		{"504", llmtest.Error(504, "Deadline exceeded"), llm.KindUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.NewGemini(t)
			s.Script(tt.reply)
			_, err := complete(t, newProvider(t, s.URL, "k"), llmtest.ContractRequest(model))
			e := llmtest.RequireError(t, err, tt.kind)
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retryAfter)
			}
			if e.Kind == llm.KindContentFiltered && e.RequestID == "" {
				t.Error("a filtered answer should still carry the response id")
			}
		})
	}
}

func TestRejectsBadRequestsLocally(t *testing.T) {
	s := llmtest.NewGemini(t)
	p := newProvider(t, s.URL, "k")
	for name, req := range map[string]llm.Request{
		"only a system message": {Model: model, MaxOutputTokens: 10, Messages: []llm.Message{{Role: llm.RoleSystem, Content: "x"}}},
		"unknown role":          {Model: model, MaxOutputTokens: 10, Messages: []llm.Message{{Role: "tool", Content: "x"}}},
		"schema not JSON":       {Model: model, MaxOutputTokens: 10, JSON: true, Schema: json.RawMessage(`{nope`), Messages: []llm.Message{{Role: llm.RoleUser, Content: "x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := complete(t, p, req)
			llmtest.RequireError(t, err, llm.KindInvalidRequest)
		})
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("server got %d requests, want 0", n)
	}
}

func TestNewNeedsKey(t *testing.T) {
	if _, err := gemini.New(context.Background(), gemini.Config{}); err == nil {
		t.Fatal("New without a key succeeded")
	}
}

func TestStreamContract(t *testing.T) {
	llmtest.StreamContract(t, llmtest.Gemini, model, newProvider)
}
