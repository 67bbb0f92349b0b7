package main

// These tests push the sample events in events/chat through the function exactly as the Lambda
// runtime would: the JSON payload goes to lambda.NewHandler(...).Invoke, the handler runs against
// a fresh, migrated and seeded Postgres database, and the returned JSON is read back as an
// API Gateway v2 response. Replies come from the offline model; synthesis jobs go to a fake
// queue that records them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/lambdaio"
	"github.com/helixhq/helix/shared/lambdatest"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/offline"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/synthesis"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// fn is the chat function as these tests see it: its sample events and SAM resource, and the
// tokens its configuration trusts when no API Gateway authorizer vouched for the caller.
var fn = lambdatest.Function{
	Events:   "../../events/chat",
	Template: "../../template.yaml",
	Resource: "ChatFunction",
	Tokens: apitest.Tokens{
		Secret:   "chat-lambda-test-secret-0123456789abcdef",
		Issuer:   "https://auth.example.com/",
		Audience: "helix-api",
	},
}

// The function's routes; every one needs a sample event and a route in template.yaml.
var wantRoutes = []string{
	"DELETE /chat/sessions/{id}",
	"DELETE /me/insights/{id}",
	"DELETE /me/memory",
	"GET /chat/sessions",
	"GET /chat/sessions/{id}",
	"GET /chat/sessions/{id}/messages",
	"GET /me/insights",
	"GET /me/memory/export",
	"PATCH /chat/sessions/{id}",
	"POST /chat/sessions",
	"POST /chat/sessions/{id}/messages",
}

// TestEventFiles checks the sample events are the v2 events API Gateway sends for this
// function's routes, one per route, and that template.yaml routes the same set here.
func TestEventFiles(t *testing.T) {
	fn.CheckEventFiles(t, wantRoutes)
}

// fakeQueue is the synthesis queue of these tests: it records the jobs it is given.
type fakeQueue struct {
	mu   sync.Mutex
	jobs []synthesis.Job
}

var _ synthesis.Queue = (*fakeQueue)(nil)

func (q *fakeQueue) Enqueue(_ context.Context, j synthesis.Job) error {
	if err := j.Validate(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, j)
	return nil
}

func (q *fakeQueue) Jobs() []synthesis.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]synthesis.Job(nil), q.jobs...)
}

// env is one handler over one fresh database, for tests that send several events in a row.
type env struct {
	base  *httpapp.App
	h     lambda.Handler
	queue *fakeQueue
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := fn.NewApp(t, pg.NewPool(t))
	// Every provider answers from the offline model: these tests exercise the Lambda adapter and
	// the routes, not the providers (the pipeline's own tests cover those).
	providers := llm.NewRegistry().WithOfflineFallback(offline.New(), true)
	q := &fakeQueue{}
	handler, notifier := newHandler(base, providers, q)
	t.Cleanup(notifier.Close)
	return &env{base: base, h: lambda.NewHandler(lambdaio.HTTPHandler(handler, base.Log)), queue: q}
}

// send invokes the handler with a sample event, changed by edit when edit is not nil.
func (e *env) send(t *testing.T, name string, edit func(*events.APIGatewayV2HTTPRequest)) events.APIGatewayV2HTTPResponse {
	t.Helper()
	var payload []byte
	if edit == nil {
		payload, _ = fn.Load(t, name)
	} else {
		payload = fn.Modified(t, name, edit)
	}
	return lambdatest.Invoke(t, e.h, payload)
}

// createSession stores a session for user with id, as the chat function would have.
func (e *env) createSession(t *testing.T, user, id, title string) {
	t.Helper()
	if _, err := e.base.Pool.Exec(t.Context(),
		`INSERT INTO conversations (conversation_id, user_id, title) VALUES ($1, $2, $3)`, id, user, title); err != nil {
		t.Fatalf("create session %s: %v", id, err)
	}
}

// sessionRow reads what the database holds of a session (found false when there is none).
func (e *env) sessionRow(t *testing.T, id string) (user, title string, archived bool, lastSeq int64, found bool) {
	t.Helper()
	err := e.base.Pool.QueryRow(t.Context(),
		`SELECT user_id, title, archived, last_seq FROM conversations WHERE conversation_id = $1`, id).
		Scan(&user, &title, &archived, &lastSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, 0, false
	}
	if err != nil {
		t.Fatalf("read session %s: %v", id, err)
	}
	return user, title, archived, lastSeq, true
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.base.Pool.QueryRow(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// eventOf returns the sample event's user (the sub claim) and path id ("" when it has none).
func eventOf(t *testing.T, name string) (user, id string) {
	t.Helper()
	_, ev := fn.Load(t, name)
	return ev.RequestContext.Authorizer.JWT.Claims["sub"], ev.PathParameters["id"]
}

func asUser(sub string) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.Authorizer.JWT.Claims["sub"] = sub }
}

// objects returns body[key] as an array of objects.
func objects(t *testing.T, body map[string]any, key string) []map[string]any {
	t.Helper()
	list, ok := body[key].([]any)
	if !ok {
		t.Fatalf("%s is not an array: %v", key, body)
	}
	out := make([]map[string]any, 0, len(list))
	for _, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s holds %v, not an object", key, v)
		}
		out = append(out, m)
	}
	return out
}

// wantTime checks body[key] is an RFC 3339 time within a minute of now.
func wantTime(t *testing.T, body map[string]any, key string) {
	t.Helper()
	at, err := time.Parse(time.RFC3339, lambdatest.Field(t, body, key))
	if err != nil {
		t.Errorf("%s is not RFC 3339: %v", key, err)
	} else if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Errorf("%s = %s, not now", key, at)
	}
}

// wantSession checks a session as the API shows it.
func wantSession(t *testing.T, s map[string]any, want map[string]string) {
	t.Helper()
	lambdatest.WantFields(t, s, want)
	for _, k := range []string{"created_at", "updated_at", "last_activity_at"} {
		wantTime(t, s, k)
	}
}

// wantNoContent checks an empty 204 answer.
func wantNoContent(t *testing.T, resp events.APIGatewayV2HTTPResponse) {
	t.Helper()
	if resp.StatusCode != 204 || resp.Body != "" {
		t.Fatalf("status %d, body %q; want 204 and no body", resp.StatusCode, resp.Body)
	}
}

// sample is what one sample event must do.
type sample struct {
	status int // 0: 200
	// setup prepares the database for the event's user and path id.
	setup func(t *testing.T, e *env, user, id string)
	// check reads the answer (body is nil for a 204).
	check func(t *testing.T, e *env, user, id string, resp events.APIGatewayV2HTTPResponse, body map[string]any)
}

// withSession is a setup that stores the event's session, titled "Trip planning".
func withSession(t *testing.T, e *env, user, id string) {
	e.createSession(t, user, id, "Trip planning")
}

func sampleChecks() map[string]sample {
	return map[string]sample{
		"post-chat-sessions.json": {status: 201, check: func(t *testing.T, e *env, user, _ string, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			wantSession(t, body, map[string]string{"title": "Trip planning", "archived": "false", "last_seq": "0"})
			id := lambdatest.Field(t, body, "id")
			if uuid.Validate(id) != nil {
				t.Fatalf("id %q is not a UUID", id)
			}
			if owner, title, _, _, found := e.sessionRow(t, id); !found || owner != user || title != "Trip planning" {
				t.Errorf("stored session: found %v, user %q, title %q; want %s's \"Trip planning\"", found, owner, title, user)
			}
		}},
		"get-chat-sessions.json": {
			// The event names no session: store one to list.
			setup: func(t *testing.T, e *env, user, _ string) { withSession(t, e, user, sampleSession) },
			check: func(t *testing.T, e *env, user, _ string, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
				sessions := objects(t, body, "sessions")
				if len(sessions) != 1 {
					t.Fatalf("%d sessions, want the one stored: %v", len(sessions), body)
				}
				wantSession(t, sessions[0], map[string]string{"id": sampleSession, "title": "Trip planning", "archived": "false", "last_seq": "0"})
				if c, ok := body["next_cursor"]; ok {
					t.Errorf("next_cursor %v on the only page", c)
				}
			},
		},
		"get-chat-session.json": {
			setup: withSession,
			check: func(t *testing.T, _ *env, _, id string, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
				wantSession(t, body, map[string]string{"id": id, "title": "Trip planning", "archived": "false", "last_seq": "0"})
			},
		},
		"patch-chat-session.json": {
			setup: withSession,
			check: func(t *testing.T, e *env, _, id string, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
				wantSession(t, body, map[string]string{"id": id, "title": "Renamed", "archived": "true", "last_seq": "0"})
				if _, title, archived, _, _ := e.sessionRow(t, id); title != "Renamed" || !archived {
					t.Errorf("stored title %q, archived %v; want Renamed, true", title, archived)
				}
			},
		},
		"delete-chat-session.json": {
			status: 204,
			setup:  withSession,
			check: func(t *testing.T, e *env, _, id string, _ events.APIGatewayV2HTTPResponse, _ map[string]any) {
				if _, _, _, _, found := e.sessionRow(t, id); found {
					t.Errorf("session %s is still stored", id)
				}
			},
		},
		"post-chat-session-messages.json": {status: 201, setup: withSession, check: checkSend},
		"get-chat-session-messages.json": {
			setup: func(t *testing.T, e *env, user, id string) {
				withSession(t, e, user, id)
				if _, err := e.base.Pool.Exec(t.Context(), `
					INSERT INTO session_messages (conversation_id, seq, role, content, client_message_id, reply_to_seq, model_used)
					VALUES ($1, 1, 'user', 'Hello, Helix!', 'c-1', NULL, NULL),
					       ($1, 2, 'assistant', 'Hello! How can I help?', NULL, 1, 'deepseek')`, id); err != nil {
					t.Fatal(err)
				}
				if _, err := e.base.Pool.Exec(t.Context(), `UPDATE conversations SET last_seq = 2 WHERE conversation_id = $1`, id); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, _ *env, _, _ string, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
				lambdatest.WantFields(t, body, map[string]string{"last_seq": "2"})
				msgs := objects(t, body, "messages")
				if len(msgs) != 2 {
					t.Fatalf("%d messages, want the 2 stored: %v", len(msgs), body)
				}
				lambdatest.WantFields(t, msgs[0], map[string]string{"seq": "1", "role": "user", "content": "Hello, Helix!", "client_message_id": "c-1"})
				lambdatest.WantFields(t, msgs[1], map[string]string{"seq": "2", "role": "assistant", "reply_to_seq": "1", "model": "deepseek"})
			},
		},
		"get-me-insights.json": {check: func(t *testing.T, _ *env, _, _ string, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			if l := objects(t, body, "insights"); len(l) != 0 {
				t.Errorf("insights %v, want none", l)
			}
		}},
		"delete-me-insight.json": {
			status: 204,
			setup: func(t *testing.T, e *env, user, id string) {
				if _, err := e.base.Pool.Exec(t.Context(), `
					INSERT INTO conversation_insights (insight_id, user_id, layer, layer_name, text, confidence, valid_from, last_reinforced_at)
					VALUES ($1, $2, 4, $3, 'Plans a trip to Lisbon in May', 0.8, now(), now())`,
					id, user, memory.ProspectiveSelf.Name()); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, e *env, _, id string, _ events.APIGatewayV2HTTPResponse, _ map[string]any) {
				if n := e.count(t, `SELECT count(*) FROM conversation_insights WHERE insight_id = $1`, id); n != 0 {
					t.Errorf("insight %s is still stored", id)
				}
			},
		},
		"delete-me-memory.json": {check: func(t *testing.T, _ *env, _, _ string, _ events.APIGatewayV2HTTPResponse, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"deleted_insights": "0"})
		}},
		"get-me-memory-export.json": {check: func(t *testing.T, _ *env, user, _ string, resp events.APIGatewayV2HTTPResponse, body map[string]any) {
			lambdatest.WantFields(t, body, map[string]string{"user_id": user})
			wantTime(t, body, "exported_at")
			if l := objects(t, body, "insights"); len(l) != 0 {
				t.Errorf("exported insights %v, want none", l)
			}
			if cd := resp.Headers["Content-Disposition"]; !strings.HasPrefix(cd, "attachment") {
				t.Errorf("Content-Disposition = %q, want an attachment", cd)
			}
		}},
	}
}

// sampleSession is the session id in the sample events' paths.
const sampleSession = "3f8a2b1c-5d6e-4f70-8a9b-0c1d2e3f4a5b"

// TestSampleEvents invokes the function with every sample event, unchanged, each on a fresh
// database prepared for it.
func TestSampleEvents(t *testing.T) {
	checks := sampleChecks()
	for _, name := range fn.EventFiles(t) {
		t.Run(name, func(t *testing.T) {
			s, ok := checks[name]
			if !ok {
				t.Fatalf("no check for %s: add one", name)
			}
			e := newEnv(t)
			user, id := eventOf(t, name)
			if s.setup != nil {
				s.setup(t, e, user, id)
			}
			resp := e.send(t, name, nil)
			if resp.Headers["X-Request-Id"] == "" {
				t.Errorf("no X-Request-Id header")
			}
			status := s.status
			if status == 0 {
				status = 200
			}
			var body map[string]any
			if status == 204 {
				wantNoContent(t, resp)
			} else {
				body = lambdatest.JSONBody(t, resp, status)
			}
			s.check(t, e, user, id, resp, body)
		})
	}
}

// checkSend checks the answer to the send sample: the user message stored as seq 1, the offline
// model's reply as seq 2, the call logged as chat_message with its budget hold settled, and no
// synthesis job yet (one user message; a job needs HELIX_SYNTHESIZE_EVERY, 5).
func checkSend(t *testing.T, e *env, user, id string, resp events.APIGatewayV2HTTPResponse, body map[string]any) {
	t.Helper()
	requestID := resp.Headers["X-Request-Id"]
	lambdatest.WantFields(t, body, map[string]string{
		"replayed":               "false",
		"user.seq":               "1",
		"user.role":              "user",
		"user.content":           "Hello, Helix!",
		"user.client_message_id": "6c5c3d8e-6f5a-4c7e-9d55-1b2f3c4d5e6f",
		"assistant.seq":          "2",
		"assistant.role":         "assistant",
		"assistant.reply_to_seq": "1",
		"assistant.model":        "deepseek", // chat_message's primary model, answered offline
		"assistant.cost_usd":     "0",
		"assistant.request_id":   requestID,
	})
	if reply := lambdatest.Field(t, body, "assistant.content"); !strings.HasPrefix(reply, offline.Prefix) {
		t.Errorf("assistant.content = %q, want the offline model's answer (%s ...)", reply, offline.Prefix)
	}
	if got := resp.Headers["X-Helix-Cost-Usd"]; got != "0" {
		t.Errorf("X-Helix-Cost-Usd = %q, want 0", got)
	}
	if owner, _, _, lastSeq, _ := e.sessionRow(t, id); owner != user || lastSeq != 2 {
		t.Errorf("session of %q with last_seq %d, want %s's with 2", owner, lastSeq, user)
	}
	if n := e.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1`, id); n != 2 {
		t.Errorf("%d stored messages, want 2", n)
	}
	var op string
	var ok bool
	var status string
	if err := e.base.Pool.QueryRow(t.Context(), `
		SELECT l.operation_id, l.success, r.status
		  FROM ai_operation_log l JOIN budget_reservations r USING (request_id)
		 WHERE l.request_id = $1`, requestID).Scan(&op, &ok, &status); err != nil {
		t.Fatalf("operation log and reservation of %s: %v", requestID, err)
	}
	if op != "chat_message" || !ok || status != "settled" {
		t.Errorf("logged %s, success %v, reservation %s; want chat_message, true, settled", op, ok, status)
	}
	if jobs := e.queue.Jobs(); len(jobs) != 0 {
		t.Errorf("synthesis jobs %v after one message, want none", jobs)
	}
}

// TestResendIsReplayed: the send sample sent again (same client_message_id) answers 200 with
// the original pair, replayed, and stores and charges nothing new.
func TestResendIsReplayed(t *testing.T) {
	e := newEnv(t)
	const send = "post-chat-session-messages.json"
	user, id := eventOf(t, send)
	e.createSession(t, user, id, "Trip planning")
	first := lambdatest.JSONBody(t, e.send(t, send, nil), 201)
	again := lambdatest.JSONBody(t, e.send(t, send, nil), 200)
	lambdatest.WantFields(t, again, map[string]string{
		"replayed":             "true",
		"user.seq":             "1",
		"assistant.seq":        "2",
		"assistant.content":    lambdatest.Field(t, first, "assistant.content"),
		"assistant.request_id": lambdatest.Field(t, first, "assistant.request_id"),
	})
	if n := e.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1`, id); n != 2 {
		t.Errorf("%d stored messages after a resend, want 2", n)
	}
	if n := e.count(t, `SELECT count(*) FROM ai_operation_log WHERE user_id = $1`, user); n != 1 {
		t.Errorf("%d model calls logged after a resend, want 1", n)
	}
}

// TestFifthMessageQueuesSynthesis: with the default HELIX_SYNTHESIZE_EVERY (5), the reply to the
// fifth user message queues one job for the session, through that reply (seq 10).
func TestFifthMessageQueuesSynthesis(t *testing.T) {
	e := newEnv(t)
	const send = "post-chat-session-messages.json"
	user, id := eventOf(t, send)
	e.createSession(t, user, id, "Trip planning")
	for i := range 5 {
		if jobs := e.queue.Jobs(); len(jobs) != 0 {
			t.Fatalf("synthesis jobs %v after %d messages, want none before the fifth", jobs, i)
		}
		b, err := json.Marshal(map[string]string{"content": fmt.Sprintf("Message %d", i+1), "client_message_id": uuid.NewString()})
		if err != nil {
			t.Fatal(err)
		}
		resp := e.send(t, send, func(ev *events.APIGatewayV2HTTPRequest) { ev.Body = string(b) })
		lambdatest.JSONBody(t, resp, 201)
	}
	want := synthesis.Job{ConversationID: id, UserID: user, ThroughSeq: 10}
	if jobs := e.queue.Jobs(); len(jobs) != 1 || jobs[0] != want {
		t.Errorf("synthesis jobs %v, want [%v]", jobs, want)
	}
}

// TestAnotherUsersSession: a session of one user is not found for anyone else, on every route
// that names a session, and nothing of it changes.
func TestAnotherUsersSession(t *testing.T) {
	e := newEnv(t)
	owner, id := eventOf(t, "get-chat-session.json")
	e.createSession(t, owner, id, "Trip planning")
	for _, name := range []string{
		"get-chat-session.json",
		"patch-chat-session.json",
		"delete-chat-session.json",
		"post-chat-session-messages.json",
		"get-chat-session-messages.json",
	} {
		t.Run(name, func(t *testing.T) {
			if _, evID := eventOf(t, name); evID != id {
				t.Fatalf("%s names session %s, want %s", name, evID, id)
			}
			body := lambdatest.JSONBody(t, e.send(t, name, asUser("someone-else")), 404)
			if code := lambdatest.ErrorCode(body); code != "not_found" {
				t.Errorf("error.code = %q, want not_found", code)
			}
		})
	}
	user, title, archived, lastSeq, found := e.sessionRow(t, id)
	if !found || user != owner || title != "Trip planning" || archived || lastSeq != 0 {
		t.Errorf("session after the other user's calls: found %v, user %q, title %q, archived %v, last_seq %d; want it unchanged",
			found, user, title, archived, lastSeq)
	}
	if n := e.count(t, `SELECT count(*) FROM session_messages WHERE conversation_id = $1`, id); n != 0 {
		t.Errorf("%d messages stored by the other user's send, want none", n)
	}
	// The owner still sees it.
	lambdatest.JSONBody(t, e.send(t, "get-chat-session.json", nil), 200)
}
