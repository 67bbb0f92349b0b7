package chatapp_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/stepup"
)

// sendStreamed posts a message with Accept: text/event-stream and returns the answer, read to
// its end (its body is kept with the responses the key must not be in).
func (e *env) sendStreamed(t *testing.T, user, session, content string) apitest.Response {
	t.Helper()
	body, err := json.Marshal(map[string]string{"content": content, "client_message_id": uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	req := apitest.NewRequest(t, http.MethodPost, e.url+"/chat/sessions/"+session+"/messages", token(t, user), strings.NewReader(string(body)))
	req.Header.Set("Accept", "text/event-stream")
	res := apitest.Send(t, req)
	e.responses = append(e.responses, string(res.Body))
	return res
}

// events splits a stream's body into its events' names and data.
func events(t *testing.T, body []byte) (names, data []string) {
	t.Helper()
	for _, block := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		name, rest, ok := strings.Cut(block, "\n")
		if !ok || !strings.HasPrefix(name, "event: ") || !strings.HasPrefix(rest, "data: ") || strings.Contains(rest, "\n") {
			t.Fatalf("not an event: %q (body %s)", block, body)
		}
		names = append(names, strings.TrimPrefix(name, "event: "))
		data = append(data, strings.TrimPrefix(rest, "data: "))
	}
	return names, data
}

// TestStreamedStepUp: a step-up message sent asking for a stream is still answered by Helix
// without a model: the stream is its message event alone (the redacted message and the answer),
// the session is stepped up, and the next message, streamed by the model, is made with the
// verified step-up in its prompt. The key is in no table, log line, model request or response.
func TestStreamedStepUp(t *testing.T) {
	e := newEnv(t)
	e.deepSeek.SetDefault(llmtest.StreamOK("At ", "your ", "service."))
	session := e.createSession(t, creatorUser)

	res := e.sendStreamed(t, creatorUser, session, phrase+" "+stepUpKey)
	res.WantStatus(t, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	names, data := events(t, res.Body)
	if strings.Join(names, ",") != "message" {
		t.Fatalf("events %v, want the message event alone", names)
	}
	var ex exchange
	if err := json.Unmarshal([]byte(data[0]), &ex); err != nil {
		t.Fatal(err)
	}
	wantStepUpPair(t, ex, stepup.Answer(stepup.Verified))
	if n := len(e.modelRequests()); n != 0 {
		t.Errorf("the model received %d requests for the step-up message, want 0", n)
	}
	if until := e.steppedUpUntil(t, session); until == nil {
		t.Error("the session is not stepped up")
	}

	res = e.sendStreamed(t, creatorUser, session, "What can you do for me today?")
	res.WantStatus(t, http.StatusOK)
	names, data = events(t, res.Body)
	if strings.Join(names, ",") != "delta,delta,delta,message" {
		t.Fatalf("events %v, want three deltas and the message", names)
	}
	if err := json.Unmarshal([]byte(data[3]), &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Assistant.Content != "At your service." || ex.Assistant.Model != "deepseek" {
		t.Errorf("reply %+v", ex.Assistant)
	}
	if sys := e.lastChat(t)[0].Content; !strings.Contains(sys, "has verified it in this conversation") {
		t.Errorf("system prompt after the step-up:\n%s", sys)
	}
	e.wantNowhere(t, stepUpKey)
}
