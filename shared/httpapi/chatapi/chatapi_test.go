package chatapi_test

// These tests drive the chat function's HTTP API end to end: a real server on a local port, the
// handlers chatapp.Mount registers, the chat service and the execution pipeline over a fresh
// Postgres database, and the real DeepSeek adapter talking to a local wire server.

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/httpapi/chatapi"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/money"
)

// The keys a session and an exchange always carry.
var (
	sessionKeys  = []string{"archived", "created_at", "id", "last_activity_at", "last_seq", "title", "updated_at"}
	exchangeKeys = []string{"assistant", "replayed", "user"}
)

// wantRecent checks a timestamp is within a minute of now.
func wantRecent(t *testing.T, name string, at time.Time) {
	t.Helper()
	if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Errorf("%s = %s, not now", name, at)
	}
}

func wantSessionShape(t *testing.T, r apitest.Response) {
	t.Helper()
	if got := keys(t, r.Body); !slices.Equal(got, sessionKeys) {
		t.Errorf("session keys %v, want %v", got, sessionKeys)
	}
}

// TestSessionLifecycle: create (title trimmed), read, rename, archive, list with and without
// archived sessions, delete; every answer has the session's shape and the database agrees.
func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.do(t, http.MethodPost, "/chat/sessions", e.alice, `{"title":"  Trip planning \n"}`)
	var s chatapi.SessionView
	decodeStatus(t, r, http.StatusCreated, &s)
	wantSessionShape(t, r)
	if uuid.Validate(s.ID) != nil || s.Title != "Trip planning" || s.Archived || s.LastSeq != 0 {
		t.Errorf("created %+v, want a UUID, the trimmed title, not archived, last_seq 0", s)
	}
	for name, at := range map[string]time.Time{"created_at": s.CreatedAt, "updated_at": s.UpdatedAt, "last_activity_at": s.LastActivityAt} {
		wantRecent(t, name, at)
	}
	if row, ok := e.sessionRow(t, s.ID); !ok || row.User != "alice" || row.Title != "Trip planning" {
		t.Errorf("stored %+v (found %v), want alice's \"Trip planning\"", row, ok)
	}

	untitled := e.createSession(t, e.alice, "")
	if untitled.Title != "" {
		t.Errorf("untitled session has title %q", untitled.Title)
	}
	r = e.do(t, http.MethodPost, "/chat/sessions", e.alice, `{}`)
	r.WantStatus(t, http.StatusCreated)

	r = e.do(t, http.MethodGet, "/chat/sessions/"+s.ID, e.alice, "")
	var got chatapi.SessionView
	decodeStatus(t, r, http.StatusOK, &got)
	wantSessionShape(t, r)
	if got.ID != s.ID || got.Title != s.Title || !got.CreatedAt.Equal(s.CreatedAt) {
		t.Errorf("read %+v, want %+v", got, s)
	}

	r = e.do(t, http.MethodPatch, "/chat/sessions/"+s.ID, e.alice, `{"title":"Lisbon in May"}`)
	decodeStatus(t, r, http.StatusOK, &got)
	wantSessionShape(t, r)
	if got.Title != "Lisbon in May" || got.Archived {
		t.Errorf("renamed to %+v", got)
	}
	r = e.do(t, http.MethodPatch, "/chat/sessions/"+s.ID, e.alice, `{"archived":true}`)
	decodeStatus(t, r, http.StatusOK, &got)
	if got.Title != "Lisbon in May" || !got.Archived {
		t.Errorf("archived: %+v, want the title kept and archived", got)
	}
	if row, _ := e.sessionRow(t, s.ID); row.Title != "Lisbon in May" || !row.Archived {
		t.Errorf("stored %+v after rename and archive", row)
	}

	ids := func(query string) []string {
		t.Helper()
		var l chatapi.SessionList
		decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions"+query, e.alice, ""), http.StatusOK, &l)
		var out []string
		for _, s := range l.Sessions {
			out = append(out, s.ID)
		}
		return out
	}
	if l := ids(""); len(l) != 2 || slices.Contains(l, s.ID) {
		t.Errorf("listed %v, want the 2 sessions that are not archived", l)
	}
	if l := ids("?include_archived=true"); len(l) != 3 || !slices.Contains(l, s.ID) {
		t.Errorf("listed with archived %v, want all 3", l)
	}

	r = e.do(t, http.MethodPatch, "/chat/sessions/"+s.ID, e.alice, `{"archived":false,"title":""}`)
	decodeStatus(t, r, http.StatusOK, &got)
	if got.Title != "" || got.Archived {
		t.Errorf("unarchived and untitled: %+v", got)
	}

	wantNoContent(t, e.do(t, http.MethodDelete, "/chat/sessions/"+s.ID, e.alice, ""))
	if _, ok := e.sessionRow(t, s.ID); ok {
		t.Errorf("session %s still stored after DELETE", s.ID)
	}
	wantError(t, e.do(t, http.MethodGet, "/chat/sessions/"+s.ID, e.alice, ""), http.StatusNotFound, "not_found")
	wantError(t, e.do(t, http.MethodDelete, "/chat/sessions/"+s.ID, e.alice, ""), http.StatusNotFound, "not_found")
}

// TestSendAndRead: a send answers 201 with the stored user message and the model's reply
// (model, tokens, cost, request id), the call is logged and charged, and reading the session
// returns the same two messages.
func TestSendAndRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	cmid := uuid.NewString()

	r := e.send(t, e.alice, s.ID, "Hello, Helix!", cmid)
	var ex chatapi.ExchangeView
	decodeStatus(t, r, http.StatusCreated, &ex)
	if got := keys(t, r.Body); !slices.Equal(got, exchangeKeys) {
		t.Errorf("exchange keys %v, want %v", got, exchangeKeys)
	}
	u, a := ex.User, ex.Assistant
	if ex.Replayed || u.Seq != 1 || u.Role != "user" || u.Content != "Hello, Helix!" || u.ClientMessageID != cmid ||
		u.ReplyToSeq != 0 || u.Model != "" || u.CostUSD != 0 {
		t.Errorf("user message %+v (replayed %v)", u, ex.Replayed)
	}
	wantRecent(t, "user.created_at", u.CreatedAt)
	requestID := r.Header.Get("X-Request-Id")
	if a.Seq != 2 || a.Role != "assistant" || a.ReplyToSeq != 1 || a.Model != "deepseek" || a.ClientMessageID != "" ||
		a.Content != "Hello from the openai test server." || a.RequestID != requestID ||
		a.InputTokens != 20 || a.OutputTokens != 10 || a.CostUSD <= 0 {
		t.Errorf("assistant message %+v, want seq 2 answering 1 by deepseek with the wire's text, tokens 20/10, a cost and request id %s",
			a, requestID)
	}
	if h := r.Header.Get("X-Helix-Cost-Usd"); h != a.CostUSD.String() {
		t.Errorf("X-Helix-Cost-Usd = %q, want the reply's cost %s", h, a.CostUSD)
	}

	// The model saw the message, after a system prompt.
	reqs := e.deepseek.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d model requests, want 1", len(reqs))
	}
	msgs, _ := reqs[0].JSON()["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("model request messages %v, want system + user", msgs)
	}
	if first, _ := msgs[0].(map[string]any); first["role"] != "system" {
		t.Errorf("first message %v, want the system prompt", first)
	}
	if last, _ := msgs[1].(map[string]any); last["role"] != "user" || last["content"] != "Hello, Helix!" {
		t.Errorf("last message %v, want the user's", last)
	}

	// Logged as chat_message, settled at the reply's cost, charged to alice's day.
	var op, status string
	var cost, actual int64
	if err := e.pool.QueryRow(context.Background(), `
		SELECT l.operation_id, l.cost_nano, r.status, r.actual_nano
		  FROM ai_operation_log l JOIN budget_reservations r USING (request_id)
		 WHERE l.request_id = $1 AND l.user_id = 'alice' AND l.success`, requestID).Scan(&op, &cost, &status, &actual); err != nil {
		t.Fatalf("log and reservation of %s: %v", requestID, err)
	}
	if op != "chat_message" || money.Nano(cost) != a.CostUSD || status != "settled" || actual != cost {
		t.Errorf("logged %s at %d, reservation %s at %d; want chat_message, settled at the reply's %d", op, cost, status, actual, a.CostUSD)
	}
	if d := e.today(t, "alice"); d.Spent != a.CostUSD || d.Reserved != 0 {
		t.Errorf("alice's day: spent %s, reserved %s; want %s and nothing held", d.Spent, d.Reserved, a.CostUSD)
	}

	var list chatapi.MessageList
	decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions/"+s.ID+"/messages", e.alice, ""), http.StatusOK, &list)
	if list.LastSeq != 2 || len(list.Messages) != 2 {
		t.Fatalf("messages %+v, want the 2 stored, last_seq 2", list)
	}
	if !sameMessage(list.Messages[0], u) || !sameMessage(list.Messages[1], a) {
		t.Errorf("read back %+v, want the exchange's %+v, %+v", list.Messages, u, a)
	}

	var after chatapi.SessionView
	decodeStatus(t, e.do(t, http.MethodGet, "/chat/sessions/"+s.ID, e.alice, ""), http.StatusOK, &after)
	if after.LastSeq != 2 || !after.LastActivityAt.After(s.LastActivityAt) {
		t.Errorf("session after the send: last_seq %d, last activity %s (was %s); want 2, later", after.LastSeq, after.LastActivityAt, s.LastActivityAt)
	}
}

func sameMessage(a, b chatapi.MessageView) bool {
	return a.Seq == b.Seq && a.Role == b.Role && a.Content == b.Content && a.ClientMessageID == b.ClientMessageID &&
		a.ReplyToSeq == b.ReplyToSeq && a.Model == b.Model && a.InputTokens == b.InputTokens &&
		a.OutputTokens == b.OutputTokens && a.CostUSD == b.CostUSD && a.RequestID == b.RequestID && a.CreatedAt.Equal(b.CreatedAt)
}

// insightList is the body of GET /me/insights.
type insightList struct {
	Insights []chatapi.InsightView `json:"insights"`
}

func insightIDs(l []chatapi.InsightView) []string {
	var out []string
	for _, i := range l {
		out = append(out, i.ID)
	}
	return out
}

// TestMemoryEndpoints: insights are listed (active only, by layer, with evidence), filtered by
// layer, listed with the invalidated ones, exported with their evidence's kind and message,
// deleted one by one, and forgotten altogether while the conversations stay.
func TestMemoryEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	e.exchange(t, e.alice, s.ID, "I am planning a trip to Lisbon in May")
	goal := e.addInsight(t, "alice", memory.ProspectiveSelf, "Plans a trip to Lisbon in May", false, evidence{s.ID, 1, "add"})
	old := e.addInsight(t, "alice", memory.NarrativeCore, "Lives in Porto", true, evidence{s.ID, 1, "invalidate"})
	purpose := e.addInsight(t, "alice", memory.PurposeEngine, "Values time with family", false)
	e.addInsight(t, "bob", memory.ProspectiveSelf, "Bob's goal", false)

	var l insightList
	decodeStatus(t, e.do(t, http.MethodGet, "/me/insights", e.alice, ""), http.StatusOK, &l)
	if got := insightIDs(l.Insights); !slices.Equal(got, []string{goal, purpose}) {
		t.Fatalf("insights %v, want the active ones by layer: %v", got, []string{goal, purpose})
	}
	g := l.Insights[0]
	if g.Layer != 4 || g.LayerName != "Prospective Self" || g.Text != "Plans a trip to Lisbon in May" ||
		math.Abs(g.Confidence-0.8) > 1e-6 || g.InvalidatedAt != nil || g.SupersededBy != "" {
		t.Errorf("insight %+v", g)
	}
	if len(g.Evidence) != 1 || g.Evidence[0] != (chatapi.EvidenceView{SessionID: s.ID, Seq: 1}) {
		t.Errorf("evidence %+v, want session %s seq 1 (no kind or message outside the export)", g.Evidence, s.ID)
	}
	if l.Insights[1].Evidence == nil || len(l.Insights[1].Evidence) != 0 {
		t.Errorf("insight without evidence shows %v, want []", l.Insights[1].Evidence)
	}

	decodeStatus(t, e.do(t, http.MethodGet, "/me/insights?layer=4", e.alice, ""), http.StatusOK, &l)
	if got := insightIDs(l.Insights); !slices.Equal(got, []string{goal}) {
		t.Errorf("layer 4: %v, want [%s]", got, goal)
	}
	decodeStatus(t, e.do(t, http.MethodGet, "/me/insights?include_invalidated=true", e.alice, ""), http.StatusOK, &l)
	if got := insightIDs(l.Insights); !slices.Equal(got, []string{old, goal, purpose}) {
		t.Errorf("with invalidated: %v, want %v", got, []string{old, goal, purpose})
	} else if l.Insights[0].InvalidatedAt == nil {
		t.Errorf("invalidated insight without invalidated_at: %+v", l.Insights[0])
	}

	r := e.do(t, http.MethodGet, "/me/memory/export", e.alice, "")
	var ex chatapi.Export
	decodeStatus(t, r, http.StatusOK, &ex)
	if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("Content-Disposition = %q, want an attachment", cd)
	}
	wantRecent(t, "exported_at", ex.ExportedAt)
	if ex.UserID != "alice" || !slices.Equal(insightIDs(ex.Insights), []string{old, goal, purpose}) {
		t.Fatalf("export of %s: %v, want alice's 3 insights, invalidated included", ex.UserID, insightIDs(ex.Insights))
	}
	want := chatapi.EvidenceView{SessionID: s.ID, Seq: 1, Kind: "add", Message: "I am planning a trip to Lisbon in May"}
	if ev := ex.Insights[1].Evidence; len(ev) != 1 || ev[0] != want {
		t.Errorf("exported evidence %+v, want [%+v]", ev, want)
	}

	wantNoContent(t, e.do(t, http.MethodDelete, "/me/insights/"+purpose, e.alice, ""))
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE insight_id = $1`, purpose); n != 0 {
		t.Errorf("deleted insight still stored")
	}
	wantError(t, e.do(t, http.MethodDelete, "/me/insights/"+purpose, e.alice, ""), http.StatusNotFound, "not_found")

	r = e.do(t, http.MethodDelete, "/me/memory", e.alice, "")
	var forgot struct {
		DeletedInsights int64 `json:"deleted_insights"`
	}
	decodeStatus(t, r, http.StatusOK, &forgot)
	if forgot.DeletedInsights != 2 {
		t.Errorf("deleted_insights = %d, want 2", forgot.DeletedInsights)
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE user_id = 'alice'`); n != 0 {
		t.Errorf("%d of alice's insights left after forgetting", n)
	}
	if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE user_id = 'bob'`); n != 1 {
		t.Errorf("bob has %d insights after alice forgot hers, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE conversation_id = $1 AND synthesized_seq = last_seq AND last_seq = 2`, s.ID); n != 1 {
		t.Errorf("the conversation is gone or not marked synthesized after forgetting")
	}
	decodeStatus(t, e.do(t, http.MethodGet, "/me/insights", e.alice, ""), http.StatusOK, &l)
	if l.Insights == nil || len(l.Insights) != 0 {
		t.Errorf("insights after forgetting: %v, want []", l.Insights)
	}
}

// TestDeleteSessionTakesItsOnlyEvidence: deleting a session erases its messages and the insights
// whose only evidence is in it; an insight with evidence elsewhere stays, with that evidence.
func TestDeleteSessionTakesItsOnlyEvidence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.createSession(t, e.alice, "A")
	b := e.createSession(t, e.alice, "B")
	e.exchange(t, e.alice, a.ID, "in A")
	e.exchange(t, e.alice, b.ID, "in B")
	only := e.addInsight(t, "alice", memory.ProspectiveSelf, "only in A", false, evidence{a.ID, 1, "add"})
	both := e.addInsight(t, "alice", memory.ProspectiveSelf, "in A and B", false, evidence{a.ID, 1, "add"}, evidence{b.ID, 1, "reinforce"})
	none := e.addInsight(t, "alice", memory.PurposeEngine, "no evidence", false)

	wantNoContent(t, e.do(t, http.MethodDelete, "/chat/sessions/"+a.ID, e.alice, ""))
	if n := e.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1`, a.ID); n != 0 {
		t.Errorf("%d messages of the deleted session left", n)
	}
	var l insightList
	decodeStatus(t, e.do(t, http.MethodGet, "/me/insights", e.alice, ""), http.StatusOK, &l)
	if got := insightIDs(l.Insights); !slices.Equal(got, []string{both, none}) {
		t.Fatalf("insights %v, want %v (%s rested only on the deleted session)", got, []string{both, none}, only)
	}
	if ev := l.Insights[0].Evidence; len(ev) != 1 || ev[0].SessionID != b.ID {
		t.Errorf("evidence left %+v, want session B's only", ev)
	}
}
