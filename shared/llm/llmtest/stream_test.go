package llmtest

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// sse reads a whole event stream: each event's name ("" when unnamed) and data.
func sse(t *testing.T, body io.Reader) ([]sseEvent, error) {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			out = append(out, cur)
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	return out, sc.Err()
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d content type %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp
}

func decode(t *testing.T, data string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("event data %q: %v", data, err)
	}
	return m
}

func TestOpenAIStreamWire(t *testing.T) {
	for _, includeUsage := range []bool{true, false} {
		s := NewOpenAI(t)
		s.Script(StreamOK("Hi", " there").WithUsage(Usage{InputTokens: 7, CachedInputTokens: 3, OutputTokens: 2}))
		body := `{"model":"deepseek-chat","stream":true}`
		if includeUsage {
			body = `{"model":"deepseek-chat","stream":true,"stream_options":{"include_usage":true}}`
		}
		resp := post(t, s.URL+"/chat/completions", body)
		events, err := sse(t, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if last := events[len(events)-1]; last.data != "[DONE]" {
			t.Fatalf("last event %q, want [DONE]", last.data)
		}
		var text, finish string
		var usage map[string]any
		for _, e := range events[:len(events)-1] {
			c := decode(t, e.data)
			if c["object"] != "chat.completion.chunk" || c["id"] == "" {
				t.Errorf("chunk %v is not a chat.completion.chunk", c)
			}
			if _, has := c["usage"]; has != includeUsage {
				t.Errorf("chunk %v: usage present %t, want %t", c, has, includeUsage)
			}
			choices := c["choices"].([]any)
			if u, _ := c["usage"].(map[string]any); u != nil {
				usage = u
				if len(choices) != 0 {
					t.Errorf("the usage chunk has choices %v, want none", choices)
				}
				continue
			}
			ch := choices[0].(map[string]any)
			content, _ := ch["delta"].(map[string]any)["content"].(string)
			text += content
			if f, _ := ch["finish_reason"].(string); f != "" {
				finish = f
			}
		}
		if text != "Hi there" || finish != "stop" {
			t.Errorf("text %q finish %q", text, finish)
		}
		if includeUsage && (usage["prompt_tokens"] != 10.0 || usage["completion_tokens"] != 2.0 || usage["prompt_cache_hit_tokens"] != 3.0) {
			t.Errorf("usage %v", usage)
		}
		if !includeUsage && usage != nil {
			t.Errorf("usage %v sent without include_usage", usage)
		}
		if r := s.Requests(); len(r) != 1 || !r[0].Stream {
			t.Errorf("requests %+v, want one stream request", r)
		}
	}
}

func TestGeminiStreamWire(t *testing.T) {
	s := NewGemini(t)
	s.Script(StreamOK("Hi", " there").WithUsage(Usage{InputTokens: 7, OutputTokens: 2}))
	resp := post(t, s.URL+"/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent?alt=sse", `{}`)
	events, err := sse(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for i, e := range events {
		if e.name != "" {
			t.Errorf("event named %q; Gemini's events are unnamed", e.name)
		}
		c := decode(t, e.data)
		cand := c["candidates"].([]any)[0].(map[string]any)
		for _, part := range cand["content"].(map[string]any)["parts"].([]any) {
			text += part.(map[string]any)["text"].(string)
		}
		um := c["usageMetadata"].(map[string]any)
		_, final := cand["finishReason"]
		if final != (i == len(events)-1) {
			t.Errorf("event %d finishReason present %t", i, final)
		}
		if final && (um["candidatesTokenCount"] != 2.0 || cand["finishReason"] != "STOP") {
			t.Errorf("final event %v", c)
		}
		if um["promptTokenCount"] != 7.0 {
			t.Errorf("event %d promptTokenCount %v, want 7", i, um["promptTokenCount"])
		}
	}
	if text != "Hi there" {
		t.Errorf("text %q", text)
	}
}

func TestAnthropicStreamWire(t *testing.T) {
	tests := []struct {
		reply Reply
		names string
	}{
		{StreamOK("Hi", " there"), "message_start content_block_start ping content_block_delta content_block_delta content_block_stop message_delta message_stop"},
		{StreamOK("Hi", " there").StreamErrorAfter(1, 529, "Overloaded"), "message_start content_block_start ping content_block_delta error"},
	}
	for _, tt := range tests {
		s := NewAnthropic(t)
		s.Script(tt.reply)
		resp := post(t, s.URL+"/v1/messages", `{"model":"claude-haiku-4-5","stream":true}`)
		events, err := sse(t, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range events {
			names = append(names, e.name)
			if c := decode(t, e.data); c["type"] != e.name {
				t.Errorf("event %q has type %v", e.name, c["type"])
			}
		}
		if got := strings.Join(names, " "); got != tt.names {
			t.Errorf("events %q\nwant   %q", got, tt.names)
		}
		if last := decode(t, events[len(events)-1].data); last["type"] == "error" {
			if e := last["error"].(map[string]any); e["type"] != "overloaded_error" {
				t.Errorf("error event %v, want overloaded_error", last)
			}
		}
	}
}

func TestStreamBreakCutsTheConnection(t *testing.T) {
	s := NewOpenAI(t)
	s.Script(StreamOK("a", "b", "c").StreamBreakAfter(2))
	resp := post(t, s.URL+"/chat/completions", `{"model":"m","stream":true}`)
	events, err := sse(t, resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading the body ended with %v, want unexpected EOF (a cut connection)", err)
	}
	if len(events) != 3 { // the role chunk and two text chunks
		t.Errorf("got %d events before the cut, want 3", len(events))
	}
}

func TestStreamRepliesAnswerPlainRequests(t *testing.T) {
	s := NewOpenAI(t)
	s.Script(StreamOK("a", "b"), EchoModel(2))
	for _, want := range []string{"ab", "[m 1/2] [m 2/2] "} {
		resp, err := http.Post(s.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Choices []struct {
				Message struct{ Content string }
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || len(body.Choices) != 1 || body.Choices[0].Message.Content != want {
			t.Errorf("got %+v (%v), want the text %q", body, err, want)
		}
	}
}
