package chatapp_test

// These tests serve the whole chat function (httpapp.App, its server, chatapp.Mount) over a
// fresh Postgres database, with the real provider adapters pointed at local wire servers
// (llmtest) so the exact requests a model receives can be read, and the app's log captured. They
// follow the creator step-up from the HTTP request to every place the key could end up.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/chatapp"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/anthropic"
	"github.com/helixhq/helix/shared/llm/gemini"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/openaicompat"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/stepup"
	"github.com/helixhq/helix/shared/synthesis"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

const (
	phrase      = "THANOS_MODE"
	stepUpKey   = "Quartz-Lantern-58-Vermilion"
	creatorUser = "creator-7f3a"
	maxFailures = 3

	deepSeekKey, geminiKey, anthropicKey = "ds-key", "gm-key", "an-key"
)

var tokens = apitest.Tokens{
	Secret:   "chatapp-stepup-test-secret-0123456789abcdef",
	Issuer:   "https://auth.helix.test/chatapp",
	Audience: "helix-chatapp-test",
}

// syncBuffer collects the app's log lines; handlers log from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type nopQueue struct{}

func (nopQueue) Enqueue(context.Context, synthesis.Job) error { return nil }

// env is the chat function served over HTTP on its own database.
type env struct {
	url                      string
	pool                     *pgxpool.Pool
	log                      *syncBuffer
	deepSeek, gemini, claude *llmtest.Server
	responses                []string // every response body the test received
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with more settings (they win over the step-up ones).
func newEnvWith(t *testing.T, extra map[string]string) *env {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(stepUpKey), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{pool: pg.NewPool(t), log: &syncBuffer{},
		deepSeek: llmtest.NewOpenAI(t), gemini: llmtest.NewGemini(t), claude: llmtest.NewAnthropic(t)}
	e.deepSeek.RequireAPIKey(deepSeekKey)
	e.gemini.RequireAPIKey(geminiKey)
	e.claude.RequireAPIKey(anthropicKey)
	e.deepSeek.SetDefault(llmtest.OK("Happy to help."))
	// Everything, debug lines included: the key must be in none of them.
	logger := slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	settings := map[string]string{
		"HELIX_STEPUP_PHRASE":       phrase,
		"HELIX_STEPUP_KEY_HASH":     string(hash),
		"HELIX_CREATOR_USER_ID":     creatorUser,
		"HELIX_STEPUP_MAX_FAILURES": fmt.Sprint(maxFailures),
	}
	maps.Copy(settings, extra)
	a := apitest.NewAppEnv(t, tokens, settings, e.pool, logger)
	gp, err := gemini.New(context.Background(), gemini.Config{BaseURL: e.gemini.URL, APIKey: geminiKey})
	if err != nil {
		t.Fatal(err)
	}
	reg := llm.NewRegistry(
		openaicompat.New(openaicompat.Config{Name: "deepseek", BaseURL: e.deepSeek.URL, APIKey: deepSeekKey}),
		gp,
		anthropic.New(anthropic.Config{BaseURL: e.claude.URL, APIKey: anthropicKey}),
	)
	srv := a.NewServer(chatapp.MaintenanceExempt...)
	notifier := chatapp.Mount(a, srv, reg, nopQueue{})
	t.Cleanup(notifier.Close)
	e.url = apitest.Serve(t, srv)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("app log:\n%s", e.log.String())
		}
	})
	return e
}

func token(t *testing.T, user string) string { return tokens.Token(t, user, nil) }

func (e *env) do(t *testing.T, method, path, user, body string) apitest.Response {
	t.Helper()
	res := apitest.SendJSON(t, apitest.NewRequest(t, method, e.url+path, token(t, user), apitest.Body(body)))
	e.responses = append(e.responses, string(res.Body))
	return res
}

func (e *env) createSession(t *testing.T, user string) string {
	t.Helper()
	res := e.do(t, http.MethodPost, "/chat/sessions", user, `{"title":"Step-up"}`)
	res.WantStatus(t, http.StatusCreated)
	var s struct{ ID string }
	res.Decode(t, &s)
	return s.ID
}

type messageView struct {
	Seq             int64  `json:"seq"`
	Role            string `json:"role"`
	Content         string `json:"content"`
	ClientMessageID string `json:"client_message_id"`
	Model           string `json:"model"`
	ReplyToSeq      int64  `json:"reply_to_seq"`
}

type exchange struct {
	User      messageView `json:"user"`
	Assistant messageView `json:"assistant"`
	Replayed  bool        `json:"replayed"`
}

// send posts a message and returns the exchange (the status must be 201).
func (e *env) send(t *testing.T, user, session, content string) exchange {
	t.Helper()
	body, err := json.Marshal(map[string]string{"content": content, "client_message_id": uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	res := e.do(t, http.MethodPost, "/chat/sessions/"+session+"/messages", user, string(body))
	res.WantStatus(t, http.StatusCreated)
	var ex exchange
	res.Decode(t, &ex)
	return ex
}

func (e *env) messages(t *testing.T, user, session string) []messageView {
	t.Helper()
	res := e.do(t, http.MethodGet, "/chat/sessions/"+session+"/messages", user, "")
	res.WantStatus(t, http.StatusOK)
	var page struct{ Messages []messageView }
	res.Decode(t, &page)
	return page.Messages
}

func (e *env) modelRequests() []llmtest.Request {
	var all []llmtest.Request
	for _, s := range []*llmtest.Server{e.deepSeek, e.gemini, e.claude} {
		all = append(all, s.Requests()...)
	}
	return all
}

type chatMessage struct{ Role, Content string }

// lastChat is the messages of the last request the DeepSeek server received (OpenAI wire).
func (e *env) lastChat(t *testing.T) []chatMessage {
	t.Helper()
	reqs := e.deepSeek.Requests()
	if len(reqs) == 0 {
		t.Fatal("the model received no request")
	}
	var body struct{ Messages []chatMessage }
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &body); err != nil {
		t.Fatalf("model request body: %v", err)
	}
	if len(body.Messages) == 0 || body.Messages[0].Role != "system" {
		t.Fatalf("model request messages %+v, want a system prompt first", body.Messages)
	}
	return body.Messages
}

// tablesHolding returns the tables (schema.table) with a row whose text form holds s, or whose
// bytea columns hold its bytes, across every table of the database; scanned counts the tables.
func tablesHolding(t *testing.T, pool *pgxpool.Pool, s string) (found []string, scanned int) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `
		SELECT table_schema, table_name FROM information_schema.tables
		 WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
		 ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	type table struct{ schema, name string }
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var tb table
		return tb, r.Scan(&tb.schema, &tb.name)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		id := pgx.Identifier{tb.schema, tb.name}.Sanitize()
		// A row's text form has every column: text, jsonb, arrays, and bytea as \x<hex>.
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+id+` t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0`,
			s, hex.EncodeToString([]byte(s))).Scan(&n); err != nil {
			t.Fatalf("scan %s: %v", id, err)
		}
		if n > 0 {
			found = append(found, tb.schema+"."+tb.name)
		}
	}
	return found, len(tables)
}

// wantNowhere checks secret is in no table, log line, model request (body, headers, path) or
// response the test received.
func (e *env) wantNowhere(t *testing.T, secret string) {
	t.Helper()
	found, scanned := tablesHolding(t, e.pool, secret)
	if scanned < 10 {
		t.Fatalf("scanned %d tables: the scan is not reading the schema", scanned)
	}
	if len(found) > 0 {
		t.Errorf("%q is stored in %v", secret, found)
	}
	if strings.Contains(e.log.String(), secret) {
		t.Errorf("%q is in the log", secret)
	}
	for i, r := range e.modelRequests() {
		head, _ := json.Marshal(r.Header)
		if strings.Contains(string(r.Body), secret) || strings.Contains(string(head), secret) || strings.Contains(r.Path, secret) {
			t.Errorf("%q is in model request %d: %s %s", secret, i, r.Path, r.Body)
		}
	}
	for i, body := range e.responses {
		if strings.Contains(body, secret) {
			t.Errorf("%q is in response %d: %s", secret, i, body)
		}
	}
}

type attemptRow struct {
	User, Conversation string
	Success, Locked    bool
}

func (e *env) attempts(t *testing.T) []attemptRow {
	t.Helper()
	rows, err := e.pool.Query(context.Background(),
		`SELECT user_id, COALESCE(conversation_id::text, ''), success, locked FROM stepup_attempts ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (attemptRow, error) {
		var a attemptRow
		return a, r.Scan(&a.User, &a.Conversation, &a.Success, &a.Locked)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) steppedUpUntil(t *testing.T, session string) *time.Time {
	t.Helper()
	var until *time.Time
	if err := e.pool.QueryRow(context.Background(),
		`SELECT stepped_up_until FROM conversations WHERE conversation_id = $1`, session).Scan(&until); err != nil {
		t.Fatal(err)
	}
	return until
}

// wantStepUpPair checks a step-up exchange: the message redacted, Helix's own answer, no model.
func wantStepUpPair(t *testing.T, ex exchange, answer string) {
	t.Helper()
	if ex.User.Role != "user" || ex.User.Content != stepup.Redacted {
		t.Errorf("user message %+v, want content %q", ex.User, stepup.Redacted)
	}
	if ex.Assistant.Role != "assistant" || ex.Assistant.Content != answer || ex.Assistant.Model != "" ||
		ex.Assistant.ReplyToSeq != ex.User.Seq {
		t.Errorf("reply %+v, want %q from no model, replying to %d", ex.Assistant, answer, ex.User.Seq)
	}
}

// TestCreatorStepUp: the creator's "<PHRASE> <key>" verifies the step-up in the session: the
// message is stored and shown redacted, answered by Helix without a model, recorded as a
// successful attempt, and the session's later replies are made with a system prompt that says
// the creator verified it. The key is in no table, log line, model request or response.
func TestCreatorStepUp(t *testing.T) {
	e := newEnv(t)
	session := e.createSession(t, creatorUser)

	ex := e.send(t, creatorUser, session, phrase+" "+stepUpKey)
	wantStepUpPair(t, ex, stepup.Answer(stepup.Verified))
	if n := len(e.modelRequests()); n != 0 {
		t.Errorf("the model received %d requests for the step-up message, want 0", n)
	}
	until := e.steppedUpUntil(t, session)
	if until == nil || !until.After(time.Now().Add(50*time.Minute)) {
		t.Errorf("stepped_up_until = %v, want about an hour from now", until)
	}
	if got, want := e.attempts(t), []attemptRow{{User: creatorUser, Conversation: session, Success: true}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stepup_attempts %+v, want %+v", got, want)
	}

	msgs := e.messages(t, creatorUser, session)
	if len(msgs) != 2 || msgs[0].Content != stepup.Redacted || msgs[1].Content != stepup.Answer(stepup.Verified) {
		t.Errorf("messages %+v, want the redacted message and the answer", msgs)
	}

	// The next message is answered by the model, with the verified step-up in its prompt and the
	// redacted turn in its history.
	e.send(t, creatorUser, session, "What can you do for me today?")
	chat := e.lastChat(t)
	if sys := chat[0].Content; !strings.Contains(sys, "trust level is 1.00") || !strings.Contains(sys, "has verified it in this conversation") {
		t.Errorf("system prompt after the step-up:\n%s", sys)
	}
	wantHistory := []chatMessage{{"user", stepup.Redacted}, {"assistant", stepup.Answer(stepup.Verified)}, {"user", "What can you do for me today?"}}
	if fmt.Sprint(chat[1:]) != fmt.Sprint(wantHistory) {
		t.Errorf("messages after the system prompt %+v, want %+v", chat[1:], wantHistory)
	}

	// The log was captured: the attempt is in it (without the key, checked below).
	if log := e.log.String(); !strings.Contains(log, `"msg":"step-up attempt"`) || !strings.Contains(log, `"user":"`+creatorUser+`"`) {
		t.Errorf("the step-up attempt is not in the log")
	}
	// The scan finds what is stored: the redacted text is.
	if found, _ := tablesHolding(t, e.pool, stepup.Redacted); fmt.Sprint(found) != "[public.session_messages]" {
		t.Errorf("the redacted text is stored in %v, want [public.session_messages]", found)
	}
	e.wantNowhere(t, stepUpKey)
}

// TestStepUpLockout: wrong keys fail; after HELIX_STEPUP_MAX_FAILURES of them even the right key
// is refused with the lockout answer; every attempt is recorded, none verifies the session, and
// neither the right key nor the wrong ones are stored, logged or sent to a model.
func TestStepUpLockout(t *testing.T) {
	e := newEnv(t)
	session := e.createSession(t, creatorUser)
	var wrong []string
	for i := range maxFailures {
		k := fmt.Sprintf("Wrong-Guess-%d-Pelican", i)
		wrong = append(wrong, k)
		wantStepUpPair(t, e.send(t, creatorUser, session, phrase+" "+k), stepup.Answer(stepup.Failed))
	}
	wantStepUpPair(t, e.send(t, creatorUser, session, phrase+" "+stepUpKey), stepup.Answer(stepup.Locked))

	want := []attemptRow{
		{User: creatorUser, Conversation: session}, {User: creatorUser, Conversation: session},
		{User: creatorUser, Conversation: session}, {User: creatorUser, Conversation: session, Locked: true},
	}
	if got := e.attempts(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stepup_attempts %+v, want %+v", got, want)
	}
	// Every attempt is in the audit log, in order (and from there in #helix-alerts).
	var results []string
	rows, err := e.pool.Query(context.Background(), `SELECT actor, payload::jsonb->>'result' FROM audit_pending WHERE kind = 'stepup' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var actor, result string
		if err := rows.Scan(&actor, &result); err != nil {
			t.Fatal(err)
		}
		results = append(results, actor+":"+result)
	}
	rows.Close()
	if got, want := strings.Join(results, " "), strings.Repeat(creatorUser+":failed ", 3)+creatorUser+":locked"; got != want {
		t.Errorf("audited step-ups %q, want %q", got, want)
	}
	if until := e.steppedUpUntil(t, session); until != nil {
		t.Errorf("stepped_up_until = %v after a lockout, want none", until)
	}
	if n := len(e.modelRequests()); n != 0 {
		t.Errorf("the model received %d requests, want 0", n)
	}
	for _, m := range e.messages(t, creatorUser, session) {
		if m.Role == "user" && m.Content != stepup.Redacted {
			t.Errorf("stored user message %q, want it redacted", m.Content)
		}
	}

	// Not stepped up: the creator's next reply says creator, not verified.
	e.send(t, creatorUser, session, "Hello again")
	if sys := e.lastChat(t)[0].Content; !strings.Contains(sys, "The user is the deployment's creator.") || strings.Contains(sys, "verified") {
		t.Errorf("system prompt after a lockout:\n%s", sys)
	}
	e.wantNowhere(t, stepUpKey)
	for _, k := range wrong {
		e.wantNowhere(t, k)
	}
}

// TestStepUpByAnotherUser: a user who is not the creator sending the phrase and the right key
// gets no step-up; the message is still redacted and answered without a model, so the key is
// not stored or sent for them either, and the attempt is recorded as theirs.
func TestStepUpByAnotherUser(t *testing.T) {
	e := newEnv(t)
	session := e.createSession(t, "bob")
	wantStepUpPair(t, e.send(t, "bob", session, phrase+" "+stepUpKey), stepup.Answer(stepup.Failed))
	if got, want := e.attempts(t), []attemptRow{{User: "bob", Conversation: session}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stepup_attempts %+v, want %+v", got, want)
	}
	if until := e.steppedUpUntil(t, session); until != nil {
		t.Errorf("stepped_up_until = %v for another user, want none", until)
	}
	if n := len(e.modelRequests()); n != 0 {
		t.Errorf("the model received %d requests, want 0", n)
	}
	e.send(t, "bob", session, "Hi")
	if sys := e.lastChat(t)[0].Content; strings.Contains(sys, "creator") || !strings.Contains(sys, "trust level is 0.50") {
		t.Errorf("system prompt of another user after the phrase:\n%s", sys)
	}
	e.wantNowhere(t, stepUpKey)
}

// TestSendEdgeChecks: what the HTTP edge refuses before the chat service sees a message.
func TestSendEdgeChecks(t *testing.T) {
	e := newEnv(t)
	session := e.createSession(t, "alice")
	for _, tt := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"NUL in content", `{"content":"a\u0000b"}`, http.StatusBadRequest, "invalid_field"},
		{"empty content", `{"content":""}`, http.StatusBadRequest, "missing_field"},
		{"control character in client_message_id", `{"content":"hi","client_message_id":"a\u0001b"}`, http.StatusBadRequest, "invalid_field"},
		{"client_message_id too long", `{"content":"hi","client_message_id":"` + strings.Repeat("x", 257) + `"}`, http.StatusBadRequest, "invalid_field"},
		{"unknown field", `{"content":"hi","contnet":"x"}`, http.StatusBadRequest, "unknown_field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(t, http.MethodPost, "/chat/sessions/"+session+"/messages", "alice", tt.body)
			if b := res.WantErrorBody(t, tt.status); b.Error.Code != tt.code {
				t.Errorf("code %q, want %q", b.Error.Code, tt.code)
			}
		})
	}
	if msgs := e.messages(t, "alice", session); len(msgs) != 0 {
		t.Errorf("messages stored by refused sends: %+v", msgs)
	}
}

// TestSummaryInPrompt: once a conversation has a summary (synthesis wrote it through seq 4),
// every later reply's system prompt carries it, since the history sent never reaches back past
// the summary's end: the summary is the model's only knowledge of those turns.
func TestSummaryInPrompt(t *testing.T) {
	const summary = "Alice is planning a trip to Lisbon with her sister Ana; they land on May 3rd."
	// setUp sends two exchanges and writes the summary synthesis would write over them.
	setUp := func(t *testing.T, e *env) string {
		session := e.createSession(t, "alice")
		e.send(t, "alice", session, "I'm planning a trip to Lisbon with my sister Ana.")
		e.send(t, "alice", session, "We land on May 3rd.")
		if _, err := e.pool.Exec(context.Background(),
			`UPDATE conversations SET summary = $2, summary_through_seq = 4 WHERE conversation_id = $1`, session, summary); err != nil {
			t.Fatal(err)
		}
		return session
	}
	sent := func(chat []chatMessage) string {
		var out []string
		for _, m := range chat[1:] {
			out = append(out, m.Content)
		}
		return strings.Join(out, "\n")
	}

	t.Run("every turn fits: sent word for word, no summary needed", func(t *testing.T) {
		e := newEnv(t)
		session := setUp(t, e)
		e.send(t, "alice", session, "What should we pack?")
		chat := e.lastChat(t)
		if !strings.Contains(sent(chat), "Lisbon") {
			t.Errorf("the summarized turns were left out though they fit: %q", sent(chat))
		}
		if strings.Contains(chat[0].Content, summary) {
			t.Error("the summary was sent alongside every turn it covers")
		}
	})
	t.Run("older turns left out: the summary stands in for them", func(t *testing.T) {
		e := newEnvWith(t, map[string]string{"HELIX_CHAT_HISTORY_TOKENS": "500"})
		session := setUp(t, e)
		long := strings.Repeat("Packing lists are long. ", 25) // 600 bytes: over the budget alone
		e.send(t, "alice", session, long)                      // the first four turns still fit behind it
		for i := range 2 {
			e.send(t, "alice", session, long) // now the long turn before it fills the budget
			chat := e.lastChat(t)
			if strings.Contains(sent(chat), "Lisbon") {
				t.Fatalf("reply %d: the budget of 500 bytes still sent the first turn: %q", i+1, sent(chat))
			}
			if !strings.Contains(chat[0].Content, summary) {
				t.Errorf("reply %d: older turns left out and the system prompt lacks the summary", i+1)
			}
		}
	})
}
