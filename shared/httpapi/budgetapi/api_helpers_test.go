package budgetapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/httpapi/budgetapi"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
)

// btTokens are the token settings of the server under test; tokens minted with anything else
// must fail.
var btTokens = apitest.Tokens{
	Secret:   "budgetapi-integration-test-secret-0123456789",
	Issuer:   "https://auth.helix.test/budgetapi",
	Audience: "helix-budgetapi-test",
}

// btEnv is one budget API server over HTTP on its own database, built the way
// functions/budget/main.go builds it.
type btEnv struct {
	ledger *postgres.Ledger
	url    string

	alice, bob, ops string // bearer tokens: two users and an admin
}

func newBudgetEnv(t *testing.T) *btEnv {
	t.Helper()
	pool := pg.NewPool(t)
	ledger := postgres.NewLedger(pool, budget.Limits{DailyLimit: money.MustUSD(50), Warning: money.MustUSD(25)}, nil)
	srv := httpapi.NewServer(apitest.Authenticator(t, btTokens), apitest.Log(t))
	budgetapi.Register(srv, ledger)

	return &btEnv{
		ledger: ledger,
		url:    apitest.Serve(t, srv), // closes before the pool
		alice:  btTokens.Token(t, "alice", nil),
		bob:    btTokens.Token(t, "bob", nil),
		ops:    btTokens.Token(t, "ops", map[string]any{"role": "admin"}),
	}
}

// btResp is an HTTP response with its body read.
type btResp struct{ apitest.Response }

// doAuth sends body (none when "") with the Authorization header value authorization (none when
// ""), exactly as given: no Content-Type, and no scheme added.
func (e *btEnv) doAuth(t *testing.T, method, path, authorization, body string) btResp {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, apitest.Body(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return btResp{apitest.SendJSON(t, req)}
}

// do sends a request with a bearer token (none when "").
func (e *btEnv) do(t *testing.T, method, path, token, body string) btResp {
	t.Helper()
	authz := ""
	if token != "" {
		authz = "Bearer " + token
	}
	return e.doAuth(t, method, path, authz, body)
}

// wantError checks the status and the error envelope: one of the stable codes, a message, and
// the request id that the X-Request-Id header carries.
func (r btResp) wantError(t *testing.T, status int, codes ...string) {
	t.Helper()
	env := r.WantErrorBody(t, status)
	if !slices.Contains(codes, env.Error.Code) {
		t.Errorf("error.code = %q, want one of %q; body %s", env.Error.Code, codes, r.Body)
	}
}

// budgetView is a budget as a client reads it; amounts keep their JSON text.
type budgetView struct {
	UserID           string      `json:"user_id"`
	Date             string      `json:"date"`
	DailyLimit       json.Number `json:"daily_limit"`
	CurrentSpend     json.Number `json:"current_spend"`
	Reserved         json.Number `json:"reserved"`
	Remaining        json.Number `json:"remaining"`
	WarningThreshold json.Number `json:"warning_threshold"`
	Status           string      `json:"status"`
	ResetsAt         string      `json:"resets_at"`
}

// amounts is what tests compare: the user and the numbers, as JSON text.
type amounts struct {
	user, limit, warning, spend, reserved, remaining, status string
}

func (v budgetView) amounts() amounts {
	return amounts{v.UserID, v.DailyLimit.String(), v.WarningThreshold.String(), v.CurrentSpend.String(),
		v.Reserved.String(), v.Remaining.String(), v.Status}
}

// view decodes a 200 budget response strictly and checks its day.
func (r btResp) view(t *testing.T) budgetView {
	t.Helper()
	r.WantStatus(t, http.StatusOK)
	var v budgetView
	r.DecodeNumbers(t, &v)
	checkDay(t, v)
	return v
}

// checkDay checks that the view is for today (UTC) and resets at the next UTC midnight.
func checkDay(t *testing.T, v budgetView) {
	t.Helper()
	now := time.Now().UTC()
	today := now.Format(time.DateOnly)
	if v.Date != today {
		// The request may have straddled midnight.
		if yesterday := now.Add(-time.Minute).Format(time.DateOnly); v.Date != yesterday {
			t.Errorf("date = %q, want %s", v.Date, today)
		}
	}
	day, err := time.Parse(time.DateOnly, v.Date)
	if err != nil {
		t.Fatalf("date %q: %v", v.Date, err)
	}
	if want := day.AddDate(0, 0, 1).Format(time.RFC3339); v.ResetsAt != want {
		t.Errorf("resets_at = %q, want %q (the next UTC midnight, RFC3339)", v.ResetsAt, want)
	}
}

// get reads a budget with GET path as the token's user.
func (e *btEnv) get(t *testing.T, token, path string) budgetView {
	t.Helper()
	return e.do(t, http.MethodGet, path, token, "").view(t)
}

// reserve holds usd of user's budget today under request id id.
func (e *btEnv) reserve(t *testing.T, id, user string, usd float64) {
	t.Helper()
	if err := e.tryReserve(id, user, usd); err != nil {
		t.Fatalf("reserve %s $%v for %s: %v", id, usd, user, err)
	}
}

func (e *btEnv) tryReserve(id, user string, usd float64) error {
	_, err := e.ledger.Reserve(context.Background(), budget.Reservation{RequestID: id, UserID: user, Amount: money.MustUSD(usd)})
	return err
}

// wantExceeded checks that a reservation of usd does not fit.
func (e *btEnv) wantExceeded(t *testing.T, id, user string, usd float64) {
	t.Helper()
	var ex *budget.ExceededError
	if err := e.tryReserve(id, user, usd); !errors.As(err, &ex) {
		t.Errorf("reserve $%v for %s = %v, want the budget exceeded", usd, user, err)
	}
}

func (e *btEnv) settle(t *testing.T, id string, usd float64) {
	t.Helper()
	if err := e.ledger.Settle(context.Background(), id, money.MustUSD(usd)); err != nil {
		t.Fatalf("settle %s: %v", id, err)
	}
}

func (e *btEnv) release(t *testing.T, id string) {
	t.Helper()
	if err := e.ledger.Release(context.Background(), id); err != nil {
		t.Fatalf("release %s: %v", id, err)
	}
}
