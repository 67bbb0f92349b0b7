// Package apitest runs Helix's HTTP APIs in tests and talks to them: the HS256 tokens a test
// server trusts, the httpapp.App that httpapp.Boot would build over a test database, a server on a
// local port whose log goes to the test log, and requests whose whole response is read.
//
//	tokens := apitest.Tokens{Secret: "…32 bytes or more…", Issuer: "https://auth.test/", Audience: "helix-test"}
//	srv := httpapi.NewServer(apitest.Authenticator(t, tokens), apitest.Log(t))
//	url := apitest.Serve(t, srv)
//	res := apitest.Do(t, http.MethodGet, url+"/admin/routes", tokens.Token(t, "ops", map[string]any{"role": "admin"}), "")
//	res.WantStatus(t, http.StatusOK)
//
// It is imported by _test files only: nothing in a deployed function depends on it.
package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/app"
	"github.com/helixhq/helix/shared/app/httpapp"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/config"
)

// Tokens are the HS256 token settings a server under test is configured with: the tokens they
// sign pass, and a token that differs in any of them must fail.
type Tokens struct {
	Secret   string // HELIX_JWT_SECRET, 32 bytes or more
	Issuer   string // HELIX_JWT_ISSUER
	Audience string // HELIX_JWT_AUDIENCE
}

// Spec describes a token for sub with extra claims (nil for none), valid for an hour from now;
// tests change a field of it to mint a token the server must refuse.
func (k Tokens) Spec(sub string, claims map[string]any) auth.TokenSpec {
	return auth.TokenSpec{Secret: []byte(k.Secret), Subject: sub, Issuer: k.Issuer, Audience: k.Audience,
		TTL: time.Hour, Claims: claims}
}

// Token signs Spec(sub, claims): the bearer token of a user (or, with {"role": "admin"}, an
// admin) of the server under test.
func (k Tokens) Token(t testing.TB, sub string, claims map[string]any) string {
	t.Helper()
	return Sign(t, k.Spec(sub, claims))
}

// Sign mints the token spec describes.
func Sign(t testing.TB, spec auth.TokenSpec) string {
	t.Helper()
	tok, err := auth.SignHS256(spec)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Config is the configuration app.Boot would load from an environment that sets only the token
// settings: every other value keeps its real default, so tests run with what a deployment gets
// unless it says otherwise.
func Config(t testing.TB, k Tokens) config.Config {
	t.Helper()
	return ConfigEnv(t, k, nil)
}

// ConfigEnv is Config with more variables set (ENABLE_MAINTENANCE_MODE=true, say).
func ConfigEnv(t testing.TB, k Tokens, env map[string]string) config.Config {
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL":       "postgres://unused.invalid/helix", // tests hand in their own pool instead
		"HELIX_JWT_SECRET":   k.Secret,
		"HELIX_JWT_ISSUER":   k.Issuer,
		"HELIX_JWT_AUDIENCE": k.Audience,
	}
	for name, v := range env {
		vars[name] = v
	}
	cfg, err := config.Load(vars, config.Parts{HTTP: true})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// Authenticator verifies the tokens k signs, with the default configuration's admin rule (the
// "role" claim equal to "admin").
func Authenticator(t testing.TB, k Tokens) *auth.Authenticator {
	t.Helper()
	return authenticator(t, Config(t, k))
}

func authenticator(t testing.TB, cfg config.Config) *auth.Authenticator {
	t.Helper()
	authn, err := auth.New(t.Context(), auth.Config{
		HS256Secret: []byte(cfg.HTTP.Auth.HS256Secret),
		Issuer:      cfg.HTTP.Auth.Issuer,
		Audience:    cfg.HTTP.Auth.Audience,
		AdminClaim:  cfg.HTTP.Auth.AdminClaim,
		AdminValue:  cfg.HTTP.Auth.AdminValue,
	})
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	return authn
}

// NewApp builds what httpapp.Boot would, minus the secret resolution and the pool it opens:
// Config(t, k), an authenticator for k's tokens, pool and log.
func NewApp(t testing.TB, k Tokens, pool *pgxpool.Pool, log *slog.Logger) *httpapp.App {
	t.Helper()
	return NewAppEnv(t, k, nil, pool, log)
}

// NewAppEnv is NewApp with more variables in the environment (see ConfigEnv).
func NewAppEnv(t testing.TB, k Tokens, env map[string]string, pool *pgxpool.Pool, log *slog.Logger) *httpapp.App {
	t.Helper()
	a, err := httpapp.New(t.Context(), &app.Core{Config: ConfigEnv(t, k, env), Log: log, Pool: pool})
	if err != nil {
		t.Fatalf("httpapp: %v", err)
	}
	return a
}

// Log is a server log that sends warnings and errors to the test log, where a failing test
// shows them next to its own output; quieter lines would drown them.
func Log(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("server: %s", bytes.TrimSpace(p))
	return len(p), nil
}

// Serve serves h on a local port and returns its URL. The server closes when the test ends,
// before anything the test set up earlier (cleanups run last-in first-out), so the pool and the
// provider servers behind h outlive every request.
func Serve(t testing.TB, h http.Handler) string {
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

// NewRequest returns a request for url with the bearer token tok (none when "") and body (none
// when nil), labelled JSON as a client of a JSON API labels it.
func NewRequest(t testing.TB, method, url, tok string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req
}

// Body is s as a request body: none (a nil io.Reader, not an empty one) when s is "", so that a
// request without a body carries no Content-Type either.
func Body(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

// Do sends NewRequest(t, method, url, tok, Body(body)).
func Do(t testing.TB, method, url, tok, body string) Response {
	t.Helper()
	return Send(t, NewRequest(t, method, url, tok, Body(body)))
}

// Send sends req and reads the whole response.
func Send(t testing.TB, req *http.Request) Response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.RequestURI(), err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// SendJSON is Send for an API that answers everything, errors included, in JSON: a response of
// any other Content-Type is a test error.
func SendJSON(t testing.TB, req *http.Request) Response {
	t.Helper()
	res := Send(t, req)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", req.Method, req.URL.RequestURI(), ct)
	}
	return res
}

// Response is an HTTP response with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// WantStatus stops the test unless the response has status.
func (r Response) WantStatus(t testing.TB, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// Decode decodes the body, which must be one JSON value, into v.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// DecodeNumbers decodes the body into v with numbers as json.Number, so that amounts compare as
// the JSON wrote them rather than as rounded float64s.
func (r Response) DecodeNumbers(t testing.TB, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// ErrorBody is Helix's error envelope.
type ErrorBody struct {
	Error struct {
		Code      string          `json:"code"`
		Message   string          `json:"message"`
		RequestID string          `json:"request_id"`
		Details   json.RawMessage `json:"details"`
	} `json:"error"`
}

// WantErrorBody stops the test unless the response has status, and checks the body is Helix's
// error envelope with a message and the request id that the X-Request-Id header carries (so a
// client can quote either). It returns the envelope, for the caller to check the code.
func (r Response) WantErrorBody(t testing.TB, status int) ErrorBody {
	t.Helper()
	r.WantStatus(t, status)
	var b ErrorBody
	r.Decode(t, &b)
	if b.Error.Message == "" {
		t.Errorf("error.message is empty; body %s", r.Body)
	}
	if id := r.Header.Get("X-Request-Id"); b.Error.RequestID == "" || b.Error.RequestID != id {
		t.Errorf("error.request_id = %q, X-Request-Id = %q", b.Error.RequestID, id)
	}
	return b
}
