// Package routeapptest serves the route function over HTTP for tests, assembled the way
// functions/route builds it (httpapp.App, its server with the maintenance gate, routeapp.Mount), with
// the real provider adapters pointed at local servers that speak each provider's wire format
// (package llmtest). The tests of the APIs the route function mounts drive it end to end, from
// the HTTP request to the provider's wire and the database rows.
//
// It is imported by _test files only: nothing in a deployed function depends on it.
package routeapptest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/app/routeapp"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/execute"
	"github.com/helixhq/helix/shared/llm"
	"github.com/helixhq/helix/shared/llm/anthropic"
	"github.com/helixhq/helix/shared/llm/gemini"
	"github.com/helixhq/helix/shared/llm/llmtest"
	"github.com/helixhq/helix/shared/llm/openaicompat"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
)

// The API keys the wire servers insist on, so the adapters are seen sending them.
const deepSeekKey, geminiKey, anthropicKey = "ds-key", "gm-key", "an-key"

// The token settings the server trusts; Alice, Bob and Admin are signed with them, and a token
// minted with anything else must fail.
const (
	tokenSecret   = "routeapptest-integration-test-secret-0123456789"
	tokenIssuer   = "https://auth.helix.test/routeapptest"
	tokenAudience = "helix-routeapptest"
)

// Env is the route function served over HTTP on its own database.
type Env struct {
	Pool   *pgxpool.Pool
	Ledger *postgres.Ledger
	URL    string // the server's; paths are appended to it
	server *httptest.Server

	// The wire servers behind the deepseek, gemini and claude providers.
	DeepSeek, Gemini, Claude *llmtest.Server

	Alice, Bob, Admin string // bearer tokens; Admin has the admin role
}

// New serves the route function on pool. wrap, when set, replaces the provider registry the
// function gets (e.g. to force the offline model).
func New(t testing.TB, pool *pgxpool.Pool, wrap func(*llm.Registry) execute.Providers) *Env {
	t.Helper()
	tokens := apitest.Tokens{Secret: tokenSecret, Issuer: tokenIssuer, Audience: tokenAudience}
	a := apitest.NewApp(t, tokens, pool, apitest.Log(t))
	e := &Env{Pool: pool, Ledger: a.Ledger(),
		DeepSeek: llmtest.NewOpenAI(t), Gemini: llmtest.NewGemini(t), Claude: llmtest.NewAnthropic(t)}
	e.DeepSeek.RequireAPIKey(deepSeekKey)
	e.Gemini.RequireAPIKey(geminiKey)
	e.Claude.RequireAPIKey(anthropicKey)
	gp, err := gemini.New(context.Background(), gemini.Config{BaseURL: e.Gemini.URL, APIKey: geminiKey})
	if err != nil {
		t.Fatal(err)
	}
	reg := llm.NewRegistry(
		openaicompat.New(openaicompat.Config{Name: "deepseek", BaseURL: e.DeepSeek.URL, APIKey: deepSeekKey}),
		gp,
		anthropic.New(anthropic.Config{BaseURL: e.Claude.URL, APIKey: anthropicKey}),
	)
	var providers execute.Providers = reg
	if wrap != nil {
		providers = wrap(reg)
	}

	srv := a.NewServer(routeapp.MaintenanceExempt...)
	routeapp.Mount(a, srv, providers)
	// Closed when the test ends, before the pool and the wire servers (cleanups run last-in
	// first-out), or earlier by Drain.
	e.server = httptest.NewServer(srv)
	t.Cleanup(e.server.Close)
	e.URL = e.server.URL

	e.Alice = tokens.Token(t, "alice", nil)
	e.Bob = tokens.Token(t, "bob", nil)
	e.Admin = tokens.Token(t, "ops", map[string]any{"role": "admin"})
	return e
}

// Drain closes the server once every request it received has been handled, including those
// whose clients hung up: afterwards the database holds everything the requests did.
func (e *Env) Drain() { e.server.Close() }

// LogRow is one ai_operation_log row.
type LogRow struct {
	RequestID, OperationID, UserID, Model, Provider, PriceVersion, ErrorCode string
	In, Out, Cached, Reasoning, CostNano                                     int64
	Success, Fallback                                                        bool
}

// LogRows returns every ai_operation_log row, oldest first.
func (e *Env) LogRows(t testing.TB) []LogRow {
	t.Helper()
	rows, err := e.Pool.Query(context.Background(), `
		SELECT request_id, operation_id, user_id, COALESCE(model_used, ''), COALESCE(provider, ''),
		       COALESCE(price_version, ''), COALESCE(error_code, ''), input_tokens, output_tokens,
		       cached_input_tokens, reasoning_tokens, cost_nano, success, fallback_used
		  FROM ai_operation_log ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LogRow, error) {
		var l LogRow
		err := r.Scan(&l.RequestID, &l.OperationID, &l.UserID, &l.Model, &l.Provider, &l.PriceVersion, &l.ErrorCode,
			&l.In, &l.Out, &l.Cached, &l.Reasoning, &l.CostNano, &l.Success, &l.Fallback)
		return l, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Today returns user's budget day.
func (e *Env) Today(t testing.TB, user string) budget.Day {
	t.Helper()
	d, err := e.Ledger.Today(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// SetLimits gives user a daily limit (and the same warning threshold) in USD.
func (e *Env) SetLimits(t testing.TB, user string, usd float64) {
	t.Helper()
	lim := money.MustUSD(usd)
	if _, err := e.Ledger.SetLimits(context.Background(), user, budget.Limits{DailyLimit: lim, Warning: lim}, "test"); err != nil {
		t.Fatal(err)
	}
}

// RequestCounts is how many requests each wire server received: DeepSeek, Gemini, Claude.
func (e *Env) RequestCounts() [3]int {
	return [3]int{e.DeepSeek.Count(), e.Gemini.Count(), e.Claude.Count()}
}
