package main

// RouteStreamFunction: the same binary behind a Function URL in RESPONSE_STREAM mode
// (HELIX_LAMBDA_ENTRY=function_url). The Function URL sample event goes through the handler
// main starts, exactly as the runtime would invoke it, and the streamed answer is read back.

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helixhq/helix/shared/lambdatest"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/offline"
)

const streamEvent = "post-v1-chat-completions.json"

// streamHandler is the handler main starts when the template says the function is behind the
// streaming Function URL, over a fresh database.
func streamHandler(t *testing.T) lambda.Handler {
	t.Helper()
	base := fn.NewAppEnv(t, map[string]string{"HELIX_LAMBDA_ENTRY": "function_url"}, pg.NewPool(t))
	providers := llm.NewRegistry().WithOfflineFallback(offline.New(), true)
	return lambda.NewHandler(entry(base, newHandler(base, providers)))
}

// The sample event with a token the function trusts streams OpenAI's chunks, the usage with the
// cost last, then [DONE]: no authorizer vouched for the caller, the function verified the token.
func TestFunctionURLStreamsChatCompletions(t *testing.T) {
	payload := fn.LoadFunctionURL(t, streamEvent, fn.Bearer(t, "stream-user", nil, time.Hour, time.Now()))
	resp := lambdatest.InvokeStream(t, streamHandler(t), payload)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Headers["Content-Type"], "text/event-stream") {
		t.Fatalf("status %d, headers %v, body %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	if !strings.HasSuffix(resp.Body, "data: [DONE]\n\n") {
		t.Fatalf("the stream does not end with data: [DONE]:\n%s", resp.Body)
	}
	var content strings.Builder
	var chunks int
	var usage map[string]any
	for _, ev := range strings.Split(strings.TrimSuffix(resp.Body, "data: [DONE]\n\n"), "\n\n") {
		if ev == "" {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok {
			t.Fatalf("not a data event: %q", ev)
		}
		var c struct {
			Object  string
			Choices []struct{ Delta struct{ Content string } }
			Usage   map[string]any
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("event %q: %v", data, err)
		}
		chunks++
		for _, ch := range c.Choices {
			content.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil {
			usage = c.Usage
		}
	}
	if chunks < 2 || content.Len() == 0 {
		t.Errorf("%d chunks, content %q: want the reply in pieces", chunks, content.String())
	}
	if usage == nil || usage["cost_usd"] == nil || usage["total_tokens"] == nil {
		t.Errorf("usage %v: want the tokens and the cost in the last chunk (include_usage)", usage)
	}
}

// stream: true through the HTTP API still answers, the whole stream at once (API Gateway buffers
// it): the same chunks and [DONE], only not as they come. RouteStreamUrl is where they stream.
func TestStreamThroughTheHTTPAPI(t *testing.T) {
	e := newEnv(t)
	resp := e.send(t, "post-v1-chat-completions.json", withBodyField(t, "stream", true))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Headers["Content-Type"], "text/event-stream") ||
		!strings.HasPrefix(resp.Body, "data: {") || !strings.HasSuffix(resp.Body, "data: [DONE]\n\n") {
		t.Errorf("status %d, headers %v, body %q: want the whole SSE stream", resp.StatusCode, resp.Headers, resp.Body)
	}
}

// What the Function URL refuses: a caller without a valid token (nothing in front of it checks),
// and every route but the streaming one, which stays on the HTTP API.
func TestFunctionURLRefusals(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name          string
		authorization string
		edit          func(map[string]any)
		status        int
		code          string
		message       string // a substring of error.message
	}{
		{name: "no token", status: 401, code: "unauthorized", message: "no bearer token"},
		{name: "expired token", authorization: fn.Bearer(t, "stream-user", nil, time.Minute, now.Add(-time.Hour)), status: 401, code: "unauthorized"},
		{name: "forged token", authorization: fn.Forged(t), status: 401, code: "unauthorized"},
		{name: "another route", authorization: fn.Bearer(t, "stream-user", nil, time.Hour, now),
			edit: withPath("GET", "/v1/models"), status: 404, code: "not_found", message: "send GET /v1/models to the HTTP API"},
		{name: "an admin route, even for an admin", authorization: fn.Bearer(t, "admin", map[string]any{"role": "admin"}, time.Hour, now),
			edit: withPath("GET", "/admin/routes"), status: 404, code: "not_found", message: "this URL serves only POST /v1/chat/completions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			payload := fn.LoadFunctionURL(t, streamEvent, tc.authorization)
			if tc.edit != nil {
				payload = editEvent(t, payload, tc.edit)
			}
			resp := lambdatest.InvokeStream(t, streamHandler(t), payload)
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
				t.Fatalf("status %d (%v), want %d JSON; body %s", resp.StatusCode, resp.Headers, tc.status, resp.Body)
			}
			var body struct {
				Error struct{ Code, Type, Message string }
			}
			if err := json.Unmarshal([]byte(resp.Body), &body); err != nil || body.Error.Message == "" {
				t.Fatalf("not an error object: %s", resp.Body)
			}
			if body.Error.Code != tc.code {
				t.Errorf("error %+v, want %s", body.Error, tc.code)
			}
			if !strings.Contains(body.Error.Message, tc.message) {
				t.Errorf("message %q, want it to say %q", body.Error.Message, tc.message)
			}
		})
	}
}

// withPath sends the event to another route.
func withPath(method, path string) func(map[string]any) {
	return func(ev map[string]any) {
		ev["rawPath"] = path
		h := ev["requestContext"].(map[string]any)["http"].(map[string]any)
		h["method"], h["path"] = method, path
		if method == "GET" {
			delete(ev, "body")
		}
	}
}

func editEvent(t *testing.T, payload []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	edit(ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
