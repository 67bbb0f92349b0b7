package openaiapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/llm/llmtest"
)

// The official client's streaming call against Helix: every chunk in order, the text the model
// produced, and the usage in the last chunk when include_usage asks for it.
func TestSDKStream(t *testing.T) {
	e := newEnv(t)
	client, tap := e.sdk(e.Alice)
	stream, err := client.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "auto", Messages: userMessage("Hello"), Stream: true,
		StreamOptions: &openai.StreamOptions{IncludeUsage: true},
	})
	if err != nil {
		t.Fatalf("CreateChatCompletionStream: %v", err)
	}
	defer stream.Close()
	var text strings.Builder
	var usage *openai.Usage
	chunks, finish := 0, ""
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv after %d chunks: %v", chunks, err)
		}
		chunks++
		if c.Object != "chat.completion.chunk" || c.Model != "deepseek" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Errorf("chunk %d: object %q model %q id %q", chunks, c.Object, c.Model, c.ID)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
			if ch.FinishReason != "" {
				finish = string(ch.FinishReason)
			}
		}
		if c.Usage != nil {
			usage = c.Usage
		}
	}
	if text.Len() == 0 || chunks < 4 || finish != "stop" {
		t.Errorf("%d chunks, text %q, finish %q", chunks, text.String(), finish)
	}
	if usage == nil || usage.TotalTokens == 0 || usage.TotalTokens != usage.PromptTokens+usage.CompletionTokens {
		t.Errorf("usage %+v", usage)
	}
	if status, h := tap.last(); status != 200 || h.Get("Content-Type") != "text/event-stream" || h.Get("X-Helix-Model") != "deepseek" {
		t.Errorf("status %d, headers %v", status, h)
	}
}

// The exact wire: data lines of chat.completion.chunk objects (the role first, the content,
// the finish reason, the usage chunk with no choices and Helix's cost_usd, equal to what the
// log row charged), then data: [DONE]; nothing else.
func TestRawSSE(t *testing.T) {
	e := newEnv(t)
	r := e.chat(t, e.Alice, `{"model":"auto","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}`)
	if r.Status != 200 || r.Header.Get("Content-Type") != "text/event-stream" || r.Header.Get("X-Helix-Cost-Usd") != "" {
		t.Fatalf("status %d, headers %v, body %s", r.Status, r.Header, r.Body)
	}
	type chunk struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Choices []struct {
			Delta struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     int64   `json:"prompt_tokens"`
			CompletionTokens int64   `json:"completion_tokens"`
			CostUSD          float64 `json:"cost_usd"`
		} `json:"usage"`
	}
	var events []string
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("a line that is not a data line: %q", line)
		}
		events = append(events, data)
	}
	if len(events) < 5 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %q, want chunks then [DONE]", events)
	}
	var cs []chunk
	for _, ev := range events[:len(events)-1] {
		var c chunk
		if err := json.Unmarshal([]byte(ev), &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("event %q: %v", ev, err)
		}
		cs = append(cs, c)
	}
	first, finish, last := cs[0], cs[len(cs)-2], cs[len(cs)-1]
	if len(first.Choices) != 1 || first.Choices[0].Delta.Role != "assistant" || first.Choices[0].FinishReason != nil {
		t.Errorf("first chunk %+v, want the assistant role and no finish reason", first)
	}
	if len(finish.Choices) != 1 || finish.Choices[0].FinishReason == nil || *finish.Choices[0].FinishReason != "stop" {
		t.Errorf("finish chunk %+v", finish)
	}
	if len(last.Choices) != 0 || last.Usage == nil || last.Usage.PromptTokens == 0 {
		t.Fatalf("usage chunk %+v", last)
	}
	var cost int64
	if err := e.Pool.QueryRow(context.Background(), `SELECT cost_nano FROM ai_operation_log WHERE request_id = $1`,
		strings.TrimPrefix(first.ID, "chatcmpl-")).Scan(&cost); err != nil {
		t.Fatal(err)
	}
	if got := int64(last.Usage.CostUSD*1e9 + 0.5); cost == 0 || got != cost {
		t.Errorf("cost_usd %v, the log row charged %d nano-USD", last.Usage.CostUSD, cost)
	}
	for _, c := range cs {
		if c.ID != first.ID {
			t.Errorf("chunk ids differ: %q, %q", c.ID, first.ID)
		}
	}
}

// An error before the first byte is an ordinary OpenAI error with its status, which the SDK
// raises from CreateChatCompletionStream.
func TestStreamErrorBeforeTheFirstByte(t *testing.T) {
	e := newEnv(t)
	r := e.chat(t, e.Alice, `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hello"}]}`)
	r.wantOpenAIError(t, 404, "model_not_found", "not_found_error", "")
}

// A client that reads three chunks and hangs up: the provider's stream is stopped, the call is
// settled for what was consumed (the input bound and the pieces handed over, since the provider
// reported no usage), nothing stays reserved, and the one log row says client_gone.
func TestStreamClientHangsUpAfterThreeChunks(t *testing.T) {
	e := newEnv(t)
	words := strings.Fields(strings.Repeat("token ", 40))
	e.DeepSeek.Script(llmtest.StreamOK(words...).WithChunkDelay(20 * time.Millisecond))
	req := apitest.NewRequest(t, http.MethodPost, e.URL+"/v1/chat/completions", e.Alice,
		strings.NewReader(`{"model":"auto","stream":true,"messages":[{"role":"user","content":"Hello"}]}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(res.Body)
	var id string
	for read := 0; read < 3 && sc.Scan(); {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var c struct{ ID string }
			_ = json.Unmarshal([]byte(data), &c)
			id = c.ID
			read++
		}
	}
	res.Body.Close() // hang up
	requestID := strings.TrimPrefix(id, "chatcmpl-")
	var code string
	var cost, output int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := e.Pool.QueryRow(context.Background(),
			`SELECT COALESCE(error_code, ''), cost_nano, output_tokens FROM ai_operation_log WHERE request_id = $1`, requestID).Scan(&code, &cost, &output)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the server settles once it notices the hang-up
	}
	if code != "client_gone" || cost <= 0 || output < 2 || output >= int64(len(words)) {
		t.Errorf("log row: code %q, cost %d, output %d; want client_gone, charged for the input and the few pieces sent", code, cost, output)
	}
	d, err := e.Ledger.Today(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if d.Reserved != 0 || int64(d.Spent) != cost {
		t.Errorf("budget %+v, want nothing reserved and the row's cost spent", d)
	}
}

// A provider that breaks off after the first pieces: the stream ends with an error line the SDK
// raises (no failover: the client has part of one model's answer), and the call is charged
// what it consumed, logged stream_broken.
func TestStreamProviderErrorAfterTheFirstToken(t *testing.T) {
	e := newEnv(t)
	e.DeepSeek.Script(llmtest.StreamOK("one ", "two ", "three ", "four").StreamErrorAfter(2, 500, "upstream exploded"))
	client, _ := e.sdk(e.Alice)
	stream, err := client.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "auto", Messages: userMessage("Hello"), Stream: true,
	})
	if err != nil {
		t.Fatalf("the stream failed before its first chunk: %v", err)
	}
	defer stream.Close()
	var text strings.Builder
	var streamErr error
	for {
		c, err := stream.Recv()
		if err != nil {
			streamErr = err
			break
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	var apiErr *openai.APIError
	if !errors.As(streamErr, &apiErr) || apiErr.Code != "providers_unavailable" {
		t.Fatalf("stream ended with %v (%T), want the SDK's APIError with code providers_unavailable", streamErr, streamErr)
	}
	if text.String() != "one two " {
		t.Errorf("text before the error %q", text.String())
	}
	if n := len(e.Gemini.Requests()); n != 0 {
		t.Errorf("gemini got %d requests: no failover after the first piece", n)
	}
	var code string
	var cost int64
	if err := e.Pool.QueryRow(context.Background(), `SELECT COALESCE(error_code, ''), cost_nano FROM ai_operation_log WHERE user_id = 'alice'`).Scan(&code, &cost); err != nil {
		t.Fatal(err)
	}
	if code != "stream_broken" || cost <= 0 {
		t.Errorf("log row code %q cost %d", code, cost)
	}
}
