package chatapi_test

// Fuzz tests of what the chat API does with a request before it reaches the store: body
// decoding and validation, path ids and query parameters, through the real handlers (and, for
// sends, the real chat service), with stores that record what reached them. No database: each
// input costs microseconds.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/chat"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/chatapi"
	"github.com/helixhq/helix/shared/ident"
	"github.com/helixhq/helix/shared/memory"
)

// fuzzSession is the one session the fake store knows.
const fuzzSession = "3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b"

// postgresTakesUUID reports whether Postgres's uuid input accepts s: 32 hex digits, optionally
// in braces, with a hyphen allowed after any group of four. An id the API hands the store must be
// one of these, or the store's query fails (a 500).
func postgresTakesUUID(s string) bool {
	if strings.HasPrefix(s, "{") {
		if !strings.HasSuffix(s, "}") || len(s) < 2 {
			return false
		}
		s = s[1 : len(s)-1]
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			digits++
		case c == '-' && digits%4 == 0 && digits > 0 && digits < 32 && s[i-1] != '-':
		default:
			return false
		}
	}
	return digits == 32 && s[len(s)-1] != '-'
}

// fakeStore is a chat.Store that records each call and answers as if fuzzSession were the
// caller's only session, with one answered message.
type fakeStore struct {
	mu    sync.Mutex
	calls []storeCall
}

type storeCall struct {
	method string
	id     string
	title  string
	change chat.Change
	page   chat.Page
	begin  chat.BeginRequest
}

func (f *fakeStore) record(c storeCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

// take returns the calls recorded since the last take.
func (f *fakeStore) take() []storeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeStore) conversation(id string) chat.Conversation {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	return chat.Conversation{ID: id, UserID: "alice", CreatedAt: now, UpdatedAt: now, LastActivityAt: now}
}

func (f *fakeStore) lookup(method, id string) (chat.Conversation, error) {
	f.record(storeCall{method: method, id: id})
	if id != fuzzSession {
		return chat.Conversation{}, chat.ErrNotFound
	}
	return f.conversation(id), nil
}

func (f *fakeStore) CreateConversation(_ context.Context, _, title string) (chat.Conversation, error) {
	f.record(storeCall{method: "create", title: title})
	c := f.conversation(fuzzSession)
	c.Title = title
	return c, nil
}

func (f *fakeStore) ListConversations(_ context.Context, _ string, p chat.Page) ([]chat.Conversation, error) {
	f.record(storeCall{method: "list", page: p})
	return []chat.Conversation{f.conversation(fuzzSession)}, nil
}

func (f *fakeStore) GetConversation(_ context.Context, _, id string) (chat.Conversation, error) {
	return f.lookup("get", id)
}

func (f *fakeStore) UpdateConversation(_ context.Context, _, id string, c chat.Change) (chat.Conversation, error) {
	f.record(storeCall{method: "update", id: id, change: c})
	if id != fuzzSession {
		return chat.Conversation{}, chat.ErrNotFound
	}
	return f.conversation(id), nil
}

func (f *fakeStore) DeleteConversation(_ context.Context, _, id string) error {
	_, err := f.lookup("delete", id)
	return err
}

func (f *fakeStore) Messages(_ context.Context, _, id string, _ int64, _ int) ([]chat.Message, error) {
	_, err := f.lookup("messages", id)
	return nil, err
}

func (f *fakeStore) Begin(_ context.Context, r chat.BeginRequest) (chat.Begun, error) {
	f.record(storeCall{method: "begin", id: r.ConversationID, begin: r})
	if r.ConversationID != fuzzSession {
		return chat.Begun{}, chat.ErrNotFound
	}
	return chat.Begun{Outcome: chat.Replied, Seq: 1, ReplySeq: 2}, nil
}

func (f *fakeStore) StoreReply(context.Context, string, int64, chat.Reply, int64) (int64, int64, error) {
	return 0, 0, errors.New("fake store: no reply is produced here")
}

func (f *fakeStore) Abort(context.Context, string, int64) error { return nil }

func (f *fakeStore) Pair(_ context.Context, id string, seq int64) (chat.Message, chat.Message, error) {
	return chat.Message{ConversationID: id, Seq: seq, Role: chat.User, Content: "hi"},
		chat.Message{ConversationID: id, Seq: seq + 1, Role: chat.Assistant, Content: "hello", ReplyToSeq: seq}, nil
}

func (f *fakeStore) SteppedUp(context.Context, string, time.Time) error { return nil }

// fakeNotifier never wakes anyone.
type fakeNotifier struct{}

func (fakeNotifier) Subscribe(context.Context, string) (<-chan struct{}, func(), error) {
	return make(chan struct{}), func() {}, nil
}

// recordingChat is the real chat service for sends, and records what a read asks for.
type recordingChat struct {
	*chat.Service
	mu    sync.Mutex
	waits []waitCall
}

type waitCall struct {
	id    string
	after int64
	limit int
	wait  time.Duration
}

func (c *recordingChat) Wait(_ context.Context, _, id string, after int64, limit int, wait time.Duration) ([]chat.Message, error) {
	c.mu.Lock()
	c.waits = append(c.waits, waitCall{id: id, after: after, limit: limit, wait: wait})
	c.mu.Unlock()
	return nil, nil
}

func (c *recordingChat) takeWaits() []waitCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waits
	c.waits = nil
	return w
}

// fakeMemory records insight deletions.
type fakeMemory struct {
	mu      sync.Mutex
	deleted []string
	listed  []memory.Listing
}

func (m *fakeMemory) Insights(_ context.Context, _ string, l memory.Listing) ([]memory.Insight, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listed = append(m.listed, l)
	return nil, nil
}

func (m *fakeMemory) DeleteInsight(_ context.Context, _, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deleted = append(m.deleted, id)
	return memory.ErrNotFound
}

func (m *fakeMemory) Forget(context.Context, string) (int64, error) { return 0, nil }

func (m *fakeMemory) Export(context.Context, string) ([]memory.Insight, map[string][]memory.ExportedEvidence, error) {
	return nil, nil, nil
}

func (m *fakeMemory) take() ([]string, []memory.Listing) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, l := m.deleted, m.listed
	m.deleted, m.listed = nil, nil
	return d, l
}

// fuzzAPI is the chat API over the fakes, called in process.
type fuzzAPI struct {
	srv    *httpapi.Server
	store  *fakeStore
	chat   *recordingChat
	memory *fakeMemory
	token  string
}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	f.Helper()
	store := &fakeStore{}
	svc := &chat.Service{Store: store, Notifier: fakeNotifier{}, Logger: slog.New(slog.DiscardHandler), Policy: chat.DefaultPolicy()}
	api := &fuzzAPI{srv: httpapi.NewServer(apitest.Authenticator(f, ctTokens), slog.New(slog.DiscardHandler)),
		store: store, chat: &recordingChat{Service: svc}, memory: &fakeMemory{}, token: ctTokens.Token(f, "alice", nil)}
	chatapi.Register(api.srv, chatapi.Deps{Chat: api.chat, Sessions: store, Memory: api.memory})
	return api
}

// call serves one request; target is the request URI as sent on the wire.
func (a *fuzzAPI) call(method string, u *url.URL, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", bytes.NewReader(body))
	r.URL = u
	r.RequestURI = u.RequestURI()
	r.Header.Set("Authorization", "Bearer "+a.token)
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.srv.ServeHTTP(rec, r)
	return rec
}

// wantRefusal checks a refusal is Helix's error envelope with a code whose status is the one
// sent, and that status is one of allowed.
func wantRefusal(t *testing.T, input any, rec *httptest.ResponseRecorder, allowed ...int) {
	t.Helper()
	var b apitest.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("input %q: status %d with body %s, want the error envelope", input, rec.Code, rec.Body)
	}
	ok := false
	for _, s := range allowed {
		ok = ok || rec.Code == s
	}
	if !ok || httpapi.StatusOf(fault.Code(b.Error.Code)) != rec.Code {
		t.Fatalf("input %q: status %d, code %s; want a refusal among %v whose code has that status", input, rec.Code, b.Error.Code, allowed)
	}
}

// checkTitleValue is what a title that reached the store must be.
func checkTitleValue(t *testing.T, input any, title string) {
	t.Helper()
	if !utf8.ValidString(title) || strings.ContainsRune(title, 0) || utf8.RuneCountInString(title) > 200 || strings.TrimSpace(title) != title {
		t.Fatalf("input %q: title %q reached the store", input, title)
	}
}

var bodySeeds = []string{
	`{}`, `{"title":"Trip planning"}`, `{"title":"  padded  "}`, `{"title":""}`, `{"title":null}`,
	`{"title":"` + strings.Repeat("é", 200) + `"}`, `{"title":"` + strings.Repeat("é", 201) + `"}`,
	`{"title":"a\u0000b"}`, `{"title":"\ud800"}`, "{\"title\":\"\xff\"}", `{"title":5}`, `{"title":"x","extra":1}`,
	`{"title":"x"}{}`, `{"title":"x"} `, `[]`, `null`, `""`, ``, `{`, `{"archived":true}`, `{"archived":"true"}`,
	`{"title":"x","archived":false}`, `{"archived":null,"title":null}`, `{"Title":"case"}`, `{"title":"x","title":"y"}`,
	`{"content":"Hello, Helix!","client_message_id":"6c5c3d8e-6f5a-4c7e-9d55-1b2f3c4d5e6f"}`,
	`{"content":"hi"}`, `{"content":""}`, `{"content":"   "}`, `{"content":"a\u0000"}`, `{"content":"hi","client_message_id":""}`,
	`{"content":"hi","client_message_id":"a\nb"}`, `{"content":"hi","client_message_id":"` + strings.Repeat("x", 257) + `"}`,
	`{"content":"hi","approval_id":"` + uuid.NewString() + `"}`, `{"content":"hi","approval_id":"\u0085"}`,
	`{"content":"` + strings.Repeat("a", 16_001) + `"}`, `{"content":["hi"]}`, `{"content":"hi","role":"assistant"}`,
}

// FuzzCreateSessionBody: any body of POST /chat/sessions is refused with a 400/413 and stores
// nothing, or stores one session whose title is trimmed, UTF-8, NUL-free and at most 200
// characters.
func FuzzCreateSessionBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := api.call(http.MethodPost, &url.URL{Path: "/chat/sessions"}, body)
		calls := api.store.take()
		if rec.Code != http.StatusCreated {
			wantRefusal(t, body, rec, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
			if len(calls) != 0 {
				t.Fatalf("body %q refused with %d, yet reached the store: %+v", body, rec.Code, calls)
			}
			return
		}
		if len(calls) != 1 || calls[0].method != "create" {
			t.Fatalf("body %q: store calls %+v, want one create", body, calls)
		}
		checkTitleValue(t, body, calls[0].title)
	})
}

// FuzzUpdateSessionBody: any body of PATCH /chat/sessions/{id} is refused with a 400/413 and
// changes nothing, or changes at least one of title and archived, with a valid title.
func FuzzUpdateSessionBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := api.call(http.MethodPatch, &url.URL{Path: "/chat/sessions/" + fuzzSession}, body)
		calls := api.store.take()
		if rec.Code != http.StatusOK {
			wantRefusal(t, body, rec, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
			if len(calls) != 0 {
				t.Fatalf("body %q refused with %d, yet reached the store: %+v", body, rec.Code, calls)
			}
			return
		}
		if len(calls) != 1 || calls[0].method != "update" || calls[0].id != fuzzSession {
			t.Fatalf("body %q: store calls %+v, want one update of the session", body, calls)
		}
		c := calls[0].change
		if c.Title == nil && c.Archived == nil {
			t.Fatalf("body %q: an update that changes nothing reached the store", body)
		}
		if c.Title != nil {
			checkTitleValue(t, body, *c.Title)
		}
	})
}

// FuzzSendBody: any body of POST /chat/sessions/{id}/messages is refused with a 400/413 and
// reaches no store, or reaches it as a message with content (at most 16,000 characters, UTF-8,
// no NUL) and a client message id that is an identifier.
func FuzzSendBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := api.call(http.MethodPost, &url.URL{Path: "/chat/sessions/" + fuzzSession + "/messages"}, body)
		calls := api.store.take()
		if rec.Code != http.StatusOK {
			wantRefusal(t, body, rec, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
			if len(calls) != 0 {
				t.Fatalf("body %q refused with %d, yet reached the store: %+v", body, rec.Code, calls)
			}
			return
		}
		if len(calls) != 1 || calls[0].method != "begin" {
			t.Fatalf("body %q: store calls %+v, want one begin", body, calls)
		}
		b := calls[0].begin
		if b.ConversationID != fuzzSession || b.UserID != "alice" || ident.Check(b.ClientMessageID) != nil ||
			b.Content == "" || !utf8.ValidString(b.Content) || strings.ContainsRune(b.Content, 0) ||
			utf8.RuneCountInString(b.Content) > 16_000 {
			t.Fatalf("body %q reached the store as %+v", body, b)
		}
	})
}

// FuzzSessionListQuery: any query of GET /chat/sessions is refused with a 400 invalid_field, or
// lists with a limit of 1 to 100 (one more is read, to know whether a page follows) and a cursor
// that is none or a position whose id Postgres takes as a UUID.
func FuzzSessionListQuery(f *testing.F) {
	cursor := func(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }
	for _, s := range []string{
		"", "limit=20", "limit=1", "limit=100", "limit=0", "limit=101", "limit=-5", "limit=1e2", "limit=+7", "limit=07",
		"include_archived=true", "include_archived=T", "include_archived=yes", "limit=5&limit=500",
		"cursor=" + cursor("2026-05-01T10:00:00.123456Z|"+fuzzSession), "cursor=" + cursor("2026-05-01T10:00:00Z|not-a-uuid"),
		"cursor=" + cursor("2026-05-01T10:00:00Z|urn:uuid:"+fuzzSession), "cursor=" + cursor("2026-05-01T10:00:00+02:00|{"+fuzzSession+"}"),
		"cursor=" + cursor("|"), "cursor=%%%", "cursor=AAAA", "cursor=" + cursor("0000-01-01T00:00:00Z|"+fuzzSession),
		"limit=%00", "limit=%FF", ";;;", "&&=&",
	} {
		f.Add(s)
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, query string) {
		rec := api.call(http.MethodGet, &url.URL{Path: "/chat/sessions", RawQuery: query}, nil)
		calls := api.store.take()
		if rec.Code != http.StatusOK {
			wantRefusal(t, query, rec, http.StatusBadRequest)
			if len(calls) != 0 {
				t.Fatalf("query %q refused, yet listed: %+v", query, calls)
			}
			return
		}
		if len(calls) != 1 || calls[0].method != "list" {
			t.Fatalf("query %q: store calls %+v, want one list", query, calls)
		}
		p := calls[0].page
		if p.Limit < 2 || p.Limit > 101 {
			t.Fatalf("query %q listed with limit %d", query, p.Limit)
		}
		if p.Before != (chat.Cursor{}) && !postgresTakesUUID(p.Before.ID) {
			t.Fatalf("query %q listed after a cursor whose id %q Postgres refuses", query, p.Before.ID)
		}
	})
}

// FuzzMessagesQuery: any query of GET /chat/sessions/{id}/messages is refused with a 400
// invalid_field, or reads with after in [0, 2^53], limit in [1, 200] and a wait of whole seconds
// up to 20.
func FuzzMessagesQuery(f *testing.F) {
	for _, s := range []string{
		"", "after=0&limit=50", "after=2&wait=10", "wait=20", "wait=21", "wait=10s", "wait=-1", "wait=0",
		"after=9007199254740992", "after=9007199254740993", "after=-1", "limit=200", "limit=201", "limit=0",
		"after=1&after=2", "wait=1.5", "after=0x10", "limit=%20%31", "after=1&limit=1&wait=1&extra=x",
	} {
		f.Add(s)
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, query string) {
		rec := api.call(http.MethodGet, &url.URL{Path: "/chat/sessions/" + fuzzSession + "/messages", RawQuery: query}, nil)
		waits := api.chat.takeWaits()
		if rec.Code != http.StatusOK {
			wantRefusal(t, query, rec, http.StatusBadRequest)
			if len(waits) != 0 {
				t.Fatalf("query %q refused, yet read: %+v", query, waits)
			}
			return
		}
		if len(waits) != 1 {
			t.Fatalf("query %q: reads %+v, want one", query, waits)
		}
		w := waits[0]
		if w.id != fuzzSession || w.after < 0 || w.after > 1<<53 || w.limit < 1 || w.limit > 200 ||
			w.wait < 0 || w.wait > 20*time.Second || w.wait%time.Second != 0 {
			t.Fatalf("query %q read as %+v", query, w)
		}
	})
}

// FuzzPathID: any {id} of the session and insight routes is refused with a 400 (not an
// identifier), answered 404 (no such session or insight; the mux's own 404 and 405 for paths
// that match no route), redirected by the mux to its clean path, or reaches the store as an id
// Postgres takes as a UUID.
func FuzzPathID(f *testing.F) {
	for _, s := range []string{
		fuzzSession, strings.ToUpper(fuzzSession), "{" + fuzzSession + "}", strings.ReplaceAll(fuzzSession, "-", ""),
		"urn:uuid:" + fuzzSession, "not-a-uuid", "", ".", "..", "a/b", "%2F", "\x00", "\xff", "a\nb",
		strings.Repeat("a", 257), fuzzSession + "/", " " + fuzzSession,
	} {
		f.Add(s)
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, id string) {
		for _, route := range []struct{ method, prefix, suffix string }{
			{http.MethodGet, "/chat/sessions/", ""},
			{http.MethodDelete, "/chat/sessions/", ""},
			{http.MethodGet, "/chat/sessions/", "/messages"},
			{http.MethodPost, "/chat/sessions/", "/messages"},
			{http.MethodDelete, "/me/insights/", ""},
		} {
			p := route.prefix + id + route.suffix
			u := &url.URL{Path: p, RawPath: route.prefix + url.PathEscape(id) + route.suffix}
			rec := api.call(route.method, u, []byte(`{"content":"hi"}`))
			reached, _ := api.memory.take()
			for _, c := range api.store.take() {
				reached = append(reached, c.id)
			}
			for _, w := range api.chat.takeWaits() {
				reached = append(reached, w.id)
			}
			for _, r := range reached {
				if !postgresTakesUUID(r) {
					t.Fatalf("%s %s: id %q reached the store, which Postgres refuses as a UUID", route.method, u, r)
				}
			}
			switch {
			case rec.Code == http.StatusOK, rec.Code == http.StatusNoContent:
				if len(reached) == 0 {
					t.Fatalf("%s %s: %d without reaching a store", route.method, u, rec.Code)
				}
			case rec.Code == http.StatusMovedPermanently, rec.Code == http.StatusTemporaryRedirect, rec.Code == http.StatusPermanentRedirect:
			default:
				wantRefusal(t, id, rec, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed)
			}
		}
	})
}
