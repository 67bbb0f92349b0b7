package chatapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/httpapi/chatapi"
	"github.com/helixhq/helix/shared/httpapi/openapi/openapitest"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/money"
)

// sseEvent is one Server-Sent Event of a streamed reply.
type sseEvent struct {
	Name string
	Data string
}

// stream is a streamed send as the client reads it: the response, and its events as they come
// (the channel closes at the end of the body).
type stream struct {
	res    *http.Response
	events <-chan sseEvent
	raw    *bytes.Buffer // every byte read, once the channel is closed
	cancel context.CancelFunc
}

// streamRequest is a send that asks for a stream.
func (e *env) streamRequest(t *testing.T, ctx context.Context, tok, id, content, clientMessageID string) *http.Request {
	t.Helper()
	req := apitest.NewRequest(t, http.MethodPost, e.url+"/chat/sessions/"+id+"/messages", tok,
		strings.NewReader(sendBody(t, content, clientMessageID)))
	req.Header.Set("Accept", "text/event-stream")
	return req.WithContext(ctx)
}

// openStream sends a streamed send and reads its events on another goroutine. Lines that are not
// "event: ", "data: " or the blank line ending an event fail the test.
func (e *env) openStream(t *testing.T, tok, id, content, clientMessageID string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	res, err := http.DefaultClient.Do(e.streamRequest(t, ctx, tok, id, content, clientMessageID))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	out := make(chan sseEvent, 64)
	s := &stream{res: res, events: out, raw: &bytes.Buffer{}, cancel: cancel}
	go func() {
		defer close(out)
		sc := bufio.NewScanner(io.TeeReader(res.Body, s.raw))
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name == "" || ev.Data == "" {
					t.Errorf("an event without a name or data: %+v", ev)
				}
				out <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: ") && ev.Name == "":
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && ev.Data == "":
				ev.Data = strings.TrimPrefix(line, "data: ")
			default:
				t.Errorf("unexpected line %q in the stream", line)
			}
		}
		if ev != (sseEvent{}) {
			t.Errorf("the stream ended inside an event: %+v", ev)
		}
	}()
	return s
}

// next is the stream's next event (a guard fails the test rather than hang it).
func (s *stream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended; want another event")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event came")
	}
	return sseEvent{}
}

// rest reads the stream to its end.
func (s *stream) rest(t *testing.T) []sseEvent {
	t.Helper()
	var all []sseEvent
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return all
			}
			all = append(all, ev)
		case <-time.After(30 * time.Second):
			t.Fatalf("the stream did not end; events so far %+v", all)
		}
	}
}

// wantStreamHeaders checks a stream's status and headers.
func wantStreamHeaders(t *testing.T, res *http.Response, model string) {
	t.Helper()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" ||
		res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("X-Helix-Model") != model {
		t.Errorf("status %d, headers %v; want 200, text/event-stream, no-cache, X-Helix-Model %s", res.StatusCode, res.Header, model)
	}
	if h := res.Header.Get("X-Helix-Cost-Usd"); h != "" {
		t.Errorf("X-Helix-Cost-Usd %q on a stream: the cost is in the message event", h)
	}
}

// deltas splits events into the delta texts and what follows the last delta.
func deltas(t *testing.T, events []sseEvent) (texts []string, after []sseEvent) {
	t.Helper()
	for i, ev := range events {
		if ev.Name != "delta" {
			return texts, events[i:]
		}
		var d chatapi.DeltaEvent
		strictJSON(t, ev.Data, &d)
		texts = append(texts, d.Text)
	}
	return texts, nil
}

// strictJSON decodes data into v, refusing fields v does not have.
func strictJSON(t *testing.T, data string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", data, v, err)
	}
}

// loggedCall is the log row of one request.
type loggedCall struct {
	Success   bool
	ErrorCode string
	Cost      money.Nano
	Model     string
}

func (e *env) loggedCall(t *testing.T, requestID string) loggedCall {
	t.Helper()
	var c loggedCall
	var cost int64
	if err := e.pool.QueryRow(context.Background(), `
		SELECT success, COALESCE(error_code, ''), cost_nano, COALESCE(model_used, '')
		  FROM ai_operation_log WHERE request_id = $1`, requestID).Scan(&c.Success, &c.ErrorCode, &cost, &c.Model); err != nil {
		t.Fatalf("log row of %s: %v", requestID, err)
	}
	c.Cost = money.Nano(cost)
	return c
}

// reservation is the status of a request's budget reservation.
func (e *env) reservation(t *testing.T, requestID string) string {
	t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), `SELECT status FROM budget_reservations WHERE request_id = $1`, requestID).Scan(&s); err != nil {
		t.Fatalf("reservation of %s: %v", requestID, err)
	}
	return s
}

// TestStreamedReply: a send with Accept: text/event-stream answers 200 text/event-stream: a
// delta event per piece the model streamed, in order, then one message event with the stored
// pair (the JSON a send answers), whose reply is the deltas joined, with its seq, model and the
// cost its log row charged; the session stores the same whole reply. Whatever the wire the answering
// model speaks (DeepSeek's, or Gemini's after a failover before the first piece).
func TestStreamedReply(t *testing.T) {
	t.Parallel()
	chunks := []string{"Lisbon ", "in ", "May ", "is ", "warm."}
	for _, tc := range []struct {
		name     string
		script   func(e *env)
		model    string
		fallback bool
	}{
		{name: "deepseek", model: "deepseek", script: func(e *env) {
			e.deepseek.SetDefault(llmtest.StreamOK(chunks...))
		}},
		{name: "failover before the first piece", model: "gemini_flash", fallback: true, script: func(e *env) {
			e.deepseek.SetDefault(llmtest.Error(503, "overloaded"))
			e.gemini.SetDefault(llmtest.StreamOK(chunks...))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tc.script(e)
			s := e.createSession(t, e.alice, "Trip planning")
			st := e.openStream(t, e.alice, s.ID, "When should I go to Lisbon?", uuid.NewString())
			events := st.rest(t)
			wantStreamHeaders(t, st.res, tc.model)

			texts, after := deltas(t, events)
			if strings.Join(texts, "") != strings.Join(chunks, "") || len(texts) != len(chunks) {
				t.Errorf("deltas %q, want the model's pieces %q", texts, chunks)
			}
			if len(after) != 1 || after[0].Name != "message" {
				t.Fatalf("after the deltas %+v, want one message event", after)
			}
			var ex chatapi.ExchangeView
			strictJSON(t, after[0].Data, &ex)
			if got := keys(t, []byte(after[0].Data)); fmt.Sprint(got) != fmt.Sprint(exchangeKeys) {
				t.Errorf("message event keys %v, want %v", got, exchangeKeys)
			}
			u, a := ex.User, ex.Assistant
			if ex.Replayed || u.Seq != 1 || u.Role != "user" || u.Content != "When should I go to Lisbon?" ||
				a.Seq != 2 || a.Role != "assistant" || a.ReplyToSeq != 1 || a.Content != strings.Join(texts, "") || a.Model != tc.model {
				t.Errorf("message event %+v, want user 1 answered by 2 with the deltas from %s", ex, tc.model)
			}
			if a.RequestID != st.res.Header.Get("X-Request-Id") {
				t.Errorf("reply request id %q, X-Request-Id %q", a.RequestID, st.res.Header.Get("X-Request-Id"))
			}
			row := e.loggedCall(t, a.RequestID)
			if !row.Success || row.Cost <= 0 || row.Cost != a.CostUSD || row.Model != tc.model {
				t.Errorf("log row %+v, want a success by %s at the event's cost %s", row, tc.model, a.CostUSD)
			}
			if d := e.today(t, "alice"); d.Spent != a.CostUSD || d.Reserved != 0 {
				t.Errorf("spent %s, reserved %s; want %s, nothing held", d.Spent, d.Reserved, a.CostUSD)
			}
			if reqs := e.deepseek.Requests(); len(reqs) == 0 || !reqs[len(reqs)-1].Stream {
				t.Errorf("the model was not asked for a stream: %+v", reqs)
			}

			var page chatapi.MessageList
			decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions/"+s.ID+"/messages", e.alice, ""), http.StatusOK, &page)
			if len(page.Messages) != 2 || !sameMessage(page.Messages[0], u) || !sameMessage(page.Messages[1], a) {
				t.Errorf("stored %+v, want the pair the message event showed %+v", page.Messages, ex)
			}

			// The answer is what the OpenAPI document says a stream is.
			res := &http.Response{StatusCode: st.res.StatusCode, Header: st.res.Header, Body: io.NopCloser(bytes.NewReader(st.raw.Bytes()))}
			if errs := openapitest.Load(t).ResponseErrors(e.streamRequest(t, t.Context(), e.alice, s.ID, "x", ""), res); len(errs) > 0 {
				t.Errorf("the stream does not match openapi.yaml: %v", errs)
			}
		})
	}
}

// TestStreamWithLongPoll: a second device long-polls the session while a reply streams: it is
// answered with the user message while the reply is still streaming (a delta has reached the
// sender and the model is paused after it), sees no assistant message until the reply is
// stored, and then the whole reply once: the message event's, never a part of it.
func TestStreamWithLongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deepseek.SetDefault(llmtest.StreamOK("Go ", "in ", "late ", "May."))
	s := e.createSession(t, e.alice, "Trip planning")
	resume := e.model.PauseAfterFirst(t)

	arrived := make(chan struct{}, 4)
	e.onArrival(func(r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Get("wait") != "" {
			arrived <- struct{}{}
		}
	})
	polls := e.longPoll(t, e.alice, s.ID, 0, 2)
	<-arrived

	st := e.openStream(t, e.alice, s.ID, "When should I go?", uuid.NewString())
	first := st.next(t)
	if first.Name != "delta" || first.Data != `{"text":"Go "}` {
		t.Fatalf("first event %+v, want the first delta", first)
	}
	page := <-polls
	if len(page.Messages) != 1 || page.Messages[0].Role != "user" || page.LastSeq != 1 {
		t.Fatalf("the long-poll answered %+v while the reply streams, want the user message alone", page)
	}
	// Mid-stream, the session holds no part of the reply.
	var now chatapi.MessageList
	decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions/"+s.ID+"/messages?after=1", e.alice, ""), http.StatusOK, &now)
	if len(now.Messages) != 0 {
		t.Errorf("mid-stream the session shows %+v after the user message, want nothing", now.Messages)
	}

	resume()
	texts, after := deltas(t, append([]sseEvent{first}, st.rest(t)...))
	if len(after) != 1 || after[0].Name != "message" {
		t.Fatalf("after the deltas %+v, want the message event", after)
	}
	var ex chatapi.ExchangeView
	strictJSON(t, after[0].Data, &ex)
	if ex.Assistant.Content != "Go in late May." || strings.Join(texts, "") != ex.Assistant.Content {
		t.Errorf("deltas %q, reply %q; want the whole reply", texts, ex.Assistant.Content)
	}

	var seen []chatapi.MessageView
	for p := range polls {
		seen = append(seen, p.Messages...)
	}
	if len(seen) != 1 || !sameMessage(seen[0], ex.Assistant) {
		t.Errorf("the long-poll then saw %+v, want the stored reply once: %+v", seen, ex.Assistant)
	}
}

// TestStreamResendIsReplayedAsJSON: the same client_message_id again after a streamed reply
// answers 200 JSON with the stored pair, replayed, whether or not it asks for a stream: no second
// model call, no second charge.
func TestStreamResendIsReplayedAsJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deepseek.SetDefault(llmtest.StreamOK("Hello ", "there."))
	s := e.createSession(t, e.alice, "Trip planning")
	cmid := uuid.NewString()
	_, after := deltas(t, e.openStream(t, e.alice, s.ID, "Hello!", cmid).rest(t))
	if len(after) != 1 || after[0].Name != "message" {
		t.Fatalf("streamed send ended with %+v", after)
	}
	var first chatapi.ExchangeView
	strictJSON(t, after[0].Data, &first)

	for _, accept := range []string{"text/event-stream", "", "application/json"} {
		t.Run("Accept "+accept, func(t *testing.T) {
			req := apitest.NewRequest(t, http.MethodPost, e.url+"/chat/sessions/"+s.ID+"/messages", e.alice,
				strings.NewReader(sendBody(t, "Hello!", cmid)))
			if accept != "" {
				req.Header.Set("Accept", accept)
			}
			r := apitest.Send(t, req)
			var again chatapi.ExchangeView
			decodeStatus(t, r, http.StatusOK, &again)
			if !again.Replayed || !sameMessage(again.User, first.User) || !sameMessage(again.Assistant, first.Assistant) {
				t.Errorf("resend answered %+v, want the streamed pair replayed: %+v", again, first)
			}
			if h := r.Header.Get("X-Helix-Cost-Usd"); h != first.Assistant.CostUSD.String() {
				t.Errorf("X-Helix-Cost-Usd %q, want %s", h, first.Assistant.CostUSD)
			}
		})
	}
	if n := e.deepseek.Count(); n != 1 {
		t.Errorf("%d model calls, want 1", n)
	}
	if rows, cost := e.logged(t, "alice"); rows != 1 || money.Nano(cost) != first.Assistant.CostUSD {
		t.Errorf("%d calls logged at %d, want 1 at %s", rows, cost, first.Assistant.CostUSD)
	}
	if d := e.today(t, "alice"); d.Spent != first.Assistant.CostUSD || d.Reserved != 0 {
		t.Errorf("spent %s, reserved %s; want one charge", d.Spent, d.Reserved)
	}
}

// TestStreamBreaksAfterFirstDelta: a provider error after the first pieces ends the stream with
// an error event holding Helix's error object, and no message event. No other model is asked
// (the client has part of this one's answer); the call is logged once as stream_broken and
// charged what was consumed; nothing stays reserved. The session is as after any failed reply:
// the user message stored, no assistant message, not blocked, and the same client_message_id
// again produces the reply.
func TestStreamBreaksAfterFirstDelta(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deepseek.Script(llmtest.StreamOK("Hello ", "there ", "friend.").StreamErrorAfter(2, 500, "the model crashed"))
	e.deepseek.SetDefault(llmtest.StreamOK("A ", "whole ", "reply."))
	s := e.createSession(t, e.alice, "Trip planning")
	cmid := uuid.NewString()
	st := e.openStream(t, e.alice, s.ID, "Hello!", cmid)
	texts, after := deltas(t, st.rest(t))
	wantStreamHeaders(t, st.res, "deepseek")
	if strings.Join(texts, "") != "Hello there " {
		t.Errorf("deltas %q, want the two pieces before the error", texts)
	}
	if len(after) != 1 || after[0].Name != "error" {
		t.Fatalf("after the deltas %+v, want one error event", after)
	}
	var ev chatapi.ErrorEvent
	strictJSON(t, after[0].Data, &ev)
	reqID := st.res.Header.Get("X-Request-Id")
	if ev.Error.Code != "providers_unavailable" || ev.Error.Message == "" || ev.Error.RequestID != reqID {
		t.Errorf("error event %+v, want providers_unavailable with a message and request id %s", ev, reqID)
	}
	if n := e.gemini.Count(); n != 0 {
		t.Errorf("the fallback model was called %d times after the first piece", n)
	}
	row := e.loggedCall(t, reqID)
	if row.Success || row.ErrorCode != "stream_broken" || row.Cost <= 0 {
		t.Errorf("log row %+v, want a stream_broken failure charged what was consumed", row)
	}
	if rows, _ := e.logged(t, "alice"); rows != 1 {
		t.Errorf("%d log rows, want 1", rows)
	}
	if d := e.today(t, "alice"); d.Spent != row.Cost || d.Reserved != 0 {
		t.Errorf("spent %s, reserved %s; want the row's %s, nothing held", d.Spent, d.Reserved, row.Cost)
	}
	if r := e.reservation(t, reqID); r != "settled" {
		t.Errorf("reservation %s, want settled", r)
	}
	if row, _ := e.sessionRow(t, s.ID); row.Messages != 1 || row.LastSeq != 1 {
		t.Errorf("session after the broken stream %+v, want the user message only", row)
	}

	_, after = deltas(t, e.openStream(t, e.alice, s.ID, "Hello!", cmid).rest(t))
	var ex chatapi.ExchangeView
	if len(after) != 1 || after[0].Name != "message" {
		t.Fatalf("the resend ended with %+v, want the message event", after)
	}
	strictJSON(t, after[0].Data, &ex)
	if ex.Replayed || ex.User.Seq != 1 || ex.Assistant.Seq != 2 || ex.Assistant.Content != "A whole reply." {
		t.Errorf("resend after the broken stream %+v, want message 1 answered by 2", ex)
	}
}

// TestStreamErrorsBeforeFirstDelta: a failure before the first piece is the usual JSON error
// with its status, even when the request asks for a stream.
func TestStreamErrorsBeforeFirstDelta(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	broke := e.createSession(t, e.bob, "No budget")
	if _, err := e.app.Ledger().SetLimits(t.Context(), "bob", budget.Limits{}, "test"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok, session string
		status             int
		code               string
	}{
		{"another user's session", e.bob, s.ID, http.StatusNotFound, "not_found"},
		{"no such session", e.alice, uuid.NewString(), http.StatusNotFound, "not_found"},
		{"over budget", e.bob, broke.ID, http.StatusPaymentRequired, "budget_exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := apitest.Send(t, e.streamRequest(t, t.Context(), tc.tok, tc.session, "Hello!", uuid.NewString()))
			wantError(t, r, tc.status, tc.code)
		})
	}
	if n := e.deepseek.Count(); n != 0 {
		t.Errorf("%d model calls", n)
	}
}

// TestStreamClientGone: a client that goes away mid-stream (the model slow after its first
// piece) stops the call: it is logged once as client_gone and charged what was consumed (more
// than nothing, less than the hold), nothing stays reserved, no reply is stored, and the
// session takes the next message.
func TestStreamClientGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deepseek.Script(llmtest.StreamOK("One ", "two ", "three.").StreamHangAfter(1))
	s := e.createSession(t, e.alice, "Trip planning")
	served := make(chan struct{}, 1)
	e.onServed(func(r *http.Request) {
		if r.Method == http.MethodPost {
			served <- struct{}{}
		}
	})
	st := e.openStream(t, e.alice, s.ID, "Count to three", uuid.NewString())
	if ev := st.next(t); ev.Name != "delta" {
		t.Fatalf("first event %+v, want a delta", ev)
	}
	reqID := st.res.Header.Get("X-Request-Id")
	st.cancel() // the client goes away
	select {
	case <-served:
	case <-time.After(30 * time.Second):
		t.Fatal("the send did not end after its client went away")
	}
	e.onServed(nil)

	row := e.loggedCall(t, reqID)
	if row.Success || row.ErrorCode != "client_gone" || row.Cost <= 0 {
		t.Errorf("log row %+v, want client_gone charged what was consumed", row)
	}
	var held int64
	if err := e.pool.QueryRow(context.Background(), `SELECT amount_nano FROM budget_reservations WHERE request_id = $1`, reqID).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if row.Cost >= money.Nano(held) {
		t.Errorf("charged %s, the whole hold %s: want what was consumed", row.Cost, money.Nano(held))
	}
	if r := e.reservation(t, reqID); r != "settled" {
		t.Errorf("reservation %s, want settled", r)
	}
	if d := e.today(t, "alice"); d.Spent != row.Cost || d.Reserved != 0 {
		t.Errorf("spent %s, reserved %s; want %s, nothing held", d.Spent, d.Reserved, row.Cost)
	}
	if row, _ := e.sessionRow(t, s.ID); row.Messages != 1 {
		t.Errorf("session %+v, want the user message only", row)
	}
	if ex := e.exchange(t, e.alice, s.ID, "Next"); ex.User.Seq != 2 || ex.Assistant.Seq != 3 {
		t.Errorf("next message %+v, want 2 answered by 3", ex)
	}
}
