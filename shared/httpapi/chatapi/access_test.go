package chatapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/memory"
)

// idRequest is a request to an endpoint that names a session or an insight.
type idRequest struct {
	method, path, body string // path has %s where the id goes
}

// idRequests are every endpoint that names one of the caller's sessions or insights.
var idRequests = []idRequest{
	{http.MethodGet, "/chat/sessions/%s", ""},
	{http.MethodPatch, "/chat/sessions/%s", `{"title":"Taken over","archived":true}`},
	{http.MethodDelete, "/chat/sessions/%s", ""},
	{http.MethodPost, "/chat/sessions/%s/messages", `{"content":"Hi from someone else"}`},
	{http.MethodGet, "/chat/sessions/%s/messages", ""},
	{http.MethodGet, "/chat/sessions/%s/messages?after=0&wait=20", ""},
	{http.MethodDelete, "/me/insights/%s", ""},
}

func (q idRequest) at(id string) string { return strings.Replace(q.path, "%s", id, 1) }

// aliceState is what the database holds of alice's session and insight, and what was spent.
type aliceState struct {
	session  sessionRow
	insight  int
	logRows  int
	messages int
}

func (e *env) aliceState(t *testing.T, session, insight string) aliceState {
	t.Helper()
	row, ok := e.sessionRow(t, session)
	if !ok {
		t.Fatalf("alice's session %s is gone", session)
	}
	logRows, _ := e.logged(t, "alice")
	return aliceState{session: row, logRows: logRows,
		insight:  e.count(t, `SELECT count(*) FROM conversation_insights WHERE insight_id = $1 AND user_id = 'alice'`, insight),
		messages: e.count(t, `SELECT count(*) FROM session_messages`)}
}

// TestAnotherUsersIDs: bob naming alice's session or insight on any endpoint gets the same 404
// not_found (code and message) as for an id that does not exist, at once (a long-poll included),
// and nothing of alice's changes; bob's own listings and memory calls see nothing of alice's.
func TestAnotherUsersIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	e.exchange(t, e.alice, s.ID, "I am planning a trip to Lisbon in May")
	insight := e.addInsight(t, "alice", memory.ProspectiveSelf, "Plans a trip to Lisbon in May", false, evidence{s.ID, 1, "add"})
	before := e.aliceState(t, s.ID, insight)

	for _, q := range idRequests {
		t.Run(q.method+" "+q.path, func(t *testing.T) {
			id := s.ID
			if strings.HasPrefix(q.path, "/me/insights/") {
				id = insight
			}
			// A 20 s long-poll that waited would outlast this deadline.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			theirs := apitest.Send(t, apitest.NewRequest(t, q.method, e.url+q.at(id), e.bob, apitest.Body(q.body)).WithContext(ctx))
			missing := apitest.Send(t, apitest.NewRequest(t, q.method, e.url+q.at(uuid.NewString()), e.bob, apitest.Body(q.body)).WithContext(ctx))
			wantError(t, theirs, http.StatusNotFound, "not_found")
			wantError(t, missing, http.StatusNotFound, "not_found")
			if a, b := errorMessage(t, theirs), errorMessage(t, missing); a != b {
				t.Errorf("another user's id answers %q, a missing id %q: the difference reveals the id exists", a, b)
			}
		})
	}
	if after := e.aliceState(t, s.ID, insight); after != before {
		t.Errorf("alice's state after bob's calls: %+v, want it unchanged: %+v", after, before)
	}

	// Bob's own views hold nothing of alice's.
	r := e.do(t, http.MethodGet, "/chat/sessions?include_archived=true", e.bob, "")
	if r.WantStatus(t, http.StatusOK); strings.Contains(string(r.Body), s.ID) || !strings.Contains(string(r.Body), `"sessions":[]`) {
		t.Errorf("bob's session list: %s", r.Body)
	}
	for _, p := range []string{"/me/insights?include_invalidated=true", "/me/memory/export"} {
		r := e.do(t, http.MethodGet, p, e.bob, "")
		if r.WantStatus(t, http.StatusOK); strings.Contains(string(r.Body), insight) || !strings.Contains(string(r.Body), `"insights":[]`) {
			t.Errorf("GET %s as bob: %s", p, r.Body)
		}
	}
	r = e.do(t, http.MethodDelete, "/me/memory", e.bob, "")
	if r.WantStatus(t, http.StatusOK); strings.TrimSpace(string(r.Body)) != `{"deleted_insights":0}` {
		t.Errorf("bob forgetting: %s, want nothing deleted", r.Body)
	}
	if after := e.aliceState(t, s.ID, insight); after != before {
		t.Errorf("alice's state after bob forgot his memory: %+v, want %+v", after, before)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE conversation_id = $1 AND synthesized_seq = 0`, s.ID); n != 1 {
		t.Errorf("bob forgetting marked alice's conversation synthesized")
	}
}

func errorMessage(t *testing.T, r apitest.Response) string {
	t.Helper()
	var b apitest.ErrorBody
	r.Decode(t, &b)
	return b.Error.Message
}

// everyRoute is one request per endpoint, with alice's ids where a route names one.
func everyRoute(session, insight string) []idRequest {
	return []idRequest{
		{http.MethodPost, "/chat/sessions", `{"title":"x"}`},
		{http.MethodGet, "/chat/sessions", ""},
		{http.MethodGet, "/chat/sessions/" + session, ""},
		{http.MethodPatch, "/chat/sessions/" + session, `{"title":"Taken over"}`},
		{http.MethodDelete, "/chat/sessions/" + session, ""},
		{http.MethodPost, "/chat/sessions/" + session + "/messages", `{"content":"hi"}`},
		{http.MethodGet, "/chat/sessions/" + session + "/messages?wait=20", ""},
		{http.MethodGet, "/me/insights", ""},
		{http.MethodDelete, "/me/insights/" + insight, ""},
		{http.MethodDelete, "/me/memory", ""},
		{http.MethodGet, "/me/memory/export", ""},
	}
}

// TestWithoutValidToken: every endpoint without a token, with a token signed by another key, and
// with an expired one answers 401 unauthorized in JSON with RFC 6750's challenge, and changes
// nothing.
func TestWithoutValidToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	e.exchange(t, e.alice, s.ID, "Hello")
	insight := e.addInsight(t, "alice", memory.ProspectiveSelf, "A goal", false, evidence{s.ID, 1, "add"})
	before := e.aliceState(t, s.ID, insight)
	sessions := e.count(t, `SELECT count(*) FROM conversations`)

	forged := apitest.Sign(t, auth.TokenSpec{Secret: []byte("another-secret-entirely-0123456789abcdef"), Subject: "alice",
		Issuer: ctTokens.Issuer, Audience: ctTokens.Audience, TTL: time.Hour})
	expired := ctTokens.Spec("alice", nil)
	expired.TTL = -time.Hour
	tokens := map[string]struct {
		tok       string
		challenge string // what WWW-Authenticate must start with
	}{
		"no token":      {"", `Bearer realm="helix"`},
		"forged token":  {forged, `Bearer realm="helix", error="invalid_token"`},
		"expired token": {apitest.Sign(t, expired), `Bearer realm="helix", error="invalid_token"`},
		"not a JWT":     {"not-a-jwt", `Bearer realm="helix", error="invalid_token"`},
		"bad subject":   {ctTokens.Token(t, "ali\x00ce", nil), `Bearer realm="helix", error="invalid_token"`},
	}
	for name, tk := range tokens {
		for _, q := range everyRoute(s.ID, insight) {
			t.Run(name+"/"+q.method+" "+q.path, func(t *testing.T) {
				r := e.do(t, q.method, q.path, tk.tok, q.body)
				wantError(t, r, http.StatusUnauthorized, "unauthorized")
				if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, tk.challenge) {
					t.Errorf("WWW-Authenticate = %q, want %s...", h, tk.challenge)
				}
			})
		}
	}
	if after := e.aliceState(t, s.ID, insight); after != before {
		t.Errorf("state after unauthenticated calls: %+v, want %+v", after, before)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations`); n != sessions {
		t.Errorf("%d sessions after unauthenticated calls, want %d", n, sessions)
	}
}
