package budgetapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/auth"
)

// A user with no history sees the defaults, exactly as the issue spells them.
func TestBudgetFreshUser(t *testing.T) {
	e := newBudgetEnv(t)
	res := e.do(t, http.MethodGet, "/ai-router/budget", e.alice, "")
	v := res.view(t)
	want := amounts{user: "alice", limit: "50", warning: "25", spend: "0", reserved: "0", remaining: "50", status: "ok"}
	if got := v.amounts(); got != want {
		t.Errorf("budget = %+v, want %+v", got, want)
	}
	// The amounts are JSON numbers, not strings.
	var raw map[string]any
	if err := json.Unmarshal(res.Body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"daily_limit", "current_spend", "remaining", "reserved", "warning_threshold"} {
		if _, ok := raw[k].(float64); !ok {
			t.Errorf("%s = %#v, want a JSON number", k, raw[k])
		}
	}
	if _, err := time.Parse(time.RFC3339, v.ResetsAt); err != nil || !strings.HasSuffix(v.ResetsAt, "T00:00:00Z") {
		t.Errorf("resets_at = %q (%v), want the next UTC midnight", v.ResetsAt, err)
	}
}

// status follows spend and reservations: ok below the warning, warning from it, exceeded when
// nothing remains.
func TestBudgetStatus(t *testing.T) {
	e := newBudgetEnv(t)
	steps := []struct {
		name string
		do   func(t *testing.T)
		want amounts // for alice
	}{
		{"one nano below the warning", func(t *testing.T) {
			e.reserve(t, "r1", "alice", 30)
			e.settle(t, "r1", 24.999999999)
		}, amounts{"alice", "50", "25", "24.999999999", "0", "25.000000001", "ok"}},
		{"spent reaches the warning", func(t *testing.T) {
			e.reserve(t, "r2", "alice", 1)
			e.settle(t, "r2", 0.000000001)
		}, amounts{"alice", "50", "25", "25", "0", "25", "warning"}},
		{"a reservation in flight", func(t *testing.T) {
			e.reserve(t, "r3", "alice", 20)
		}, amounts{"alice", "50", "25", "25", "20", "5", "warning"}},
		{"spent and reserved reach the limit", func(t *testing.T) {
			e.reserve(t, "r4", "alice", 5)
		}, amounts{"alice", "50", "25", "25", "25", "0", "exceeded"}},
		{"a release frees the budget again", func(t *testing.T) {
			e.release(t, "r4")
		}, amounts{"alice", "50", "25", "25", "20", "5", "warning"}},
		{"settled at the limit", func(t *testing.T) {
			e.settle(t, "r3", 25)
		}, amounts{"alice", "50", "25", "50", "0", "0", "exceeded"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			if got := e.get(t, e.alice, "/ai-router/budget").amounts(); got != s.want {
				t.Errorf("budget = %+v, want %+v", got, s.want)
			}
		})
	}

	t.Run("reservations alone count towards the warning", func(t *testing.T) {
		e.reserve(t, "b1", "bob", 25)
		want := amounts{"bob", "50", "25", "0", "25", "25", "warning"}
		if got := e.get(t, e.bob, "/ai-router/budget").amounts(); got != want {
			t.Errorf("budget = %+v, want %+v", got, want)
		}
	})
}

// A user only ever sees their own budget; admins may read anyone's.
func TestBudgetVisibility(t *testing.T) {
	e := newBudgetEnv(t)
	e.reserve(t, "a", "alice", 1.5)
	e.reserve(t, "b", "bob", 7)
	e.reserve(t, "o", "ops", 0.25)
	aliceView := amounts{"alice", "50", "25", "0", "1.5", "48.5", "ok"}
	bobView := amounts{"bob", "50", "25", "0", "7", "43", "ok"}
	opsView := amounts{"ops", "50", "25", "0", "0.25", "49.75", "ok"}

	allowed := []struct {
		name, token, path string
		want              amounts
	}{
		{"alice reads hers", e.alice, "/ai-router/budget", aliceView},
		{"alice names herself", e.alice, "/ai-router/budget?user_id=alice", aliceView},
		{"an empty user_id is the caller", e.alice, "/ai-router/budget?user_id=", aliceView},
		{"bob reads his", e.bob, "/ai-router/budget", bobView},
		{"admin reads own", e.ops, "/ai-router/budget", opsView},
		{"admin reads bob's", e.ops, "/ai-router/budget?user_id=bob", bobView},
		{"admin reads bob's on the admin endpoint", e.ops, "/admin/budgets/bob", bobView},
		{"admin reads alice's on the admin endpoint", e.ops, "/admin/budgets/alice", aliceView},
		{"admin reads a user without history", e.ops, "/admin/budgets/nobody", amounts{"nobody", "50", "25", "0", "0", "50", "ok"}},
		{"escaped user ids are decoded", e.ops, "/admin/budgets/carol%40example.com", amounts{"carol@example.com", "50", "25", "0", "0", "50", "ok"}},
	}
	for _, tc := range allowed {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.get(t, tc.token, tc.path).amounts(); got != tc.want {
				t.Errorf("budget = %+v, want %+v", got, tc.want)
			}
		})
	}

	refused := []struct {
		name, token, path string
	}{
		{"alice names bob", e.alice, "/ai-router/budget?user_id=bob"},
		{"bob names alice", e.bob, "/ai-router/budget?user_id=alice"},
		{"alice names bob among others", e.alice, "/ai-router/budget?user_id=bob&user_id=alice"},
		{"alice on the admin endpoint for bob", e.alice, "/admin/budgets/bob"},
		{"alice on the admin endpoint for herself", e.alice, "/admin/budgets/alice"},
		{"bob on the admin endpoint", e.bob, "/admin/budgets/bob"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(t, http.MethodGet, tc.path, tc.token, "")
			res.wantError(t, http.StatusForbidden, "forbidden")
			if strings.Contains(string(res.Body), "daily_limit") {
				t.Errorf("a refused request shows a budget: %s", res.Body)
			}
		})
	}
}

// Admins set limits; the response, both GET endpoints and the next reservation all see them.
func TestPutBudget(t *testing.T) {
	e := newBudgetEnv(t)
	e.reserve(t, "b1", "bob", 3)
	put := func(t *testing.T, user, body string) budgetView {
		t.Helper()
		return e.do(t, http.MethodPut, "/admin/budgets/"+user, e.ops, body).view(t)
	}

	steps := []struct {
		name, body string
		want       amounts
	}{
		{"limit and warning", `{"daily_limit":100,"warning_threshold":12.5}`, amounts{"bob", "100", "12.5", "0", "3", "97", "ok"}},
		{"limit only keeps the warning", `{"daily_limit":80}`, amounts{"bob", "80", "12.5", "0", "3", "77", "ok"}},
		{"warning only keeps the limit", `{"warning_threshold":2}`, amounts{"bob", "80", "2", "0", "3", "77", "warning"}},
		{"exponent notation", `{"daily_limit":1e2,"warning_threshold":2.5e1}`, amounts{"bob", "100", "25", "0", "3", "97", "ok"}},
		{"nine decimals", `{"daily_limit":10.123456789,"warning_threshold":0.000000001}`, amounts{"bob", "10.123456789", "0.000000001", "0", "3", "7.123456789", "warning"}},
		{"the largest limit", `{"daily_limit":100000,"warning_threshold":100000}`, amounts{"bob", "100000", "100000", "0", "3", "99997", "ok"}},
		{"warning equal to the limit", `{"daily_limit":40,"warning_threshold":40}`, amounts{"bob", "40", "40", "0", "3", "37", "ok"}},
		{"a limit below what is committed", `{"daily_limit":2,"warning_threshold":1}`, amounts{"bob", "2", "1", "0", "3", "0", "exceeded"}},
		{"zero blocks the user", `{"daily_limit":0,"warning_threshold":0}`, amounts{"bob", "0", "0", "0", "3", "0", "exceeded"}},
		{"back to 100 and 12.5", `{"daily_limit":100.0,"warning_threshold":12.50}`, amounts{"bob", "100", "12.5", "0", "3", "97", "ok"}},
		// A limit lowered below the kept warning takes the warning down to half the new limit.
		{"limit below the current warning halves it", `{"daily_limit":10}`, amounts{"bob", "10", "5", "0", "3", "7", "ok"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if got := put(t, "bob", s.body).amounts(); got != s.want {
				t.Errorf("PUT = %+v, want %+v", got, s.want)
			}
			if got := e.get(t, e.ops, "/admin/budgets/bob").amounts(); got != s.want {
				t.Errorf("GET /admin/budgets/bob = %+v, want %+v", got, s.want)
			}
			if got := e.get(t, e.bob, "/ai-router/budget").amounts(); got != s.want {
				t.Errorf("bob's GET /ai-router/budget = %+v, want %+v", got, s.want)
			}
		})
	}
	// Other users keep the defaults.
	if got := e.get(t, e.alice, "/ai-router/budget").amounts(); got.limit != "50" || got.warning != "25" {
		t.Errorf("alice's budget changed: %+v", got)
	}
	// A user without limits of their own starts from the defaults ($50, warning $25).
	if got := put(t, "nobody", `{"daily_limit":10}`).amounts(); got.limit != "10" || got.warning != "5" {
		t.Errorf("limit only, below the default warning: %+v, want limit 10 warning 5", got)
	}
}

// A new limit applies to the very next reservation.
func TestPutBudgetAppliesToTheNextReservation(t *testing.T) {
	e := newBudgetEnv(t)
	e.reserve(t, "e1", "erin", 30)

	e.do(t, http.MethodPut, "/admin/budgets/erin", e.ops, `{"daily_limit":40,"warning_threshold":10}`).view(t)
	e.wantExceeded(t, "e2", "erin", 10.000000001)
	e.reserve(t, "e3", "erin", 10)
	if got := e.get(t, e.ops, "/admin/budgets/erin").amounts(); got != (amounts{"erin", "40", "10", "0", "40", "0", "exceeded"}) {
		t.Errorf("budget = %+v", got)
	}

	e.do(t, http.MethodPut, "/admin/budgets/erin", e.ops, `{"daily_limit":100}`).view(t)
	e.reserve(t, "e4", "erin", 60)
	e.wantExceeded(t, "e5", "erin", 0.000000001)

	// A user with no history: the limit set before the first reservation holds.
	e.do(t, http.MethodPut, "/admin/budgets/frank", e.ops, `{"daily_limit":5,"warning_threshold":1}`).view(t)
	e.wantExceeded(t, "f1", "frank", 5.000000001)
	e.reserve(t, "f2", "frank", 5)
	if got := e.get(t, e.ops, "/admin/budgets/frank").amounts(); got != (amounts{"frank", "5", "1", "0", "5", "0", "exceeded"}) {
		t.Errorf("budget = %+v", got)
	}
}

// Refused limit changes: status, code, and nothing changed.
func TestPutBudgetRejects(t *testing.T) {
	e := newBudgetEnv(t)
	e.do(t, http.MethodPut, "/admin/budgets/bob", e.ops, `{"daily_limit":80,"warning_threshold":20}`).view(t)
	tests := []struct {
		name, user, body string
		status           int
		codes            []string
	}{
		{"warning above the limit", "bob", `{"daily_limit":10,"warning_threshold":20}`, 400, []string{"invalid_field"}},
		{"warning above the current limit", "bob", `{"warning_threshold":80.000000001}`, 400, []string{"invalid_field"}},
		{"negative limit", "bob", `{"daily_limit":-1}`, 400, []string{"invalid_field"}},
		{"negative warning", "bob", `{"warning_threshold":-0.5}`, 400, []string{"invalid_field"}},
		{"negative zero-ish", "bob", `{"warning_threshold":-0.000000001}`, 400, []string{"invalid_field"}},
		// A string where a number belongs: route decoding calls this invalid_type.
		{"limit as a string", "bob", `{"daily_limit":"100"}`, 400, []string{"invalid_type", "invalid_field"}},
		{"warning as a string", "bob", `{"warning_threshold":"10"}`, 400, []string{"invalid_type", "invalid_field"}},
		{"limit as a boolean", "bob", `{"daily_limit":true}`, 400, []string{"invalid_type", "invalid_field"}},
		{"limit as an object", "bob", `{"daily_limit":{"usd":100}}`, 400, []string{"invalid_type", "invalid_field"}},
		{"ten decimals", "bob", `{"daily_limit":50.0000000001}`, 400, []string{"invalid_field"}},
		{"ten decimals in the warning", "bob", `{"warning_threshold":0.0000000001}`, 400, []string{"invalid_field"}},
		{"limit above 100000", "bob", `{"daily_limit":100000.000000001}`, 400, []string{"invalid_field"}},
		{"limit of a million", "bob", `{"daily_limit":1e6}`, 400, []string{"invalid_field"}},
		{"absurd limit", "bob", `{"daily_limit":1e300}`, 400, []string{"invalid_field"}},
		{"empty object", "bob", `{}`, 400, []string{"missing_field"}},
		{"null body", "bob", `null`, 400, []string{"missing_field"}},
		{"null limit", "bob", `{"daily_limit":null}`, 400, []string{"missing_field"}},
		{"unknown field", "bob", `{"limit":100}`, 400, []string{"unknown_field"}},
		{"valid field with an unknown one", "bob", `{"daily_limit":90,"warning":10}`, 400, []string{"unknown_field"}},
		{"malformed JSON", "bob", `{"daily_limit":`, 400, []string{"malformed_json"}},
		{"trailing data", "bob", `{"daily_limit":90} 5`, 400, []string{"malformed_json"}},
		{"array body", "bob", `[100]`, 400, []string{"invalid_type"}},
		{"empty body", "bob", ``, 400, []string{"empty_body"}},
		{"70 KiB body", "bob", `{"daily_limit":90` + strings.Repeat(" ", 70<<10) + `}`, 413, []string{"body_too_large"}},
		{"user id too long", strings.Repeat("u", 257), `{"daily_limit":90}`, 400, []string{"invalid_field"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.do(t, http.MethodPut, "/admin/budgets/"+tc.user, e.ops, tc.body).wantError(t, tc.status, tc.codes...)
		})
	}
	want := amounts{"bob", "80", "20", "0", "0", "80", "ok"}
	if got := e.get(t, e.ops, "/admin/budgets/bob").amounts(); got != want {
		t.Errorf("refused changes changed bob's budget: %+v, want %+v", got, want)
	}
	if got := e.get(t, e.ops, "/admin/budgets/nobody").amounts(); got.limit != "50" || got.warning != "25" {
		t.Errorf("refused change changed nobody's budget: %+v", got)
	}
	// The longest user id accepted.
	long := strings.Repeat("u", 256)
	if got := e.do(t, http.MethodPut, "/admin/budgets/"+long, e.ops, `{"daily_limit":90}`).view(t); got.UserID != long || got.DailyLimit != "90" {
		t.Errorf("PUT for a 256-character user id = %+v", got.amounts())
	}
}

// Only admins change limits, whatever the body.
func TestPutBudgetForbidsUsers(t *testing.T) {
	e := newBudgetEnv(t)
	for _, tc := range []struct{ name, token, user, body string }{
		{"alice for bob", e.alice, "bob", `{"daily_limit":1000}`},
		{"alice for herself", e.alice, "alice", `{"daily_limit":1000,"warning_threshold":500}`},
		{"bob for himself", e.bob, "bob", `{"daily_limit":0}`},
		{"alice with an invalid body", e.alice, "alice", `{"daily_limit":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(t, http.MethodPut, "/admin/budgets/"+tc.user, tc.token, tc.body).wantError(t, http.StatusForbidden, "forbidden")
		})
	}
	for _, u := range []struct{ name, token string }{{"alice", e.alice}, {"bob", e.bob}} {
		if got := e.get(t, u.token, "/ai-router/budget").amounts(); got != (amounts{u.name, "50", "25", "0", "0", "50", "ok"}) {
			t.Errorf("%s's budget changed: %+v", u.name, got)
		}
	}
}

// Every endpoint of the budget function refuses requests without valid credentials.
func TestBudgetAPIAuthentication(t *testing.T) {
	e := newBudgetEnv(t)
	now := time.Now()
	bearer := func(mod func(*auth.TokenSpec)) string {
		s := btTokens.Spec("ops", map[string]any{"role": "admin"})
		mod(&s)
		return "Bearer " + apitest.Sign(t, s)
	}
	credentials := []struct{ name, header string }{
		{"no Authorization header", ""},
		{"empty token", "Bearer "},
		{"basic auth", "Basic b3BzOmFkbWlu"},
		{"garbage", "Bearer abc.def.ghi"},
		{"expired", bearer(func(s *auth.TokenSpec) { s.Now = now.Add(-2 * time.Hour) })},
		{"wrong audience", bearer(func(s *auth.TokenSpec) { s.Audience = "helix-routeapi-test" })},
		{"wrong issuer", bearer(func(s *auth.TokenSpec) { s.Issuer = "https://evil.example/" })},
		{"wrong secret", bearer(func(s *auth.TokenSpec) { s.Secret = []byte("another-secret-of-at-least-32-bytes!!") })},
	}
	endpoints := []struct{ method, path, body string }{
		{http.MethodGet, "/ai-router/budget", ""},
		{http.MethodGet, "/ai-router/budget?user_id=bob", ""},
		{http.MethodGet, "/admin/budgets/bob", ""},
		{http.MethodPut, "/admin/budgets/bob", `{"daily_limit":1000}`},
	}
	for _, ep := range endpoints {
		for _, c := range credentials {
			t.Run(fmt.Sprintf("%s %s/%s", ep.method, ep.path, c.name), func(t *testing.T) {
				e.doAuth(t, ep.method, ep.path, c.header, ep.body).wantError(t, http.StatusUnauthorized, "unauthorized")
			})
		}
	}
	if got := e.get(t, e.ops, "/admin/budgets/bob").amounts(); got.limit != "50" {
		t.Errorf("an unauthenticated PUT changed bob's limit: %+v", got)
	}
	// Wrong methods and paths are JSON errors too.
	e.do(t, http.MethodPost, "/ai-router/budget", e.alice, `{}`).wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	e.do(t, http.MethodGet, "/admin/budgets/", e.ops, "").wantError(t, http.StatusNotFound, "not_found")
}
