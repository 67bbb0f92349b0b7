package chatapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/chatapp"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/httpapi/chatapi"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/anthropic"
	"github.com/helixhq/helix/shared/llm/gemini"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/openaicompat"
	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/synthesis"
)

// ctTokens are the token settings of the server under test.
var ctTokens = apitest.Tokens{
	Secret:   "chatapi-integration-test-secret-0123456789abcdef",
	Issuer:   "https://auth.helix.test/chatapi",
	Audience: "helix-chatapi-test",
}

// The API keys the wire servers insist on.
const deepSeekKey, geminiKey, anthropicKey = "ds-key", "gm-key", "an-key"

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
	return slices.Clone(q.jobs)
}

// gatedProvider is the deepseek provider (chat_message's primary) with a gate in front: while a
// test holds it, every call reports on entered and waits for the release, so the test knows a
// reply is being produced and decides when it ends.
type gatedProvider struct {
	llm.Provider
	entered chan struct{}

	mu    sync.Mutex
	hold  chan struct{}
	pause chan struct{}
}

func (g *gatedProvider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	g.mu.Lock()
	hold := g.hold
	g.mu.Unlock()
	if hold != nil {
		g.entered <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
			return llm.Response{}, ctx.Err()
		}
	}
	return g.Provider.Complete(ctx, req)
}

// Stream is the provider's stream behind the same gate as Complete; while a test pauses streams
// (PauseAfterFirst), the stream stops after its first piece until the test resumes it or the
// call's context ends.
func (g *gatedProvider) Stream(ctx context.Context, req llm.Request) (llm.Stream, error) {
	g.mu.Lock()
	hold, pause := g.hold, g.pause
	g.mu.Unlock()
	if hold != nil {
		g.entered <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s, err := g.Provider.(llm.Streamer).Stream(ctx, req)
	if err != nil || pause == nil {
		return s, err
	}
	return &pausedStream{Stream: s, ctx: ctx, pause: pause}, nil
}

// pausedStream waits for its pause to end before the piece after its first.
type pausedStream struct {
	llm.Stream
	ctx   context.Context
	pause chan struct{}
	n     int
}

func (p *pausedStream) Next() (llm.Delta, error) {
	if p.n++; p.n == 2 {
		select {
		case <-p.pause:
		case <-p.ctx.Done():
			return llm.Delta{}, &llm.Error{Provider: "deepseek", Kind: llm.KindTimeout, Message: "the call ended while paused", Err: p.ctx.Err()}
		}
	}
	return p.Stream.Next()
}

// PauseAfterFirst makes streams opened from now on stop after their first piece until resume is
// called (once; also at the test's end).
func (g *gatedProvider) PauseAfterFirst(t *testing.T) (resume func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.pause = ch
	g.mu.Unlock()
	var once sync.Once
	resume = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(resume)
	return resume
}

// Hold makes model calls wait until release is called (once; also at the test's end).
func (g *gatedProvider) Hold(t *testing.T) (release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.hold = ch
	g.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			g.mu.Lock()
			g.hold = nil
			g.mu.Unlock()
			close(ch)
		})
	}
	t.Cleanup(release)
	return release
}

// waitEntered waits for a held call to reach the provider (a guard fails the test rather than
// hang it when none comes).
func (g *gatedProvider) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no model call reached the provider")
	}
}

// passNew lets calls made from now on through; calls already held keep waiting for the release.
func (g *gatedProvider) passNew() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = nil
}

// env is the chat function served over HTTP on its own database, built as functions/chat/main.go's
// newHandler builds it, with the real provider adapters pointed at local wire servers.
type env struct {
	pool     *pgxpool.Pool
	app      *httpapp.App
	url      string
	deepseek *llmtest.Server
	gemini   *llmtest.Server
	model    *gatedProvider
	queue    *fakeQueue

	alice, bob string // bearer tokens of two users

	mu      sync.Mutex
	arrived func(*http.Request) // called as each request reaches the server
	served  func(*http.Request) // called as each request's handling ends
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := pg.NewPool(t)
	a := apitest.NewApp(t, ctTokens, pool, apitest.Log(t))
	a.Listen = pg.ListenConfig(t, pool) // long-polls wait on LISTEN: past PgBouncer, as deployed
	e := &env{pool: pool, app: a, deepseek: llmtest.NewOpenAI(t), queue: &fakeQueue{},
		alice: ctTokens.Token(t, "alice", nil), bob: ctTokens.Token(t, "bob", nil)}
	gm, an := llmtest.NewGemini(t), llmtest.NewAnthropic(t)
	e.gemini = gm
	e.deepseek.RequireAPIKey(deepSeekKey)
	gm.RequireAPIKey(geminiKey)
	an.RequireAPIKey(anthropicKey)
	gp, err := gemini.New(context.Background(), gemini.Config{BaseURL: gm.URL, APIKey: geminiKey})
	if err != nil {
		t.Fatal(err)
	}
	e.model = &gatedProvider{
		Provider: openaicompat.New(openaicompat.Config{Name: "deepseek", BaseURL: e.deepseek.URL, APIKey: deepSeekKey}),
		entered:  make(chan struct{}, 64),
	}
	reg := llm.NewRegistry(e.model, gp, anthropic.New(anthropic.Config{BaseURL: an.URL, APIKey: anthropicKey}))

	srv := a.NewServer(chatapp.MaintenanceExempt...)
	notifier := chatapp.Mount(a, srv, reg, e.queue)
	t.Cleanup(notifier.Close)
	e.url = apitest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		hook := e.arrived
		e.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		srv.ServeHTTP(w, r)
		e.mu.Lock()
		done := e.served
		e.mu.Unlock()
		if done != nil {
			done(r)
		}
	}))
	return e
}

// onArrival calls f with each request as it reaches the server, before it is handled.
func (e *env) onArrival(f func(*http.Request)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.arrived = f
}

// onServed calls f with each request once the server has handled it (its answer written).
func (e *env) onServed(f func(*http.Request)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.served = f
}

// do sends body (none when "") with the bearer token (none when "").
func (e *env) do(t *testing.T, method, path, tok, body string) apitest.Response {
	t.Helper()
	return apitest.Send(t, apitest.NewRequest(t, method, e.url+path, tok, apitest.Body(body)))
}

// sendAsync sends req and reads the whole response; unlike apitest.Send it may run on any
// goroutine (it reports errors instead of stopping the test).
func sendAsync(req *http.Request) (apitest.Response, error) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return apitest.Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return apitest.Response{Status: res.StatusCode, Header: res.Header, Body: b}, err
}

// sendInBackground posts a message on another goroutine; the answer arrives on the channel.
func (e *env) sendInBackground(t *testing.T, tok, id, content, clientMessageID string) <-chan apitest.Response {
	t.Helper()
	req := apitest.NewRequest(t, http.MethodPost, e.url+"/chat/sessions/"+id+"/messages", tok,
		strings.NewReader(sendBody(t, content, clientMessageID)))
	out := make(chan apitest.Response, 1)
	go func() {
		r, err := sendAsync(req)
		if err != nil {
			t.Errorf("send %q: %v", content, err)
		}
		out <- r
	}()
	return out
}

// createSession creates a session through the API and returns it.
func (e *env) createSession(t *testing.T, tok, title string) chatapi.SessionView {
	t.Helper()
	body, err := json.Marshal(map[string]string{"title": title})
	if err != nil {
		t.Fatal(err)
	}
	r := e.do(t, http.MethodPost, "/chat/sessions", tok, string(body))
	var s chatapi.SessionView
	decodeStatus(t, r, http.StatusCreated, &s)
	return s
}

// sendBody is a send's JSON body.
func sendBody(t *testing.T, content, clientMessageID string) string {
	t.Helper()
	m := map[string]string{"content": content}
	if clientMessageID != "" {
		m["client_message_id"] = clientMessageID
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// send posts a message to session id as tok.
func (e *env) send(t *testing.T, tok, id, content, clientMessageID string) apitest.Response {
	t.Helper()
	return e.do(t, http.MethodPost, "/chat/sessions/"+id+"/messages", tok, sendBody(t, content, clientMessageID))
}

// exchange sends a new message and returns the 201 answer.
func (e *env) exchange(t *testing.T, tok, id, content string) chatapi.ExchangeView {
	t.Helper()
	var ex chatapi.ExchangeView
	decodeStatus(t, e.send(t, tok, id, content, uuid.NewString()), http.StatusCreated, &ex)
	return ex
}

// decodeStatus checks the status and the JSON Content-Type, and decodes the body strictly into
// v: a field the view type does not have fails the test.
func decodeStatus(t *testing.T, r apitest.Response, status int, v any) {
	t.Helper()
	r.WantStatus(t, status)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", r.Body, v, err)
	}
}

// keys are the top-level keys of a JSON object body, sorted.
func keys(t *testing.T, raw []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %s", raw)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// wantError checks the status and Helix's error envelope with code.
func wantError(t *testing.T, r apitest.Response, status int, code string) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json; body %s", ct, r.Body)
	}
	b := r.WantErrorBody(t, status)
	if b.Error.Code != code {
		t.Errorf("error.code = %q, want %q; body %s", b.Error.Code, code, r.Body)
	}
}

// wantNoContent checks an empty 204.
func wantNoContent(t *testing.T, r apitest.Response) {
	t.Helper()
	if r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("status %d, body %q; want 204 and no body", r.Status, r.Body)
	}
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// sessionRow is what the database holds of a session.
type sessionRow struct {
	User     string
	Title    string
	Archived bool
	LastSeq  int64
	Messages int
}

func (e *env) sessionRow(t *testing.T, id string) (sessionRow, bool) {
	t.Helper()
	var s sessionRow
	err := e.pool.QueryRow(context.Background(), `
		SELECT user_id, title, archived, last_seq,
		       (SELECT count(*) FROM session_messages m WHERE m.conversation_id = c.conversation_id)
		  FROM conversations c WHERE conversation_id = $1`, id).Scan(&s.User, &s.Title, &s.Archived, &s.LastSeq, &s.Messages)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return s, false
		}
		t.Fatalf("read session %s: %v", id, err)
	}
	return s, true
}

// evidence is an insight's evidence row to store.
type evidence struct {
	session string
	seq     int64
	kind    string
}

// addInsight stores an insight of user as synthesis would have, with its evidence.
func (e *env) addInsight(t *testing.T, user string, layer memory.Layer, text string, invalidated bool, ev ...evidence) string {
	t.Helper()
	id := uuid.NewString()
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `
		INSERT INTO conversation_insights (insight_id, user_id, layer, layer_name, text, confidence, valid_from,
		                                   last_reinforced_at, invalidated_at)
		VALUES ($1, $2, $3, $4, $5, 0.8, now(), now(), CASE WHEN $6 THEN now() END)`,
		id, user, int(layer), layer.Name(), text, invalidated); err != nil {
		t.Fatalf("add insight: %v", err)
	}
	for _, v := range ev {
		if _, err := e.pool.Exec(ctx, `INSERT INTO insight_evidence (insight_id, conversation_id, seq, kind) VALUES ($1, $2, $3, $4)`,
			id, v.session, v.seq, v.kind); err != nil {
			t.Fatalf("add evidence: %v", err)
		}
	}
	return id
}

// today is user's budget day.
func (e *env) today(t *testing.T, user string) budget.Day {
	t.Helper()
	d, err := e.app.Ledger().Today(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// logged is what ai_operation_log holds for user: the rows and their total cost.
func (e *env) logged(t *testing.T, user string) (rows int, costNano int64) {
	t.Helper()
	if err := e.pool.QueryRow(context.Background(),
		`SELECT count(*), COALESCE(sum(cost_nano), 0)::bigint FROM ai_operation_log WHERE user_id = $1`, user).
		Scan(&rows, &costNano); err != nil {
		t.Fatal(err)
	}
	return rows, costNano
}
