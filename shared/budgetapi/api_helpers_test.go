package budgetapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/budget"
	"github.com/helixhq/helix/shared/budgetapi"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/store"
)

// The token settings of the server under test; tokens minted with anything else must fail.
const (
	btIssuer   = "https://auth.helix.test/budgetapi"
	btAudience = "helix-budgetapi-test"
)

var btSecret = []byte("budgetapi-integration-test-secret-0123456789")

// btEnv is one budget API server over HTTP on its own database, built the way
// functions/budget/main.go builds it.
type btEnv struct {
	ledger *store.Ledger
	url    string

	alice, bob, ops string // bearer tokens: two users and an admin
}

func newBudgetEnv(t *testing.T) *btEnv {
	t.Helper()
	pool := pg.NewPool(t)
	authn, err := auth.New(context.Background(), auth.Config{
		HS256Secret: btSecret,
		Issuer:      btIssuer,
		Audience:    btAudience,
		AdminClaim:  "role",
		AdminValue:  "admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	ledger := store.NewLedger(pool, budget.Limits{DailyLimit: money.MustUSD(50), Warning: money.MustUSD(25)}, nil)
	log := slog.New(slog.NewTextHandler(btLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := httpapi.NewServer(authn, log)
	budgetapi.Register(srv, ledger)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close) // before the pool closes: cleanups run last-in first-out

	return &btEnv{
		ledger: ledger,
		url:    hs.URL,
		alice:  btToken(t, btTokenSpec("alice", nil)),
		bob:    btToken(t, btTokenSpec("bob", nil)),
		ops:    btToken(t, btTokenSpec("ops", map[string]any{"role": "admin"})),
	}
}

// btLogWriter sends the server's warnings and errors to the test log.
type btLogWriter struct{ t *testing.T }

func (w btLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("server: %s", bytes.TrimSpace(p))
	return len(p), nil
}

func btTokenSpec(sub string, claims map[string]any) auth.TokenSpec {
	return auth.TokenSpec{Secret: btSecret, Subject: sub, Issuer: btIssuer, Audience: btAudience, TTL: time.Hour, Claims: claims}
}

func btToken(t *testing.T, spec auth.TokenSpec) string {
	t.Helper()
	tok, err := auth.SignHS256(spec)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// btResp is an HTTP response with its body read.
type btResp struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends body (none when "") with the Authorization header value auth (none when "").
func (e *btEnv) doAuth(t *testing.T, method, path, authorization, body string) btResp {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
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
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", method, path, ct)
	}
	return btResp{Status: res.StatusCode, Header: res.Header, Body: b}
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

func (r btResp) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// wantError checks the status and the error envelope: one of the stable codes, a message, and
// the request id that the X-Request-Id header carries.
func (r btResp) wantError(t *testing.T, status int, codes ...string) {
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
	if err := json.Unmarshal(r.Body, &env); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	ok := false
	for _, c := range codes {
		ok = ok || env.Error.Code == c
	}
	if !ok {
		t.Errorf("error.code = %q, want one of %q; body %s", env.Error.Code, codes, r.Body)
	}
	if env.Error.Message == "" {
		t.Errorf("error.message is empty; body %s", r.Body)
	}
	if id := r.Header.Get("X-Request-Id"); env.Error.RequestID == "" || env.Error.RequestID != id {
		t.Errorf("error.request_id = %q, X-Request-Id = %q", env.Error.RequestID, id)
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
	r.wantStatus(t, http.StatusOK)
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	var v budgetView
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
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
