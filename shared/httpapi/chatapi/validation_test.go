package chatapi_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/httpapi/chatapi"
)

// refusal is a request the edge must refuse, and how.
type refusal struct {
	name         string
	method, path string // path: %s is alice's session
	body         string
	status       int
	code         string
}

// idRoutes are the routes whose path names an id: %s is where it goes.
var idRoutes = []idRequest{
	{http.MethodGet, "/chat/sessions/%s", ""},
	{http.MethodPatch, "/chat/sessions/%s", `{"title":"x"}`},
	{http.MethodDelete, "/chat/sessions/%s", ""},
	{http.MethodPost, "/chat/sessions/%s/messages", `{"content":"hi"}`},
	{http.MethodGet, "/chat/sessions/%s/messages", ""},
	{http.MethodDelete, "/me/insights/%s", ""},
}

// TestBadPathIDs: on every route that names an id, an id that is not an identifier (too long,
// NUL, a control character, invalid UTF-8) is a 400 invalid_field; an identifier that is not a
// UUID names nothing: 404 not_found, the answer for any id that does not exist. Never a 500.
func TestBadPathIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	valid := uuid.NewString()
	ids := []struct {
		name, escaped string
		status        int
		code          string
	}{
		{"not a UUID", "not-a-uuid", http.StatusNotFound, "not_found"},
		{"a UUID with a character missing", valid[:35], http.StatusNotFound, "not_found"},
		{"a UUID with a character too many", valid + "0", http.StatusNotFound, "not_found"},
		{"a UUID with a bad hex digit", "g" + valid[1:], http.StatusNotFound, "not_found"},
		{"a braced UUID", "%7B" + valid + "%7D", http.StatusNotFound, "not_found"},
		{"a UUID with a NUL", valid[:8] + "%00" + valid[9:], http.StatusBadRequest, "invalid_field"},
		{"NUL", "%00", http.StatusBadRequest, "invalid_field"},
		{"a newline", "a%0Ab", http.StatusBadRequest, "invalid_field"},
		{"invalid UTF-8", "ab%FFcd", http.StatusBadRequest, "invalid_field"},
		{"truncated UTF-8", "ab%E7%94", http.StatusBadRequest, "invalid_field"},
		{"257 bytes", strings.Repeat("a", 257), http.StatusBadRequest, "invalid_field"},
		{"8000 bytes", strings.Repeat("7", 8000), http.StatusBadRequest, "invalid_field"},
	}
	for _, q := range idRoutes {
		for _, id := range ids {
			t.Run(q.method+" "+q.path+"/"+id.name, func(t *testing.T) {
				r := e.do(t, q.method, q.at(id.escaped), e.alice, q.body)
				if r.Status >= 500 {
					t.Fatalf("status %d for id %q: %s", r.Status, id.escaped, r.Body)
				}
				wantError(t, r, id.status, id.code)
			})
		}
	}
	if n := e.count(t, `SELECT count(*) FROM conversations`); n != 0 {
		t.Errorf("%d sessions stored by refused requests", n)
	}
}

// TestUUIDFormsPostgresRefuses: github.com/google/uuid's Validate also takes the "urn:uuid:"
// form, which Postgres's uuid type does not: such an id in a path must name nothing (404, as any
// id that is not a session's), and such a cursor is not one the API gave out (400), never a 500.
func TestUUIDFormsPostgresRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	for _, id := range []string{"urn:uuid:" + s.ID, "URN:UUID:" + uuid.NewString()} {
		for _, q := range idRoutes {
			t.Run(q.method+" "+q.at(id), func(t *testing.T) {
				wantError(t, e.do(t, q.method, q.at(id), e.alice, q.body), http.StatusNotFound, "not_found")
			})
		}
		t.Run("cursor "+id, func(t *testing.T) {
			c := cursorOf("2026-05-01T10:00:00.123456Z|" + id)
			wantError(t, e.do(t, http.MethodGet, "/chat/sessions?cursor="+c, e.alice, ""), http.StatusBadRequest, "invalid_field")
		})
	}
	if row, ok := e.sessionRow(t, s.ID); !ok || row.Title != "Trip planning" || row.Messages != 0 {
		t.Errorf("session after the requests: %+v (found %v), want it unchanged", row, ok)
	}
}

// cursorOf encodes a cursor the way the API's are built (base64url of "<time>|<id>"), so that
// the tests can forge broken ones.
func cursorOf(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }

// TestRefusedRequests: query parameters out of range or of the wrong form, and bodies that are
// not what the endpoint takes, are refused with a 4xx and the stable code, never a 500, and
// nothing is stored or sent to a model.
func TestRefusedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.createSession(t, e.alice, "Trip planning")
	long := func(n int) string { return strings.Repeat("a", n) }
	const ts = "2026-05-01T10:00:00.123456Z"
	cases := []refusal{
		// GET /chat/sessions
		{"limit 0", "GET", "/chat/sessions?limit=0", "", 400, "invalid_field"},
		{"limit 101", "GET", "/chat/sessions?limit=101", "", 400, "invalid_field"},
		{"limit negative", "GET", "/chat/sessions?limit=-1", "", 400, "invalid_field"},
		{"limit not a number", "GET", "/chat/sessions?limit=ten", "", 400, "invalid_field"},
		{"limit fractional", "GET", "/chat/sessions?limit=1.5", "", 400, "invalid_field"},
		{"limit overflowing int64", "GET", "/chat/sessions?limit=99999999999999999999", "", 400, "invalid_field"},
		{"include_archived not a boolean", "GET", "/chat/sessions?include_archived=maybe", "", 400, "invalid_field"},
		{"cursor not base64", "GET", "/chat/sessions?cursor=%21%21%21", "", 400, "invalid_field"},
		{"cursor padded base64", "GET", "/chat/sessions?cursor=" + base64.URLEncoding.EncodeToString([]byte(ts+"|"+s.ID)), "", 400, "invalid_field"},
		{"cursor without separator", "GET", "/chat/sessions?cursor=" + cursorOf(ts), "", 400, "invalid_field"},
		{"cursor with a bad time", "GET", "/chat/sessions?cursor=" + cursorOf("yesterday|"+s.ID), "", 400, "invalid_field"},
		{"cursor with a bad id", "GET", "/chat/sessions?cursor=" + cursorOf(ts+"|not-a-uuid"), "", 400, "invalid_field"},
		{"cursor with a NUL", "GET", "/chat/sessions?cursor=" + cursorOf(ts+"|"+s.ID+"\x00"), "", 400, "invalid_field"},

		// GET /chat/sessions/{id}/messages
		{"after negative", "GET", "/chat/sessions/%s/messages?after=-1", "", 400, "invalid_field"},
		{"after not a number", "GET", "/chat/sessions/%s/messages?after=last", "", 400, "invalid_field"},
		{"after over 2^53", "GET", "/chat/sessions/%s/messages?after=9007199254740993", "", 400, "invalid_field"},
		{"messages limit 0", "GET", "/chat/sessions/%s/messages?limit=0", "", 400, "invalid_field"},
		{"messages limit 201", "GET", "/chat/sessions/%s/messages?limit=201", "", 400, "invalid_field"},
		{"wait 21", "GET", "/chat/sessions/%s/messages?wait=21", "", 400, "invalid_field"},
		{"wait 3600", "GET", "/chat/sessions/%s/messages?wait=3600", "", 400, "invalid_field"},
		{"wait negative", "GET", "/chat/sessions/%s/messages?wait=-1", "", 400, "invalid_field"},
		{"wait with a unit", "GET", "/chat/sessions/%s/messages?wait=10s", "", 400, "invalid_field"},
		{"wait fractional", "GET", "/chat/sessions/%s/messages?wait=1.5", "", 400, "invalid_field"},

		// GET /me/insights
		{"layer 8", "GET", "/me/insights?layer=8", "", 400, "invalid_field"},
		{"layer negative", "GET", "/me/insights?layer=-1", "", 400, "invalid_field"},
		{"layer a name", "GET", "/me/insights?layer=Narrative", "", 400, "invalid_field"},
		{"include_invalidated not a boolean", "GET", "/me/insights?include_invalidated=yes", "", 400, "invalid_field"},

		// POST /chat/sessions
		{"create: unknown field", "POST", "/chat/sessions", `{"title":"x","color":"red"}`, 400, "unknown_field"},
		{"create: title a number", "POST", "/chat/sessions", `{"title":5}`, 400, "invalid_type"},
		{"create: an array", "POST", "/chat/sessions", `[{"title":"x"}]`, 400, "invalid_type"},
		{"create: a string", "POST", "/chat/sessions", `"x"`, 400, "invalid_type"},
		{"create: title 201 characters", "POST", "/chat/sessions", `{"title":"` + strings.Repeat("é", 201) + `"}`, 400, "invalid_field"},
		{"create: title with NUL", "POST", "/chat/sessions", `{"title":"a\u0000b"}`, 400, "invalid_field"},
		{"create: invalid UTF-8", "POST", "/chat/sessions", "{\"title\":\"a\xffb\"}", 400, "malformed_json"},
		{"create: trailing data", "POST", "/chat/sessions", `{"title":"x"}{"title":"y"}`, 400, "malformed_json"},
		{"create: trailing garbage", "POST", "/chat/sessions", `{"title":"x"} !`, 400, "malformed_json"},
		{"create: cut off", "POST", "/chat/sessions", `{"title":"x"`, 400, "malformed_json"},
		{"create: over 64 KiB", "POST", "/chat/sessions", `{"title":"` + long(70_000) + `"}`, 413, "body_too_large"},

		// PATCH /chat/sessions/{id}
		{"patch: nothing to change", "PATCH", "/chat/sessions/%s", `{}`, 400, "missing_field"},
		{"patch: nulls only", "PATCH", "/chat/sessions/%s", `{"title":null,"archived":null}`, 400, "missing_field"},
		{"patch: empty body", "PATCH", "/chat/sessions/%s", "", 400, "empty_body"},
		{"patch: archived a string", "PATCH", "/chat/sessions/%s", `{"archived":"yes"}`, 400, "invalid_type"},
		{"patch: title an object", "PATCH", "/chat/sessions/%s", `{"title":{"text":"x"}}`, 400, "invalid_type"},
		{"patch: unknown field", "PATCH", "/chat/sessions/%s", `{"title":"x","pinned":true}`, 400, "unknown_field"},
		{"patch: title 201 characters", "PATCH", "/chat/sessions/%s", `{"title":"` + long(201) + `"}`, 400, "invalid_field"},
		{"patch: title with NUL", "PATCH", "/chat/sessions/%s", `{"title":"\u0000"}`, 400, "invalid_field"},
		{"patch: invalid UTF-8", "PATCH", "/chat/sessions/%s", "{\"title\":\"\xc3\"}", 400, "malformed_json"},
		{"patch: trailing data", "PATCH", "/chat/sessions/%s", `{"archived":true} {"archived":false}`, 400, "malformed_json"},

		// POST /chat/sessions/{id}/messages
		{"send: empty body", "POST", "/chat/sessions/%s/messages", "", 400, "empty_body"},
		{"send: no content", "POST", "/chat/sessions/%s/messages", `{"client_message_id":"` + uuid.NewString() + `"}`, 400, "missing_field"},
		{"send: empty content", "POST", "/chat/sessions/%s/messages", `{"content":""}`, 400, "missing_field"},
		{"send: content 16001 characters", "POST", "/chat/sessions/%s/messages", `{"content":"` + long(16_001) + `"}`, 400, "invalid_field"},
		{"send: content 16001 multibyte characters", "POST", "/chat/sessions/%s/messages", `{"content":"` + strings.Repeat("用", 16_001) + `"}`, 400, "invalid_field"},
		{"send: content with NUL", "POST", "/chat/sessions/%s/messages", `{"content":"hi\u0000"}`, 400, "invalid_field"},
		{"send: content a number", "POST", "/chat/sessions/%s/messages", `{"content":42}`, 400, "invalid_type"},
		{"send: content an array", "POST", "/chat/sessions/%s/messages", `{"content":["hi"]}`, 400, "invalid_type"},
		{"send: client_message_id a number", "POST", "/chat/sessions/%s/messages", `{"content":"hi","client_message_id":7}`, 400, "invalid_type"},
		{"send: client_message_id 257 bytes", "POST", "/chat/sessions/%s/messages", `{"content":"hi","client_message_id":"` + long(257) + `"}`, 400, "invalid_field"},
		{"send: client_message_id with NUL", "POST", "/chat/sessions/%s/messages", `{"content":"hi","client_message_id":"a\u0000b"}`, 400, "invalid_field"},
		{"send: client_message_id with a newline", "POST", "/chat/sessions/%s/messages", `{"content":"hi","client_message_id":"a\nb"}`, 400, "invalid_field"},
		{"send: approval_id with a control character", "POST", "/chat/sessions/%s/messages", `{"content":"hi","approval_id":"a\u0007"}`, 400, "invalid_field"},
		{"send: unknown field", "POST", "/chat/sessions/%s/messages", `{"content":"hi","model":"claude"}`, 400, "unknown_field"},
		{"send: role given", "POST", "/chat/sessions/%s/messages", `{"content":"hi","role":"assistant"}`, 400, "unknown_field"},
		{"send: invalid UTF-8", "POST", "/chat/sessions/%s/messages", "{\"content\":\"h\xffi\"}", 400, "malformed_json"},
		{"send: trailing data", "POST", "/chat/sessions/%s/messages", `{"content":"hi"}{"content":"again"}`, 400, "malformed_json"},
		{"send: not JSON", "POST", "/chat/sessions/%s/messages", `content=hi`, 400, "malformed_json"},
		{"send: over 64 KiB", "POST", "/chat/sessions/%s/messages", `{"content":"` + long(70_000) + `"}`, 413, "body_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, c.method, strings.Replace(c.path, "%s", s.ID, 1), e.alice, c.body)
			if r.Status >= 500 {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			wantError(t, r, c.status, c.code)
		})
	}
	if n := e.count(t, `SELECT count(*) FROM conversations`); n != 1 {
		t.Errorf("%d sessions after refused requests, want the 1 created", n)
	}
	if row, _ := e.sessionRow(t, s.ID); row.Title != "Trip planning" || row.Archived || row.Messages != 0 {
		t.Errorf("session after refused requests: %+v, want it unchanged", row)
	}
	if n := e.deepseek.Count(); n != 0 {
		t.Errorf("%d model calls for refused requests", n)
	}
}

// TestAcceptedAtTheLimits: the largest values the edge takes are taken: a 200-character title,
// a 16,000-character message, a 256-byte client_message_id that is not a UUID (any identifier
// is), limits and wait at their maximum.
func TestAcceptedAtTheLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	title := strings.Repeat("é", 200)
	s := e.createSession(t, e.alice, title)
	if s.Title != title {
		t.Errorf("title of 200 characters stored as %d characters", len([]rune(s.Title)))
	}
	var got chatapi.SessionView
	decodeStatus(t, e.do(t, http.MethodPatch, "/chat/sessions/"+s.ID, e.alice, `{"title":"`+strings.Repeat("z", 200)+`"}`), http.StatusOK, &got)

	content := strings.Repeat("用", 16_000)
	cmid := strings.Repeat("k", 256)
	var ex chatapi.ExchangeView
	decodeStatus(t, e.send(t, e.alice, s.ID, content, cmid), http.StatusCreated, &ex)
	if ex.User.Content != content || ex.User.ClientMessageID != cmid {
		t.Errorf("sent %d characters with id of %d bytes; stored %d characters, id %q", 16_000, 256, len([]rune(ex.User.Content)), ex.User.ClientMessageID)
	}
	// No body at all creates a session without a title (every field is optional).
	var untitled chatapi.SessionView
	decodeStatus(t, e.do(t, http.MethodPost, "/chat/sessions", e.alice, ""), http.StatusCreated, &untitled)
	if untitled.Title != "" || untitled.ID == "" {
		t.Errorf("session created without a body = %+v, want an id and no title", untitled)
	}

	// Omitted, the client message id is made by the server.
	decodeStatus(t, e.do(t, http.MethodPost, "/chat/sessions/"+s.ID+"/messages", e.alice, `{"content":"no id"}`), http.StatusCreated, &ex)
	if uuid.Validate(ex.User.ClientMessageID) != nil {
		t.Errorf("server-made client_message_id %q is not a UUID", ex.User.ClientMessageID)
	}

	for _, p := range []string{
		"/chat/sessions?limit=100&include_archived=false",
		"/chat/sessions?limit=1&include_archived=1",
		"/chat/sessions/" + s.ID + "/messages?after=9007199254740992&limit=200&wait=0",
		"/chat/sessions/" + s.ID + "/messages?after=0&limit=1",
		"/me/insights?layer=7&include_invalidated=true",
		"/me/insights?layer=0",
	} {
		if r := e.do(t, http.MethodGet, p, e.alice, ""); r.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, r.Status, r.Body)
		}
	}
}
