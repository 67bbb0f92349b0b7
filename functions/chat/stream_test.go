package main

// ChatStreamFunction: the same binary behind a Function URL in RESPONSE_STREAM mode
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

const (
	streamEvent   = "post-chat-session-messages.json"
	streamSession = "3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b" // the session the sample event sends to
)

// streamEnv is the handler main starts when the template says the function is behind the
// streaming Function URL, over a fresh database.
func streamEnv(t *testing.T) (*env, lambda.Handler) {
	t.Helper()
	base := fn.NewAppEnv(t, map[string]string{"HELIX_LAMBDA_ENTRY": "function_url"}, pg.NewPool(t))
	providers := llm.NewRegistry().WithOfflineFallback(offline.New(), true)
	q := &fakeQueue{}
	handler, notifier := newHandler(base, providers, q)
	t.Cleanup(notifier.Close)
	return &env{base: base, queue: q}, lambda.NewHandler(entry(base, handler))
}

// The sample event with a token the function trusts streams the reply's deltas, then the stored
// pair; no authorizer vouched for the caller, the function verified the token.
func TestFunctionURLStreamsChatReply(t *testing.T) {
	e, h := streamEnv(t)
	e.createSession(t, "stream-user", streamSession, "streamed")
	payload := fn.LoadFunctionURL(t, streamEvent, fn.Bearer(t, "stream-user", nil, time.Hour, time.Now()))
	resp := lambdatest.InvokeStream(t, h, payload)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Headers["Content-Type"], "text/event-stream") {
		t.Fatalf("status %d, headers %v, body %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	var deltas strings.Builder
	var last, lastData string
	for _, ev := range strings.Split(strings.TrimSuffix(resp.Body, "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(ev, "\n")
		name, _ = strings.CutPrefix(name, "event: ")
		data, hasData := strings.CutPrefix(data, "data: ")
		if !ok || !hasData {
			t.Fatalf("not an event with data: %q", ev)
		}
		if name == "delta" {
			var d struct{ Text string }
			if err := json.Unmarshal([]byte(data), &d); err != nil {
				t.Fatalf("delta %q: %v", data, err)
			}
			deltas.WriteString(d.Text)
		}
		last, lastData = name, data
	}
	if deltas.Len() == 0 || last != "message" {
		t.Fatalf("deltas %q, last event %q: want the reply in deltas, then the stored pair\n%s", deltas.String(), last, resp.Body)
	}
	var pair struct {
		Assistant struct {
			Seq     int64
			Content string
		}
	}
	if err := json.Unmarshal([]byte(lastData), &pair); err != nil || pair.Assistant.Seq == 0 || pair.Assistant.Content != deltas.String() {
		t.Errorf("stored pair %s (%v): want the assistant message with its seq, holding what the deltas said (%q)", lastData, err, deltas.String())
	}
	if n := e.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1`, streamSession); n != 2 {
		t.Errorf("%d messages stored, want the user's and the reply", n)
	}
}

// What the Function URL refuses: a caller without a valid token (nothing in front of it checks),
// and every route but the streaming one, which stays on the HTTP API.
func TestFunctionURLRefusals(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name          string
		authorization string
		method, path  string // another route, when set
		status        int
		code          string
		message       string // a substring of error.message
	}{
		{name: "no token", status: 401, code: "unauthorized", message: "no bearer token"},
		{name: "expired token", authorization: fn.Bearer(t, "stream-user", nil, time.Minute, now.Add(-time.Hour)), status: 401, code: "unauthorized"},
		{name: "forged token", authorization: fn.Forged(t), status: 401, code: "unauthorized"},
		{name: "the long-poll", authorization: fn.Bearer(t, "stream-user", nil, time.Hour, now),
			method: "GET", path: "/chat/sessions/" + streamSession + "/messages", status: 404, code: "not_found",
			message: "send GET /chat/sessions/" + streamSession + "/messages to the HTTP API"},
		{name: "memory export", authorization: fn.Bearer(t, "stream-user", nil, time.Hour, now),
			method: "GET", path: "/me/memory/export", status: 404, code: "not_found", message: "this URL serves only POST /chat/sessions/{id}/messages"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, h := streamEnv(t)
			e.createSession(t, "stream-user", streamSession, "streamed")
			payload := fn.LoadFunctionURL(t, streamEvent, tc.authorization)
			if tc.path != "" {
				payload = withPath(t, payload, tc.method, tc.path)
			}
			resp := lambdatest.InvokeStream(t, h, payload)
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
				t.Fatalf("status %d (%v), want %d JSON; body %s", resp.StatusCode, resp.Headers, tc.status, resp.Body)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(resp.Body), &body); err != nil || body.Error.Code != tc.code ||
				!strings.Contains(body.Error.Message, tc.message) {
				t.Errorf("body %s: want %s saying %q", resp.Body, tc.code, tc.message)
			}
			if n := e.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1`, streamSession); n != 0 {
				t.Errorf("%d messages stored by a refused request", n)
			}
		})
	}
}

// withPath sends the event to another route, without a body.
func withPath(t *testing.T, payload []byte, method, path string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	ev["rawPath"] = path
	h := ev["requestContext"].(map[string]any)["http"].(map[string]any)
	h["method"], h["path"] = method, path
	delete(ev, "body")
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
