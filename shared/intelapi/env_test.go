package intelapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/config"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/anthropic"
	"github.com/helixhq/helix/shared/llm/gemini"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/openaicompat"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/routefunc"
	"github.com/helixhq/helix/shared/store"
)

const (
	testSecret   = "intelapi-integration-test-secret-0123456789"
	testIssuer   = "https://auth.helix.test/intelapi"
	testAudience = "helix-intelapi-test"

	// API keys the wire servers insist on, so the adapters are seen sending them.
	deepseekKey, geminiKey, anthropicKey = "ds-key", "gm-key", "an-key"
)

// env is the route function served over HTTP on its own database, assembled the way
// functions/route builds it (app.Base, its toggles and maintenance gate, routefunc.Mount), with
// the real provider adapters pointed at local servers that speak each provider's wire format.
type env struct {
	pool   *pgxpool.Pool
	ledger *store.Ledger
	url    string

	deepseek, gemini, claude *llmtest.Server

	alice, bob, admin string // bearer tokens; admin has the admin role
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith builds the env; wrap, when set, replaces the provider registry (e.g. to force the
// offline model).
func newEnvWith(t *testing.T, wrap func(*llm.Registry) execute.Providers) *env {
	t.Helper()
	ctx := context.Background()
	pool := pg.NewPool(t)
	vars := map[string]string{
		"DATABASE_URL":       "postgres://unused.invalid/helix", // the pool above is used instead
		"HELIX_JWT_SECRET":   testSecret,
		"HELIX_JWT_ISSUER":   testIssuer,
		"HELIX_JWT_AUDIENCE": testAudience,
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	authn, err := auth.New(ctx, auth.Config{
		HS256Secret: []byte(cfg.Auth.HS256Secret), Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience,
		AdminClaim: cfg.Auth.AdminClaim, AdminValue: cfg.Auth.AdminValue,
	})
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	base := &app.Base{Config: cfg, Log: log, Pool: pool, Auth: authn}

	e := &env{pool: pool, ledger: base.Ledger(),
		deepseek: llmtest.NewOpenAI(t), gemini: llmtest.NewGemini(t), claude: llmtest.NewAnthropic(t)}
	e.deepseek.RequireAPIKey(deepseekKey)
	e.gemini.RequireAPIKey(geminiKey)
	e.claude.RequireAPIKey(anthropicKey)
	gp, err := gemini.New(ctx, gemini.Config{BaseURL: e.gemini.URL, APIKey: geminiKey})
	if err != nil {
		t.Fatal(err)
	}
	reg := llm.NewRegistry(
		openaicompat.New(openaicompat.Config{Name: "deepseek", BaseURL: e.deepseek.URL, APIKey: deepseekKey}),
		gp,
		anthropic.New(anthropic.Config{BaseURL: e.claude.URL, APIKey: anthropicKey}),
	)
	var providers execute.Providers = reg
	if wrap != nil {
		providers = wrap(reg)
	}

	tg := base.Toggles()
	srv := base.NewServer(tg)
	routefunc.Mount(base, srv, tg, providers)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close) // before the pool and the wire servers close (cleanups run last-in first-out)
	e.url = hs.URL

	e.alice = token(t, "alice", nil)
	e.bob = token(t, "bob", nil)
	e.admin = token(t, "ops", map[string]any{"role": "admin"})
	return e
}

// testLog sends the server's warnings and errors to the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("server: %s", bytes.TrimSpace(p))
	return len(p), nil
}

func token(t *testing.T, sub string, claims map[string]any) string {
	t.Helper()
	tok, err := auth.SignHS256(auth.TokenSpec{Secret: []byte(testSecret), Subject: sub, Issuer: testIssuer,
		Audience: testAudience, TTL: time.Hour, Claims: claims})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// resp is an HTTP response with its body read.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends body (none when "") with the bearer token (none when "").
func (e *env) do(t *testing.T, method, path, tok, body string) resp {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{Status: res.StatusCode, Header: res.Header, Body: b}
}

// post POSTs an intelligence request as tok.
func (e *env) post(t *testing.T, path, tok, body string) resp {
	t.Helper()
	return e.do(t, http.MethodPost, "/intelligence"+path, tok, body)
}

func (r resp) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// fields decodes the body as an object of raw JSON values (numbers keep their text).
func (r resp) fields(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// decode decodes the body into v.
func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorBody is Helix's error envelope.
type errorBody struct {
	Error struct {
		Code      string          `json:"code"`
		Message   string          `json:"message"`
		RequestID string          `json:"request_id"`
		Details   json.RawMessage `json:"details"`
	} `json:"error"`
}

// wantError checks the status and Helix's error envelope, and returns it.
func (r resp) wantError(t *testing.T, status int, code string) errorBody {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d (%s); body %s", r.Status, status, code, r.Body)
	}
	var b errorBody
	r.decode(t, &b)
	if b.Error.Code != code || b.Error.Message == "" {
		t.Errorf("error = %+v, want code %q and a message", b.Error, code)
	}
	if id := r.Header.Get("X-Request-Id"); id == "" || b.Error.RequestID != id {
		t.Errorf("error.request_id %q, X-Request-Id %q", b.Error.RequestID, id)
	}
	return b
}

// logRow is one ai_operation_log row.
type logRow struct {
	RequestID, OperationID, UserID, Model, Provider, PriceVersion, ErrorCode string
	In, Out, Cached, Reasoning, CostNano                                     int64
	Success, Fallback                                                        bool
}

// logRows returns every ai_operation_log row, oldest first.
func (e *env) logRows(t *testing.T) []logRow {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `
		SELECT request_id, operation_id, user_id, COALESCE(model_used, ''), COALESCE(provider, ''),
		       COALESCE(price_version, ''), COALESCE(error_code, ''), input_tokens, output_tokens,
		       cached_input_tokens, reasoning_tokens, cost_nano, success, fallback_used
		  FROM ai_operation_log ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (logRow, error) {
		var l logRow
		err := r.Scan(&l.RequestID, &l.OperationID, &l.UserID, &l.Model, &l.Provider, &l.PriceVersion, &l.ErrorCode,
			&l.In, &l.Out, &l.Cached, &l.Reasoning, &l.CostNano, &l.Success, &l.Fallback)
		return l, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// today returns user's budget day.
func (e *env) today(t *testing.T, user string) budget.Day {
	t.Helper()
	d, err := e.ledger.Today(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// setLimits gives user a daily limit (and the same warning threshold) in USD.
func (e *env) setLimits(t *testing.T, user string, usd float64) {
	t.Helper()
	lim := money.MustUSD(usd)
	if _, err := e.ledger.SetLimits(context.Background(), user, budget.Limits{DailyLimit: lim, Warning: lim}, "test"); err != nil {
		t.Fatal(err)
	}
}

// requestCounts is how many requests each wire server received.
func (e *env) requestCounts() [3]int {
	return [3]int{e.deepseek.Count(), e.gemini.Count(), e.claude.Count()}
}
