// Package monitorapi is the monitoring API of the budget function: the live operation feed
// (admins and the monitoring role), spend reports and today's summary (admins), and a user's own
// usage history. Every query value is checked here: dates, numbers, the groupings and the feed's
// cursor are parsed, unknown or repeated parameters refused, so nothing unchecked reaches
// Postgres and no typo silently changes what is counted.
package monitorapi

import (
	"context"
	"encoding/base64"
	"github.com/helixhq/helix/shared/monitoring"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
	"github.com/helixhq/helix/shared/ident"
	"github.com/helixhq/helix/shared/money"
)

// Store is what the API reads (shared/postgres/monitorstore implements it).
type Store interface {
	// Recent returns up to limit operations with ids below before (0: the newest), newest first.
	Recent(ctx context.Context, before int64, limit int) ([]monitoring.Operation, error)
	// Spend returns q's groups.
	Spend(ctx context.Context, q monitoring.Query) ([]monitoring.Group, error)
	// Summary returns the figures of the UTC day that contains day.
	Summary(ctx context.Context, day time.Time) (monitoring.Summary, error)
}

// Register adds the monitoring endpoints to s; now (nil: time.Now) is the clock the default
// ranges and "today" are taken from.
func Register(s *httpapi.Server, st Store, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	h := &handlers{store: st, now: now}
	s.Handle("GET /monitoring/operations/realtime", h.realtime)
	s.HandleAdmin("GET /admin/spend", h.spend)
	s.HandleAdmin("GET /admin/spend/summary", h.summary)
	s.Handle("GET /me/usage", h.usage)
}

type handlers struct {
	store Store
	now   func() time.Time
}

// Limits of the query values.
const (
	defaultFeed   = 50
	maxFeed       = 500
	defaultGroups = 100
	maxGroups     = 1000
	// MaxSpan is the longest range a report covers.
	MaxSpan     = 366 * 24 * time.Hour
	defaultSpan = 7 * 24 * time.Hour
	maxCursor   = 64
)

// params reads a request's query, refusing parameters the endpoint does not take and repeated
// ones: ?user_id= on /me/usage, or ?group=user for ?group_by=, must not be silently ignored.
func params(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fault.New(fault.InvalidField, "the query string is not valid URL encoding")
	}
	takes := "no query parameters"
	if len(allowed) > 0 {
		takes = strings.Join(allowed, ", ")
	}
	for name, vs := range q {
		if !slices.Contains(allowed, name) {
			if ident.Check(name) == nil {
				return nil, fault.Errorf(fault.InvalidField, "unknown query parameter %q (this endpoint takes %s)", name, takes)
			}
			return nil, fault.Errorf(fault.InvalidField, "an unknown query parameter (this endpoint takes %s)", takes)
		}
		if len(vs) > 1 {
			return nil, fault.Errorf(fault.InvalidField, "%s is given more than once", name)
		}
	}
	return q, nil
}

// intValue reads an integer in [lo, hi]; def when absent or empty.
func intValue(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fault.Errorf(fault.InvalidField, "%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

// parseTime reads a date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time.
func parseTime(name, v string) (time.Time, error) {
	if len(v) <= len(time.DateOnly) {
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return t, nil
		}
	} else if len(v) <= 64 {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fault.Errorf(fault.InvalidField, "%s must be a date (YYYY-MM-DD, UTC) or an RFC 3339 time", name)
}

// Range is the half-open [From, To) a report covers.
type Range struct{ From, To time.Time }

// parseRange reads from and to. Absent, to is the end of today (UTC) and from 7 days before to;
// with only one given, the other is 7 days from it. to must be after from, at most MaxSpan.
func parseRange(q url.Values, now time.Time) (Range, error) {
	var rg Range
	var err error
	hasFrom, hasTo := q.Get("from") != "", q.Get("to") != ""
	if hasFrom {
		if rg.From, err = parseTime("from", q.Get("from")); err != nil {
			return Range{}, err
		}
	}
	if hasTo {
		if rg.To, err = parseTime("to", q.Get("to")); err != nil {
			return Range{}, err
		}
	}
	switch {
	case !hasFrom && !hasTo:
		rg.To = now.UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
		rg.From = rg.To.Add(-defaultSpan)
	case !hasTo:
		rg.To = rg.From.Add(defaultSpan)
	case !hasFrom:
		rg.From = rg.To.Add(-defaultSpan)
	}
	if !rg.To.After(rg.From) {
		return Range{}, fault.New(fault.InvalidField, "to must be after from (the range is [from, to))")
	}
	if rg.To.Sub(rg.From) > MaxSpan {
		return Range{}, fault.New(fault.InvalidField, "the range from..to must span at most 366 days")
	}
	return rg, nil
}

// parseGroupBy reads group_by, one of allowed; def when absent.
func parseGroupBy(q url.Values, def monitoring.GroupBy, allowed ...monitoring.GroupBy) (monitoring.GroupBy, error) {
	v := q.Get("group_by")
	if v == "" {
		return def, nil
	}
	if slices.Contains(allowed, monitoring.GroupBy(v)) {
		return monitoring.GroupBy(v), nil
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return "", fault.Errorf(fault.InvalidField, "group_by must be one of %s", strings.Join(names, ", "))
}

// The feed's cursor is opaque to clients: the last row's id, wrapped so nobody builds one by
// hand and it can change form later.
const cursorPrefix = "op1."

// EncodeCursor is the cursor that continues after the operation with this id.
func EncodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(id, 10)))
}

// DecodeCursor reads a cursor from EncodeCursor; "" is the start (0).
func DecodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	bad := fault.New(fault.InvalidField, "after must be a cursor from a previous page's next_after")
	if len(c) > maxCursor {
		return 0, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, bad
	}
	digits, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return 0, bad
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != digits {
		return 0, bad
	}
	return id, nil
}

// OperationView is one operation in the feed.
type OperationView struct {
	OperationID string     `json:"operation_id"`
	UserID      string     `json:"user_id"`
	Model       *string    `json:"model_used"` // null when no model was called
	Cost        money.Nano `json:"cost_usd"`
	LatencyMS   int64      `json:"latency_ms"`
	Success     bool       `json:"success"`
	Fallback    bool       `json:"fallback_used"`
	CreatedAt   time.Time  `json:"created_at"`
}

// Feed is a page of the feed.
type Feed struct {
	Data []OperationView `json:"data"`
	// NextAfter continues with older operations (?after=); absent when this page is the last.
	NextAfter string `json:"next_after,omitempty"`
}

func (h *handlers) realtime(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if !p.Admin && !p.Monitoring {
		return fault.New(fault.Forbidden, "this endpoint needs the admin or the monitoring role")
	}
	q, err := params(r, "limit", "after")
	if err != nil {
		return err
	}
	limit, err := intValue(q, "limit", defaultFeed, 1, maxFeed)
	if err != nil {
		return err
	}
	before, err := DecodeCursor(q.Get("after"))
	if err != nil {
		return err
	}
	ops, err := h.store.Recent(r.Context(), before, limit)
	if err != nil {
		return err
	}
	out := Feed{Data: make([]OperationView, 0, len(ops))}
	for _, o := range ops {
		v := OperationView{OperationID: o.OperationID, UserID: o.UserID, Cost: o.Cost, LatencyMS: o.LatencyMS,
			Success: o.Success, Fallback: o.Fallback, CreatedAt: o.CreatedAt.UTC()}
		if o.Model != "" {
			v.Model = &o.Model
		}
		out.Data = append(out.Data, v)
	}
	if n := len(ops); n == limit && ops[n-1].ID > 1 {
		out.NextAfter = EncodeCursor(ops[n-1].ID)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// GroupView is one group of a report.
type GroupView struct {
	Key          string     `json:"key"`
	Calls        int64      `json:"calls"`
	TotalCost    money.Nano `json:"total_cost_usd"`
	AvgCost      money.Nano `json:"avg_cost_usd"`
	AvgLatencyMS float64    `json:"avg_latency_ms"`
	P95LatencyMS int64      `json:"p95_latency_ms"`
	MaxLatencyMS int64      `json:"max_latency_ms"`
	ErrorRate    float64    `json:"error_rate"`
	FallbackRate float64    `json:"fallback_rate"`
}

// Report is a spend report.
type Report struct {
	UserID  string             `json:"user_id,omitempty"` // /me/usage: the caller
	GroupBy monitoring.GroupBy `json:"group_by"`
	From    time.Time          `json:"from"`
	To      time.Time          `json:"to"` // exclusive
	Data    []GroupView        `json:"data"`
}

// round keeps a ratio or an average readable: 4 decimals for rates, 1 for milliseconds.
func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func (h *handlers) report(w http.ResponseWriter, r *http.Request, q monitoring.Query) error {
	groups, err := h.store.Spend(r.Context(), q)
	if err != nil {
		return err
	}
	out := Report{UserID: q.UserID, GroupBy: q.By, From: q.From, To: q.To, Data: make([]GroupView, 0, len(groups))}
	for _, g := range groups {
		out.Data = append(out.Data, GroupView{Key: g.Key, Calls: g.Calls, TotalCost: g.Total, AvgCost: g.AvgCost,
			AvgLatencyMS: round(g.AvgLatencyMS, 1), P95LatencyMS: g.P95LatencyMS, MaxLatencyMS: g.MaxLatencyMS,
			ErrorRate: round(g.ErrorRate, 4), FallbackRate: round(g.FallbackRate, 4)})
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// decodeSpend reads /admin/spend's query.
func decodeSpend(q url.Values, now time.Time) (monitoring.Query, error) {
	by, err := parseGroupBy(q, "operation", "operation", "user", "model", "day")
	if err != nil {
		return monitoring.Query{}, err
	}
	rg, err := parseRange(q, now)
	if err != nil {
		return monitoring.Query{}, err
	}
	limit, err := intValue(q, "limit", defaultGroups, 1, maxGroups)
	if err != nil {
		return monitoring.Query{}, err
	}
	return monitoring.Query{By: by, From: rg.From, To: rg.To, Limit: limit}, nil
}

func (h *handlers) spend(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q, err := params(r, "group_by", "from", "to", "limit")
	if err != nil {
		return err
	}
	query, err := decodeSpend(q, h.now())
	if err != nil {
		return err
	}
	return h.report(w, r, query)
}

// decodeUsage reads /me/usage's query for user.
func decodeUsage(q url.Values, user string, now time.Time) (monitoring.Query, error) {
	by, err := parseGroupBy(q, "day", "day", "operation")
	if err != nil {
		return monitoring.Query{}, err
	}
	rg, err := parseRange(q, now)
	if err != nil {
		return monitoring.Query{}, err
	}
	// A year of days, or every operation: under maxGroups either way.
	return monitoring.Query{By: by, From: rg.From, To: rg.To, UserID: user, Limit: maxGroups}, nil
}

// usage is the caller's own history: the user is always the token's, never a parameter.
func (h *handlers) usage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q, err := params(r, "group_by", "from", "to")
	if err != nil {
		return err
	}
	query, err := decodeUsage(q, p.UserID, h.now())
	if err != nil {
		return err
	}
	return h.report(w, r, query)
}

// SummaryView is today at a glance.
type SummaryView struct {
	Date      string     `json:"date"`
	Calls     int64      `json:"calls"`
	Spend     money.Nano `json:"total_spend_usd"`
	ErrorRate float64    `json:"error_rate"`
	Budgets   BudgetView `json:"budget_utilisation"`
	// ProviderDistribution is each provider's share of the day's calls ("none": refused before
	// any provider was called).
	ProviderDistribution map[string]float64 `json:"provider_distribution"`
	Providers            []ProviderView     `json:"providers"`
}

// BudgetView is the budgets of the users who spent something today.
type BudgetView struct {
	Users       int64            `json:"users"`
	Spent       money.Nano       `json:"spent_usd"`
	Limit       money.Nano       `json:"limit_usd"`
	Utilisation float64          `json:"utilisation"`
	OverWarning int64            `json:"users_over_warning"`
	AtLimit     int64            `json:"users_at_limit"`
	Max         float64          `json:"max_utilisation"`
	TopUsers    []UserBudgetView `json:"top_users"`
}

// UserBudgetView is one user's day.
type UserBudgetView struct {
	UserID      string     `json:"user_id"`
	Spent       money.Nano `json:"spent_usd"`
	Limit       money.Nano `json:"limit_usd"`
	Utilisation float64    `json:"utilisation"`
}

// ProviderView is a provider's calls today.
type ProviderView struct {
	Provider string  `json:"provider"`
	Calls    int64   `json:"calls"`
	Share    float64 `json:"share"`
}

func (h *handlers) summary(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if _, err := params(r); err != nil {
		return err
	}
	s, err := h.store.Summary(r.Context(), h.now())
	if err != nil {
		return err
	}
	out := SummaryView{Date: s.Date.Format(time.DateOnly), Calls: s.Calls, Spend: s.Spend,
		ProviderDistribution: map[string]float64{}, Providers: make([]ProviderView, 0, len(s.Providers))}
	if s.Calls > 0 {
		out.ErrorRate = round(float64(s.Errors)/float64(s.Calls), 4)
	}
	for _, p := range s.Providers {
		name := p.Provider
		if name == "" {
			name = "none"
		}
		out.ProviderDistribution[name] = round(p.Share, 4)
		out.Providers = append(out.Providers, ProviderView{Provider: name, Calls: p.Calls, Share: round(p.Share, 4)})
	}
	b := s.Budgets
	out.Budgets = BudgetView{Users: b.Users, Spent: b.Spent, Limit: b.Limit, Utilisation: round(b.Ratio, 4),
		OverWarning: b.OverWarning, AtLimit: b.AtLimit, Max: round(b.MaxRatio, 4), TopUsers: make([]UserBudgetView, 0, len(b.MostSpending))}
	for _, u := range b.MostSpending {
		out.Budgets.TopUsers = append(out.Budgets.TopUsers, UserBudgetView{UserID: u.UserID, Spent: u.Spent, Limit: u.Limit, Utilisation: round(u.Ratio, 4)})
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}
