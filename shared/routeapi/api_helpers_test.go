package routeapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/routeapi"
	"github.com/helixhq/helix/shared/store"
)

// The token settings of the server under test; tokens minted with anything else must fail.
const (
	rtIssuer   = "https://auth.helix.test/routeapi"
	rtAudience = "helix-routeapi-test"
)

var rtSecret = []byte("routeapi-integration-test-secret-0123456789")

var rtDefaults = budget.Limits{DailyLimit: money.MustUSD(50), Warning: money.MustUSD(25)}

// rtClock is the catalog cache's clock. It stands still unless a test moves it, so a cached
// snapshot never expires by itself: whatever a request sees after an admin write, it sees because
// the write invalidated the cache.
type rtClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *rtClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *rtClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rtCacheTTL is the catalog cache TTL of the server under test.
const rtCacheTTL = time.Minute

// rtEnv is one route API server over HTTP on its own database, built the way
// functions/route/main.go builds it.
type rtEnv struct {
	pool   *pgxpool.Pool
	ledger *store.Ledger
	clock  *rtClock
	url    string

	alice, bob, ops string // bearer tokens: two users and an admin
}

func newRouteEnv(t *testing.T) *rtEnv {
	t.Helper()
	pool := pg.NewPool(t)
	authn, err := auth.New(context.Background(), auth.Config{
		HS256Secret: rtSecret,
		Issuer:      rtIssuer,
		Audience:    rtAudience,
		AdminClaim:  "role",
		AdminValue:  "admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	clock := &rtClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	repo := store.NewCatalog(pool, nil)
	cache := catalog.NewCache(repo, rtCacheTTL, clock.Now)
	ledger := store.NewLedger(pool, rtDefaults, nil)

	log := slog.New(slog.NewTextHandler(rtLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := httpapi.NewServer(authn, log)
	routeapi.Register(srv, routeapi.Deps{Catalog: cache, Routes: repo, Budgets: ledger})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close) // runs before the pool closes: cleanups run last-in first-out

	e := &rtEnv{pool: pool, ledger: ledger, clock: clock, url: hs.URL}
	e.alice = rtToken(t, rtTokenSpec("alice", nil))
	e.bob = rtToken(t, rtTokenSpec("bob", nil))
	e.ops = rtToken(t, rtTokenSpec("ops", map[string]any{"role": "admin"}))
	return e
}

// rtLogWriter sends the server's warnings and errors to the test log.
type rtLogWriter struct{ t *testing.T }

func (w rtLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("server: %s", bytes.TrimSpace(p))
	return len(p), nil
}

func rtTokenSpec(sub string, claims map[string]any) auth.TokenSpec {
	return auth.TokenSpec{Secret: rtSecret, Subject: sub, Issuer: rtIssuer, Audience: rtAudience, TTL: time.Hour, Claims: claims}
}

func rtToken(t *testing.T, spec auth.TokenSpec) string {
	t.Helper()
	tok, err := auth.SignHS256(spec)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rtResp is an HTTP response with its body read.
type rtResp struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends body (none when "") with the token (none when "") and reads the whole response.
func (e *rtEnv) do(t *testing.T, method, path, token, body string) rtResp {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return e.send(t, method, path, token, r)
}

func (e *rtEnv) send(t *testing.T, method, path, token string, body io.Reader) rtResp {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return rtDo(t, req)
}

func rtDo(t *testing.T, req *http.Request) rtResp {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", req.Method, req.URL.Path, ct)
	}
	return rtResp{Status: res.StatusCode, Header: res.Header, Body: b}
}

// route POSTs a routing request.
func (e *rtEnv) route(t *testing.T, token, body string) rtResp {
	t.Helper()
	return e.do(t, http.MethodPost, "/ai-router/route", token, body)
}

// decision POSTs a routing request that must succeed and returns the decision.
func (e *rtEnv) decision(t *testing.T, token, body string) routeDecision {
	t.Helper()
	res := e.route(t, token, body)
	res.wantStatus(t, http.StatusOK)
	var d routeDecision
	res.decode(t, &d)
	return d
}

// putRoute PUTs a route change as the admin; it must succeed.
func (e *rtEnv) putRoute(t *testing.T, op, body string) routeView {
	t.Helper()
	res := e.do(t, http.MethodPut, "/admin/routes/"+op, e.ops, body)
	res.wantStatus(t, http.StatusOK)
	var v routeView
	res.decode(t, &v)
	return v
}

// exec runs SQL on the test database, then moves the cache clock past the TTL so that the
// server reads the change.
func (e *rtEnv) execAndExpireCache(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	e.clock.Advance(rtCacheTTL + time.Second)
}

func (r rtResp) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// decode decodes the body strictly (numbers as json.Number).
func (r rtResp) decode(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// object decodes the body as a JSON object.
func (r rtResp) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

// wantError checks the status and the error envelope: a stable code, a message, and the
// request id that the X-Request-Id header carries.
func (r rtResp) wantError(t *testing.T, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	var env struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	r.decode(t, &env)
	if env.Error.Code != code {
		t.Errorf("error.code = %q, want %q; body %s", env.Error.Code, code, r.Body)
	}
	if env.Error.Message == "" {
		t.Errorf("error.message is empty; body %s", r.Body)
	}
	if id := r.Header.Get("X-Request-Id"); env.Error.RequestID == "" || env.Error.RequestID != id {
		t.Errorf("error.request_id = %q, X-Request-Id = %q", env.Error.RequestID, id)
	}
}

// routeDecision is the route response as a client reads it; amounts keep their JSON text.
type routeDecision struct {
	OperationID           string      `json:"operation_id"`
	OperationName         string      `json:"operation_name"`
	Model                 string      `json:"model"`
	Provider              string      `json:"provider"`
	APIModel              string      `json:"api_model"`
	FallbackModel         *string     `json:"fallback_model"`
	FailoverChain         []string    `json:"failover_chain"`
	EstimatedInputTokens  int64       `json:"estimated_input_tokens"`
	EstimatedOutputTokens int64       `json:"estimated_output_tokens"`
	MaxOutputTokens       int64       `json:"max_output_tokens"`
	EstimatedCostUSD      json.Number `json:"estimated_cost_usd"`
	WorstCaseCostUSD      json.Number `json:"worst_case_cost_usd"`
	PriceVersion          string      `json:"price_version"`
	CostCriticality       string      `json:"cost_criticality"`
	RequiresApproval      bool        `json:"requires_approval"`
	ApprovalReason        string      `json:"approval_reason"`
	WithinBudget          bool        `json:"within_budget"`
	Budget                struct {
		UserID       string      `json:"user_id"`
		DailyLimit   json.Number `json:"daily_limit"`
		CurrentSpend json.Number `json:"current_spend"`
		Reserved     json.Number `json:"reserved"`
		Remaining    json.Number `json:"remaining"`
	} `json:"budget"`
}

// routeView is a route as GET/PUT /admin/routes show it.
type routeView struct {
	OperationID      string    `json:"operation_id"`
	OperationName    string    `json:"operation_name"`
	PrimaryModel     string    `json:"primary_model"`
	FallbackModel    *string   `json:"fallback_model"`
	Enabled          bool      `json:"enabled"`
	CostCriticality  string    `json:"cost_criticality"`
	RequiresApproval bool      `json:"requires_approval"`
	MaxOutputTokens  int64     `json:"max_output_tokens"`
	AvgInputTokens   int64     `json:"avg_input_tokens"`
	AvgOutputTokens  int64     `json:"avg_output_tokens"`
	AllowEmergency   bool      `json:"allow_emergency"`
	Notes            string    `json:"notes"`
	UpdatedBy        string    `json:"updated_by"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// listRoutes GETs /admin/routes as the admin.
func (e *rtEnv) listRoutes(t *testing.T) []routeView {
	t.Helper()
	res := e.do(t, http.MethodGet, "/admin/routes", e.ops, "")
	res.wantStatus(t, http.StatusOK)
	var body struct {
		Routes []routeView `json:"routes"`
	}
	res.decode(t, &body)
	return body.Routes
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// reserve holds amount USD of user's budget today under request id id.
func (e *rtEnv) reserve(t *testing.T, id, user string, usd float64) {
	t.Helper()
	_, err := e.ledger.Reserve(context.Background(), budget.Reservation{RequestID: id, UserID: user, Amount: money.MustUSD(usd)})
	if err != nil {
		t.Fatalf("reserve %s $%v for %s: %v", id, usd, user, err)
	}
}

// settle settles reservation id at usd.
func (e *rtEnv) settle(t *testing.T, id string, usd float64) {
	t.Helper()
	if err := e.ledger.Settle(context.Background(), id, money.MustUSD(usd)); err != nil {
		t.Fatalf("settle %s: %v", id, err)
	}
}

// setLimits sets user's limits directly in the ledger.
func (e *rtEnv) setLimits(t *testing.T, user string, limit, warning float64) {
	t.Helper()
	_, err := e.ledger.SetLimits(context.Background(), user, budget.Limits{DailyLimit: money.MustUSD(limit), Warning: money.MustUSD(warning)}, "test")
	if err != nil {
		t.Fatal(err)
	}
}
