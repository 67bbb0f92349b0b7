package monitorapi

import (
	"context"
	"github.com/helixhq/helix/shared/monitoring"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/apitest"
	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/money"
)

var tokens = apitest.Tokens{Secret: "monitorapi-test-secret-0123456789abcdef", Issuer: "https://auth.test/monitorapi", Audience: "helix-monitorapi"}

// now is the handlers' clock: 15:00 UTC on 2 March 2026.
var now = time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)

// row is a logged call in the fake store.
type row struct {
	user, operation string
	cost            money.Nano
	at              time.Time
}

// fakeStore filters like the Postgres store (user, half-open range) and records the queries, so
// the tests see both what a caller was shown and what was asked for.
type fakeStore struct {
	mu      sync.Mutex
	rows    []row
	queries []monitoring.Query
	befores []int64
}

func (f *fakeStore) Recent(_ context.Context, before int64, limit int) ([]monitoring.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.befores = append(f.befores, before)
	var out []monitoring.Operation
	for i := len(f.rows); i >= 1 && len(out) < limit; i-- {
		if before == 0 || int64(i) < before {
			r := f.rows[i-1]
			out = append(out, monitoring.Operation{ID: int64(i), OperationID: r.operation, UserID: r.user, Cost: r.cost, CreatedAt: r.at, Success: true})
		}
	}
	return out, nil
}

func (f *fakeStore) Spend(_ context.Context, q monitoring.Query) ([]monitoring.Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	byKey := map[string]*monitoring.Group{}
	var keys []string
	for _, r := range f.rows {
		if (q.UserID != "" && r.user != q.UserID) || r.at.Before(q.From) || !r.at.Before(q.To) {
			continue
		}
		key := map[monitoring.GroupBy]string{"operation": r.operation, "user": r.user, "day": r.at.Format(time.DateOnly)}[q.By]
		g, ok := byKey[key]
		if !ok {
			g = &monitoring.Group{Key: key}
			byKey[key] = g
			keys = append(keys, key)
		}
		g.Calls++
		g.Total += r.cost
	}
	slices.Sort(keys)
	var out []monitoring.Group
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	return out, nil
}

func (f *fakeStore) Summary(_ context.Context, day time.Time) (monitoring.Summary, error) {
	return monitoring.Summary{Date: day.Truncate(24 * time.Hour), Calls: 6, Spend: 5500, Errors: 1,
		Providers: []monitoring.ProviderShare{{Provider: "deepseek", Calls: 5, Share: 5.0 / 6}, {Provider: "", Calls: 1, Share: 1.0 / 6}},
		Budgets: monitoring.Utilisation{Users: 2, Spent: money.MustUSD(40), Limit: money.MustUSD(70), Ratio: 40.0 / 70, OverWarning: 1, AtLimit: 1, MaxRatio: 1.5,
			MostSpending: []monitoring.UserBudget{{UserID: "bob", Spent: money.MustUSD(30), Limit: money.MustUSD(20), Ratio: 1.5}}}}, nil
}

type env struct {
	store                              *fakeStore
	url                                string
	admin, alice, bob, monitor, nobody string
}

func newEnv(t *testing.T, monitoringRole string) *env {
	t.Helper()
	authn, err := auth.New(t.Context(), auth.Config{HS256Secret: []byte(tokens.Secret), Issuer: tokens.Issuer, Audience: tokens.Audience,
		AdminClaim: "role", AdminValue: "admin", MonitoringValue: monitoringRole})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{}
	for i := range 3 {
		st.rows = append(st.rows,
			row{"alice", "email-compose", 100, now.Add(-time.Duration(i) * 24 * time.Hour)},
			row{"bob", "calendar-prep", 1000, now.Add(-time.Duration(i) * 24 * time.Hour)})
	}
	srv := httpapi.NewServer(authn, apitest.Log(t))
	Register(srv, st, func() time.Time { return now })
	return &env{store: st, url: apitest.Serve(t, srv),
		admin:   tokens.Token(t, "ops", map[string]any{"role": "admin"}),
		alice:   tokens.Token(t, "alice", nil),
		bob:     tokens.Token(t, "bob", map[string]any{"role": "authenticated"}),
		monitor: tokens.Token(t, "grafana", map[string]any{"role": "monitoring"}),
		nobody:  ""}
}

func (e *env) get(t *testing.T, path, tok string) apitest.Response {
	t.Helper()
	return apitest.SendJSON(t, apitest.NewRequest(t, http.MethodGet, e.url+path, tok, nil))
}

// TestAccess: who may call what. The feed takes admins and, when configured, the monitoring
// role; the spend reports only admins; /me/usage anyone signed in.
func TestAccess(t *testing.T) {
	const (
		feed    = "/monitoring/operations/realtime"
		spend   = "/admin/spend"
		summary = "/admin/spend/summary"
		usage   = "/me/usage"
	)
	cases := []struct {
		role   string // HELIX_MONITORING_ROLE
		caller string
		path   string
		status int
	}{
		{"monitoring", "admin", feed, 200},
		{"monitoring", "monitor", feed, 200},
		{"monitoring", "alice", feed, 403},
		{"monitoring", "nobody", feed, 401},
		{"", "monitor", feed, 403}, // no role configured: admins only
		{"", "admin", feed, 200},
		{"monitoring", "admin", spend, 200},
		{"monitoring", "monitor", spend, 403}, // the role reads the feed, not the reports
		{"monitoring", "alice", spend, 403},
		{"monitoring", "admin", summary, 200},
		{"monitoring", "monitor", summary, 403},
		{"monitoring", "alice", summary, 403},
		{"monitoring", "nobody", summary, 401},
		{"monitoring", "alice", usage, 200},
		{"monitoring", "monitor", usage, 200},
		{"monitoring", "nobody", usage, 401},
	}
	envs := map[string]*env{"monitoring": newEnv(t, "monitoring"), "": newEnv(t, "")}
	for _, c := range cases {
		t.Run(c.caller+" "+c.path+" role="+c.role, func(t *testing.T) {
			e := envs[c.role]
			tok := map[string]string{"admin": e.admin, "monitor": e.monitor, "alice": e.alice, "nobody": e.nobody}[c.caller]
			res := e.get(t, c.path, tok)
			if c.status != 200 {
				b := res.WantErrorBody(t, c.status)
				if want := map[int]string{401: "unauthorized", 403: "forbidden"}[c.status]; b.Error.Code != want {
					t.Errorf("code %q, want %q", b.Error.Code, want)
				}
				return
			}
			res.WantStatus(t, 200)
		})
	}
}

// TestUsageIsTheCallersOwn: /me/usage counts only the caller's rows, asks the store for the
// token's user, and refuses a user_id parameter instead of ignoring or honouring it.
func TestUsageIsTheCallersOwn(t *testing.T) {
	e := newEnv(t, "")
	var rep Report
	res := e.get(t, "/me/usage?group_by=operation", e.alice)
	res.WantStatus(t, 200)
	res.Decode(t, &rep)
	if rep.UserID != "alice" || len(rep.Data) != 1 || rep.Data[0].Key != "email-compose" || rep.Data[0].Calls != 3 || rep.Data[0].TotalCost != 300 {
		t.Errorf("alice's usage = %+v, want her 3 email-compose calls only", rep)
	}
	if q := e.store.queries[len(e.store.queries)-1]; q.UserID != "alice" {
		t.Errorf("store asked for user %q, want alice", q.UserID)
	}
	res = e.get(t, "/me/usage?group_by=operation", e.bob)
	res.Decode(t, &rep)
	if rep.UserID != "bob" || len(rep.Data) != 1 || rep.Data[0].Key != "calendar-prep" {
		t.Errorf("bob's usage = %+v", rep)
	}
	// An admin's /me/usage is the admin's own too (they have /admin/spend for everyone's).
	res = e.get(t, "/me/usage", e.admin)
	res.Decode(t, &rep)
	if rep.UserID != "ops" || len(rep.Data) != 0 {
		t.Errorf("admin's own usage = %+v, want none", rep)
	}
	for _, q := range []string{"user_id=bob", "user=bob", "group_by=user", "group_by=model"} {
		b := e.get(t, "/me/usage?"+q, e.alice).WantErrorBody(t, 400)
		if b.Error.Code != "invalid_field" {
			t.Errorf("?%s: code %q, want invalid_field", q, b.Error.Code)
		}
	}
}

// TestUsageDays: grouped by day (the default) over the default range, the last 7 UTC days
// including today, in date order.
func TestUsageDays(t *testing.T) {
	e := newEnv(t, "")
	var rep Report
	res := e.get(t, "/me/usage", e.alice)
	res.WantStatus(t, 200)
	res.Decode(t, &rep)
	if rep.GroupBy != "day" || !rep.From.Equal(time.Date(2026, 2, 24, 0, 0, 0, 0, time.UTC)) || !rep.To.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("range %s..%s by %s", rep.From, rep.To, rep.GroupBy)
	}
	var days []string
	for _, g := range rep.Data {
		days = append(days, g.Key)
	}
	if want := []string{"2026-02-28", "2026-03-01", "2026-03-02"}; !slices.Equal(days, want) {
		t.Errorf("days %v, want %v", days, want)
	}
}

func TestSpendQueries(t *testing.T) {
	e := newEnv(t, "")
	day := func(s string) time.Time { v, _ := time.Parse(time.DateOnly, s); return v }
	cases := []struct {
		query string
		want  monitoring.Query
	}{
		{"", monitoring.Query{By: "operation", From: day("2026-02-24"), To: day("2026-03-03"), Limit: 100}},
		{"group_by=user&limit=5", monitoring.Query{By: "user", From: day("2026-02-24"), To: day("2026-03-03"), Limit: 5}},
		{"group_by=day&from=2026-01-01&to=2026-02-01", monitoring.Query{By: "day", From: day("2026-01-01"), To: day("2026-02-01"), Limit: 100}},
		{"group_by=model&from=2026-03-01T10:00:00%2B02:00", monitoring.Query{By: "model", From: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC), Limit: 100}},
		{"to=2026-03-02", monitoring.Query{By: "operation", From: day("2026-02-23"), To: day("2026-03-02"), Limit: 100}},
		{"from=2025-03-01&to=2026-03-02", monitoring.Query{By: "operation", From: day("2025-03-01"), To: day("2026-03-02"), Limit: 100}}, // 366 days
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			e.get(t, "/admin/spend?"+c.query, e.admin).WantStatus(t, 200)
			got := e.store.queries[len(e.store.queries)-1]
			if got.By != c.want.By || !got.From.Equal(c.want.From) || !got.To.Equal(c.want.To) || got.Limit != c.want.Limit || got.UserID != "" {
				t.Errorf("query %+v, want %+v", got, c.want)
			}
		})
	}
	bad := []string{
		"group_by=hour", "group_by=Operation", "group_by=operation&group_by=user", "from=2026-03-02&to=2026-03-02",
		"from=2026-03-02&to=2026-03-01", "from=2025-03-01&to=2026-03-03", "from=yesterday", "from=2026-13-01",
		"to=2026-03-02T25:00:00Z", "limit=0", "limit=1001", "limit=ten", "limit=1e2", "user_id=alice", "from=%00",
		"from=" + url.QueryEscape(strings.Repeat("9", 8000)), "grp_by=user", "%zz",
	}
	for _, q := range bad {
		t.Run("bad "+q, func(t *testing.T) {
			if b := e.get(t, "/admin/spend?"+q, e.admin).WantErrorBody(t, 400); b.Error.Code != "invalid_field" {
				t.Errorf("code %q, want invalid_field", b.Error.Code)
			}
		})
	}
}

func TestFeedPages(t *testing.T) {
	e := newEnv(t, "monitoring")
	var seen []string
	next := ""
	for range 10 {
		var page Feed
		res := e.get(t, "/monitoring/operations/realtime?limit=4&after="+next, e.monitor)
		res.WantStatus(t, 200)
		res.Decode(t, &page)
		for _, o := range page.Data {
			seen = append(seen, o.UserID+"/"+o.CreatedAt.Format(time.DateOnly))
			if o.Model != nil {
				t.Errorf("model_used = %q for a call without a model, want null", *o.Model)
			}
		}
		if next = page.NextAfter; next == "" {
			break
		}
	}
	want := []string{"bob/2026-02-28", "alice/2026-02-28", "bob/2026-03-01", "alice/2026-03-01", "bob/2026-03-02", "alice/2026-03-02"}
	if !slices.Equal(seen, want) {
		t.Errorf("pages %v, want %v (newest first, each once)", seen, want)
	}
	if got := e.store.befores; len(got) != 2 || got[0] != 0 || got[1] != 3 {
		t.Errorf("cursors sent to the store %v, want [0 3]", got)
	}
	for _, q := range []string{"limit=0", "limit=501", "after=3", "after=" + EncodeCursor(0), "after=" + EncodeCursor(-5), "after=" + EncodeCursor(3) + "!", "after=" + url.QueryEscape("op1.3"), "cursor=abc", "after=%FF"} {
		t.Run(q, func(t *testing.T) {
			if b := e.get(t, "/monitoring/operations/realtime?"+q, e.admin).WantErrorBody(t, 400); b.Error.Code != "invalid_field" {
				t.Errorf("code %q", b.Error.Code)
			}
		})
	}
}

func TestSummaryView(t *testing.T) {
	e := newEnv(t, "")
	var s SummaryView
	res := e.get(t, "/admin/spend/summary", e.admin)
	res.WantStatus(t, 200)
	res.Decode(t, &s)
	if s.Date != "2026-03-02" || s.Calls != 6 || s.Spend != 5500 || s.ErrorRate != 0.1667 {
		t.Errorf("summary %+v", s)
	}
	if s.ProviderDistribution["deepseek"] != 0.8333 || s.ProviderDistribution["none"] != 0.1667 || len(s.Providers) != 2 {
		t.Errorf("providers %+v / %+v", s.ProviderDistribution, s.Providers)
	}
	if b := s.Budgets; b.Users != 2 || b.Utilisation != 0.5714 || b.Max != 1.5 || len(b.TopUsers) != 1 || b.TopUsers[0].UserID != "bob" || b.TopUsers[0].Limit != money.MustUSD(20) {
		t.Errorf("budgets %+v", b)
	}
	if b := e.get(t, "/admin/spend/summary?day=2026-03-01", e.admin).WantErrorBody(t, 400); b.Error.Code != "invalid_field" {
		t.Errorf("a parameter the summary does not take: code %q", b.Error.Code)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, id := range []int64{1, 2, 99, 1 << 40, 1<<63 - 1} {
		got, err := DecodeCursor(EncodeCursor(id))
		if err != nil || got != id {
			t.Errorf("DecodeCursor(EncodeCursor(%d)) = %d, %v", id, got, err)
		}
	}
}
