package chatapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/httpapi/chatapi"
)

// longPoll long-polls session id as tok from after on, on another goroutine, until it has seen
// seq through (or a poll returns nothing, or fails): each answer arrives on the channel, which
// is closed at the end.
func (e *env) longPoll(t *testing.T, tok, id string, after, through int64) <-chan chatapi.MessageList {
	t.Helper()
	out := make(chan chatapi.MessageList, 4)
	go func() {
		defer close(out)
		for after < through {
			req := apitest.NewRequest(t, http.MethodGet, fmt.Sprintf("%s/chat/sessions/%s/messages?after=%d&wait=10", e.url, id, after), tok, nil)
			r, err := sendAsync(req)
			if err == nil && r.Status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", r.Status, r.Body)
			}
			var page chatapi.MessageList
			if err == nil {
				err = json.Unmarshal(r.Body, &page)
			}
			if err != nil {
				t.Errorf("long-poll after %d: %v", after, err)
				return
			}
			out <- page
			if len(page.Messages) == 0 {
				return // ran out its wait
			}
			after = page.LastSeq
		}
	}()
	return out
}

// TestLongPollWakesWaiters: two clients long-poll a session (?after=<last>&wait=10); a third
// sends a message. Both waiters are answered with the new user message while its reply is still
// being produced, poll again and are answered with the reply once it is stored: every poll
// returns data (a poll that ran out its wait would return none).
func TestLongPollWakesWaiters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	e.exchange(t, e.alice, s.ID, "Earlier")

	// The reply waits for the test, so the user message and the reply arrive apart.
	release := e.model.Hold(t)
	arrived := make(chan struct{}, 16)
	e.onArrival(func(r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Get("wait") != "" {
			arrived <- struct{}{}
		}
	})
	waiters := []<-chan chatapi.MessageList{
		e.longPoll(t, e.alice, s.ID, 2, 4),
		e.longPoll(t, e.alice, s.ID, 2, 4),
	}
	for range waiters {
		<-arrived // both are waiting (or about to: a message stored before they look is read at once)
	}

	// A refused send stores nothing and wakes no one.
	wantError(t, e.send(t, e.bob, s.ID, "not bob's session", uuid.NewString()), http.StatusNotFound, "not_found")

	sent := e.sendInBackground(t, e.alice, s.ID, "Where should we eat in Lisbon?", uuid.NewString())
	e.model.waitEntered(t) // the user message is stored; its reply is being produced
	var user []chatapi.MessageView
	for w, pages := range waiters {
		page, ok := <-pages
		if !ok || len(page.Messages) != 1 || page.Messages[0].Seq != 3 || page.Messages[0].Role != "user" || page.LastSeq != 3 {
			t.Fatalf("waiter %d: first answer %+v (ok %v), want the user message, seq 3, while the reply is produced", w, page, ok)
		}
		user = append(user, page.Messages[0])
	}
	release()
	var ex chatapi.ExchangeView
	decodeStatus(t, <-sent, http.StatusCreated, &ex)

	for w, pages := range waiters {
		if !sameMessage(user[w], ex.User) {
			t.Errorf("waiter %d got user message %+v, want %+v", w, user[w], ex.User)
		}
		var rest []chatapi.MessageView
		for page := range pages {
			if len(page.Messages) == 0 {
				t.Errorf("waiter %d: a poll returned no messages (last_seq %d): it was not woken by the reply", w, page.LastSeq)
			} else if page.LastSeq != page.Messages[len(page.Messages)-1].Seq {
				t.Errorf("waiter %d: last_seq %d is not its last message's", w, page.LastSeq)
			}
			rest = append(rest, page.Messages...)
		}
		if len(rest) != 1 || !sameMessage(rest[0], ex.Assistant) {
			t.Errorf("waiter %d then saw %+v, want the reply %+v", w, rest, ex.Assistant)
		}
	}
}

// TestLongPollWithNothingNew: a wait with nothing newer answers 200 with an empty list and
// last_seq the same as after once the wait is over; with messages newer than after it answers
// them without waiting; a wait that names another user's session or none is 404.
func TestLongPollWithNothingNew(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	ex := e.exchange(t, e.alice, s.ID, "Hello")

	r := e.do(t, http.MethodGet, "/chat/sessions/"+s.ID+"/messages?after=2&wait=1", e.alice, "")
	var l chatapi.MessageList
	decodeStatus(t, r, http.StatusOK, &l)
	if l.Messages == nil || len(l.Messages) != 0 || l.LastSeq != 2 {
		t.Errorf("wait with nothing new: %s, want messages [] and last_seq 2", r.Body)
	}
	if !strings.Contains(string(r.Body), `"messages":[]`) {
		t.Errorf("empty page is %s, want \"messages\":[]", r.Body)
	}
	// After beyond the last message: nothing, and last_seq echoes after.
	decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions/"+s.ID+"/messages?after=40&wait=1", e.alice, ""), http.StatusOK, &l)
	if len(l.Messages) != 0 || l.LastSeq != 40 {
		t.Errorf("after=40: %+v, want nothing and last_seq 40", l)
	}

	decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions/"+s.ID+"/messages?after=1&wait=20", e.alice, ""), http.StatusOK, &l)
	if len(l.Messages) != 1 || !sameMessage(l.Messages[0], ex.Assistant) || l.LastSeq != 2 {
		t.Errorf("after=1&wait=20: %+v, want the reply at once", l)
	}

	for _, tc := range []struct{ name, tok, id string }{
		{"another user's session", e.bob, s.ID},
		{"no such session", e.alice, uuid.NewString()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.do(t, http.MethodGet, "/chat/sessions/"+tc.id+"/messages?after=2&wait=1", tc.tok, ""), http.StatusNotFound, "not_found")
		})
	}
}
