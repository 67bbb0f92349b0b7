package routeapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/breaker"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/routeapi"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
	"github.com/helixhq/helix/shared/toggles"
)

// rtTokens are the token settings of the server under test; tokens minted with anything else
// must fail.
var rtTokens = apitest.Tokens{
	Secret:   "routeapi-integration-test-secret-0123456789",
	Issuer:   "https://auth.helix.test/routeapi",
	Audience: "helix-routeapi-test",
}

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
	ledger *postgres.Ledger
	clock  *rtClock
	url    string

	alice, bob, ops string // bearer tokens: two users and an admin
}

func newRouteEnv(t *testing.T) *rtEnv {
	t.Helper()
	pool := pg.NewPool(t)
	clock := &rtClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	repo := postgres.NewCatalog(pool, nil)
	cache := catalog.NewCache(repo, rtCacheTTL, clock.Now)
	ledger := postgres.NewLedger(pool, rtDefaults, nil)

	srv := httpapi.NewServer(apitest.Authenticator(t, rtTokens), apitest.Log(t))
	// The decisions come from the execution pipeline, as in the route function; nothing here
	// executes, so it has no providers.
	decider := &execute.Pipeline{
		Catalog:  cache,
		Toggles:  toggles.NewService(postgres.NewToggles(pool), nil, rtCacheTTL, clock.Now),
		Breakers: breaker.New(postgres.NewBreakers(pool), breaker.DefaultPolicy(), rtCacheTTL, clock.Now),
		Ledger:   ledger,
		Logger:   apitest.Log(t),
	}
	routeapi.Register(srv, routeapi.Deps{Catalog: cache, Editor: repo, Decider: decider})

	e := &rtEnv{pool: pool, ledger: ledger, clock: clock, url: apitest.Serve(t, srv)} // the server closes before the pool
	e.alice = rtTokens.Token(t, "alice", nil)
	e.bob = rtTokens.Token(t, "bob", nil)
	e.ops = rtTokens.Token(t, "ops", map[string]any{"role": "admin"})
	return e
}

// rtResp is an HTTP response with its body read.
type rtResp struct{ apitest.Response }

// do sends body (none when "") with the token (none when "") and reads the whole response.
func (e *rtEnv) do(t *testing.T, method, path, token, body string) rtResp {
	t.Helper()
	return e.send(t, method, path, token, apitest.Body(body))
}

func (e *rtEnv) send(t *testing.T, method, path, token string, body io.Reader) rtResp {
	t.Helper()
	return rtDo(t, apitest.NewRequest(t, method, e.url+path, token, body))
}

// rtDo sends req to an API that answers everything in JSON.
func rtDo(t *testing.T, req *http.Request) rtResp {
	t.Helper()
	return rtResp{apitest.SendJSON(t, req)}
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
	res.WantStatus(t, http.StatusOK)
	var d routeDecision
	res.DecodeNumbers(t, &d)
	return d
}

// putRoute PUTs a route change as the admin; it must succeed.
func (e *rtEnv) putRoute(t *testing.T, op, body string) routeView {
	t.Helper()
	res := e.do(t, http.MethodPut, "/admin/routes/"+op, e.ops, body)
	res.WantStatus(t, http.StatusOK)
	var v routeView
	res.DecodeNumbers(t, &v)
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

// object decodes the body as a JSON object.
func (r rtResp) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.DecodeNumbers(t, &m)
	return m
}

// wantError checks the status and the error envelope: a stable code, a message, and the
// request id that the X-Request-Id header carries.
func (r rtResp) wantError(t *testing.T, status int, code string) {
	t.Helper()
	env := r.WantErrorBody(t, status)
	if env.Error.Code != code {
		t.Errorf("error.code = %q, want %q; body %s", env.Error.Code, code, r.Body)
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
	res.WantStatus(t, http.StatusOK)
	var body struct {
		Routes []routeView `json:"routes"`
	}
	res.DecodeNumbers(t, &body)
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
