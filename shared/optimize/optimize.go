// Package optimize is the daily optimizer's analysis (the optimize function, 06:00 UTC): the most
// costly operations of the last seven days, the slow ones, spend anomalies of today against the
// same hours of the week before, and model-switch recommendations priced from each operation's
// own token mix at current prices. It is pure: the store gives it aggregated numbers, it gives
// back a report and the recommendations, and every rule is a named constant.
package optimize

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/helixhq/helix/shared/auditlog"
	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/money"
)

// The rules. Rates are compared exactly (as fractions), never through rounded percentages.
const (
	// Days is the analysis window: the last Days whole UTC days before the run's day.
	Days = 7
	// TopCount is how many of the most costly operations the report lists.
	TopCount = 5
	// SlowAverageMS: an operation whose average latency over the window is above this is slow.
	SlowAverageMS = 500

	// AnomalyFactor and AnomalyFloor: today's spend so far (an operation's, a user's) is an
	// anomaly when it is more than AnomalyFactor times its baseline (the average of the same
	// hours of the Days days before) and at least AnomalyFloor above it, so that a cent against
	// a tenth of a cent is not one.
	AnomalyFactor = 2
	AnomalyFloor  = money.PerUSD // $1

	// A model switch needs evidence: at least MinCalls calls of the current model and of the
	// candidate on the operation itself, or else on the operations of its kind (same prefix,
	// "email-"); a candidate whose success rate is at most MaxSuccessRateDropBP basis points
	// below the current model's and whose average latency is at most MaxLatencyRatioNum /
	// MaxLatencyRatioDen of it; and a saving of at least MinMonthlySaving.
	MinCalls             = 30
	MaxSuccessRateDropBP = 200 // 2 percentage points
	MaxLatencyRatioNum   = 5   // 5/4: at most 25% slower on average
	MaxLatencyRatioDen   = 4
	// MaxRepairRateRiseBP: the candidate's schema-repair rate (answers that failed their JSON
	// schema and needed a repair call) at most this many basis points above the current model's.
	MaxRepairRateRiseBP = 200
	MinMonthlySaving    = money.PerUSD // $1 a month
	// KindSeparator ends an operation's kind: "email-compose" is of kind "email-". Operations
	// without it (chat_message) have no kind and are judged on their own traffic only.
	KindSeparator = "-"
)

// TypeModelSwitch is a recommendation to make another model an operation's primary.
const TypeModelSwitch = "model_switch"

// AuditKind is the audit entry a run records (routed to #helix-alerts); its payload is a Summary.
const AuditKind auditlog.Kind = "optimizer"

// Window is what a run analyses: the Days whole UTC days [From, Today) and today so far
// [Today, Now). The spend baseline is the same hours, [day, day+Elapsed), of each of those days.
type Window struct {
	From, Today, Now time.Time
}

// WindowAt is the window of a run at now.
func WindowAt(now time.Time) Window {
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return Window{From: today.AddDate(0, 0, -Days), Today: today, Now: now}
}

// Elapsed is how much of today the run has seen.
func (w Window) Elapsed() time.Duration { return w.Now.Sub(w.Today) }

// Day is the run's UTC day, YYYY-MM-DD.
func (w Window) Day() string { return w.Today.Format(time.DateOnly) }

// Stats are one model's calls of one operation over the window [From, Today).
type Stats struct {
	OperationID string
	Model       string // "" for calls that reached no model
	Calls       int64
	Successes   int64
	Repaired    int64 // answers that failed their schema and were repaired (a "<request id>-repair" call)
	LatencyMS   int64 // the sum
	Cost        money.Nano
	Tokens      catalog.Usage // the sums
}

// Spend is an operation's or a user's spend today so far and over the same hours of the Days
// days before (the sum of the Days days, not yet averaged).
type Spend struct {
	Key      string
	Today    money.Nano
	Baseline money.Nano
}

// Input is what the analysis reads.
type Input struct {
	Window    Window
	Stats     []Stats
	OpSpend   []Spend
	UserSpend []Spend
	Models    []catalog.Model
	Routes    []catalog.Route
}

// Costly is one of the most costly operations.
type Costly struct {
	OperationID string     `json:"operation_id"`
	Calls       int64      `json:"calls"`
	Cost        money.Nano `json:"cost_usd"`
}

// Slow is an operation whose average latency is above SlowAverageMS.
type Slow struct {
	OperationID  string `json:"operation_id"`
	Calls        int64  `json:"calls"`
	AvgLatencyMS int64  `json:"avg_latency_ms"` // rounded down
}

// Anomaly is today's spend of an operation or a user far above its baseline.
type Anomaly struct {
	Scope    string     `json:"scope"` // operation or user
	Key      string     `json:"key"`
	Today    money.Nano `json:"today_usd"`
	Baseline money.Nano `json:"baseline_usd"` // the Days days' average for the same hours, rounded down
}

// Perf is a model's record in the scope a switch was judged on.
type Perf struct {
	Model        string `json:"model"`
	Calls        int64  `json:"calls"`
	Successes    int64  `json:"successes"`
	Repaired     int64  `json:"schema_repairs"`
	AvgLatencyMS int64  `json:"avg_latency_ms"` // rounded down
}

// Evidence is what a model switch rests on.
type Evidence struct {
	// Scope is "operation" (the operation's own calls) or "kind:<prefix>" (its kind's).
	Scope     string `json:"scope"`
	Current   Perf   `json:"current"`
	Candidate Perf   `json:"candidate"`
	// Tokens are the operation's tokens over the window, all models, that the prices apply to.
	InputTokens        int64      `json:"input_tokens"`
	CachedInputTokens  int64      `json:"cached_input_tokens"`
	CacheWriteTokens   int64      `json:"cache_write_tokens"`
	CacheWrite1hTokens int64      `json:"cache_write_1h_tokens"`
	OutputTokens       int64      `json:"output_tokens"` // reasoning included
	WeeklyCurrent      money.Nano `json:"weekly_cost_current_usd"`
	WeeklyCandidate    money.Nano `json:"weekly_cost_candidate_usd"`
	CurrentPrice       string     `json:"current_price_version"`
	CandidatePrice     string     `json:"candidate_price_version"`
}

// Proposal is what approving a model switch sets on the route.
type Proposal struct {
	PrimaryModel  string `json:"primary_model"`
	FallbackModel string `json:"fallback_model"`
}

// Basis is the route as the recommendation saw it; a route that changed since makes it stale.
type Basis struct {
	PrimaryModel  string `json:"primary_model"`
	FallbackModel string `json:"fallback_model"`
}

// Recommendation is a proposed change.
type Recommendation struct {
	Type          string
	Target        string // the operation
	Proposal      Proposal
	MonthlySaving money.Nano
	Evidence      Evidence
	Reasoning     string
	Basis         Basis
}

// Report is a run's analysis.
type Report struct {
	Day             string           `json:"day"`
	TopCostly       []Costly         `json:"top_costly"`
	Slow            []Slow           `json:"slow"`
	Anomalies       []Anomaly        `json:"anomalies"`
	Recommendations []Recommendation `json:"-"`
}

// Analyze computes the report.
func Analyze(in Input) Report {
	r := Report{Day: in.Window.Day(), TopCostly: []Costly{}, Slow: []Slow{}, Anomalies: []Anomaly{}}
	byOp := map[string]*Stats{}
	var ops []string
	for _, s := range in.Stats {
		t := byOp[s.OperationID]
		if t == nil {
			t = &Stats{OperationID: s.OperationID}
			byOp[s.OperationID] = t
			ops = append(ops, s.OperationID)
		}
		t.Calls += s.Calls
		t.Successes += s.Successes
		t.LatencyMS += s.LatencyMS
		t.Cost += s.Cost
		t.Tokens = addUsage(t.Tokens, s.Tokens)
	}
	slices.Sort(ops)

	for _, op := range ops {
		t := byOp[op]
		r.TopCostly = append(r.TopCostly, Costly{OperationID: op, Calls: t.Calls, Cost: t.Cost})
		if t.Calls > 0 && t.LatencyMS > SlowAverageMS*t.Calls {
			r.Slow = append(r.Slow, Slow{OperationID: op, Calls: t.Calls, AvgLatencyMS: t.LatencyMS / t.Calls})
		}
	}
	slices.SortStableFunc(r.TopCostly, func(a, b Costly) int { return cmp.Compare(b.Cost, a.Cost) })
	r.TopCostly = r.TopCostly[:min(TopCount, len(r.TopCostly))]
	slices.SortStableFunc(r.Slow, func(a, b Slow) int { return cmp.Compare(b.AvgLatencyMS, a.AvgLatencyMS) })

	r.Anomalies = append(append(r.Anomalies, anomalies("operation", in.OpSpend)...), anomalies("user", in.UserSpend)...)
	slices.SortStableFunc(r.Anomalies, func(a, b Anomaly) int {
		return cmp.Or(cmp.Compare(b.Today-b.Baseline, a.Today-a.Baseline), cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.Key, b.Key))
	})

	models := map[string]catalog.Model{}
	for _, m := range in.Models {
		models[m.Key] = m
	}
	routes := slices.Clone(in.Routes)
	slices.SortFunc(routes, func(a, b catalog.Route) int { return cmp.Compare(a.OperationID, b.OperationID) })
	for _, rt := range routes {
		if rec, ok := modelSwitch(rt, byOp[rt.OperationID], in.Stats, models, in.Models); ok {
			r.Recommendations = append(r.Recommendations, rec)
		}
	}
	return r
}

// anomalies are the spends today above AnomalyFactor times their baseline average and at least
// AnomalyFloor above it. today > factor × (baseline / Days) is compared as today × Days > factor
// × baseline, so no rounding decides it.
func anomalies(scope string, spends []Spend) []Anomaly {
	var out []Anomaly
	for _, s := range spends {
		avg := s.Baseline / Days
		if s.Today*Days > AnomalyFactor*s.Baseline && s.Today-avg >= AnomalyFloor {
			out = append(out, Anomaly{Scope: scope, Key: s.Key, Today: s.Today, Baseline: avg})
		}
	}
	return out
}

// Kind is an operation's kind: its prefix through KindSeparator ("email-"), or "" for none.
func Kind(operationID string) string {
	if i := strings.Index(operationID, KindSeparator); i > 0 {
		return operationID[:i+len(KindSeparator)]
	}
	return ""
}

// perfOf sums a model's calls over the stats that match.
func perfOf(stats []Stats, model string, match func(op string) bool) Perf {
	p := Perf{Model: model}
	var latency int64
	for _, s := range stats {
		if s.Model == model && match(s.OperationID) {
			p.Calls += s.Calls
			p.Successes += s.Successes
			p.Repaired += s.Repaired
			latency += s.LatencyMS
		}
	}
	if p.Calls > 0 {
		p.AvgLatencyMS = latency / p.Calls
	}
	return p
}

// comparable reports whether cand does the job as well as cur: a success rate at most
// MaxSuccessRateDropBP basis points lower, a schema-repair rate at most MaxRepairRateRiseBP
// higher, an average latency at most MaxLatencyRatio of cur's. All are compared as exact
// fractions.
func comparable(cur, cand Perf, curLatency, candLatency int64) bool {
	// cand.S/cand.N >= cur.S/cur.N - drop/10000
	okSuccess := cand.Successes*cur.Calls*10000 >= cur.Successes*cand.Calls*10000-MaxSuccessRateDropBP*cur.Calls*cand.Calls
	// (candLatency/cand.N) <= (curLatency/cur.N) × num/den
	okLatency := candLatency*cur.Calls*MaxLatencyRatioDen <= curLatency*cand.Calls*MaxLatencyRatioNum
	// cand.R/cand.N <= cur.R/cur.N + rise/10000
	okRepair := cand.Repaired*cur.Calls*10000 <= cur.Repaired*cand.Calls*10000+MaxRepairRateRiseBP*cur.Calls*cand.Calls
	return okSuccess && okLatency && okRepair
}

func latencySum(stats []Stats, model string, match func(string) bool) int64 {
	var sum int64
	for _, s := range stats {
		if s.Model == model && match(s.OperationID) {
			sum += s.LatencyMS
		}
	}
	return sum
}

// modelSwitch is the best switch for a route, if one passes every rule: the candidate (an
// enabled, routable, non-emergency model other than the primary) with the largest saving on the
// operation's own token mix at current prices.
func modelSwitch(rt catalog.Route, total *Stats, stats []Stats, models map[string]catalog.Model, list []catalog.Model) (Recommendation, bool) {
	cur, ok := models[rt.PrimaryModel]
	if !rt.Enabled || total == nil || !ok {
		return Recommendation{}, false
	}
	curCost, ok := cur.Cost(total.Tokens)
	if !ok {
		return Recommendation{}, false
	}
	sameOp := func(op string) bool { return op == rt.OperationID }
	kind := Kind(rt.OperationID)
	sameKind := func(op string) bool { return kind != "" && Kind(op) == kind }

	var best Recommendation
	found := false
	for _, cand := range list {
		if cand.Key == cur.Key || !cand.Usable() || cand.Emergency {
			continue
		}
		candCost, ok := cand.Cost(total.Tokens)
		if !ok || candCost >= curCost {
			continue
		}
		monthly := (curCost - candCost) * 30 / Days
		if monthly < MinMonthlySaving {
			continue
		}
		scope, match := "operation", sameOp
		curPerf, candPerf := perfOf(stats, cur.Key, match), perfOf(stats, cand.Key, match)
		if curPerf.Calls < MinCalls || candPerf.Calls < MinCalls {
			scope, match = "kind:"+kind, sameKind
			curPerf, candPerf = perfOf(stats, cur.Key, match), perfOf(stats, cand.Key, match)
			if kind == "" || curPerf.Calls < MinCalls || candPerf.Calls < MinCalls {
				continue
			}
		}
		if !comparable(curPerf, candPerf, latencySum(stats, cur.Key, match), latencySum(stats, cand.Key, match)) {
			continue
		}
		if found && monthly <= best.MonthlySaving {
			continue
		}
		fallback := rt.FallbackModel
		if fallback == cand.Key {
			fallback = cur.Key // the two swap: the old primary becomes the fallback
		}
		ev := Evidence{
			Scope: scope, Current: curPerf, Candidate: candPerf,
			InputTokens: total.Tokens.InputTokens, CachedInputTokens: total.Tokens.CachedInputTokens,
			CacheWriteTokens: total.Tokens.CacheWriteTokens, CacheWrite1hTokens: total.Tokens.CacheWrite1hTokens,
			OutputTokens:  total.Tokens.OutputTokens + total.Tokens.ReasoningTokens,
			WeeklyCurrent: curCost, WeeklyCandidate: candCost,
			CurrentPrice: cur.PriceVersion, CandidatePrice: cand.PriceVersion,
		}
		best = Recommendation{
			Type: TypeModelSwitch, Target: rt.OperationID,
			Proposal:      Proposal{PrimaryModel: cand.Key, FallbackModel: fallback},
			MonthlySaving: monthly, Evidence: ev,
			Basis: Basis{PrimaryModel: rt.PrimaryModel, FallbackModel: rt.FallbackModel},
		}
		best.Reasoning = reasoning(rt, best)
		found = true
	}
	return best, found
}

// reasoning says in words why a switch is proposed.
func reasoning(rt catalog.Route, r Recommendation) string {
	e := r.Evidence
	where := "on " + rt.OperationID + " itself"
	if e.Scope != "operation" {
		where = fmt.Sprintf("on the %s* operations (%s has fewer than %d calls of each model)", strings.TrimPrefix(e.Scope, "kind:"), rt.OperationID, MinCalls)
	}
	fb := ""
	if r.Proposal.FallbackModel != rt.FallbackModel {
		fb = fmt.Sprintf(", with %s as its fallback", r.Proposal.FallbackModel)
	}
	return fmt.Sprintf("Make %s the primary model of %s instead of %s%s. Over the last %d days its tokens "+
		"(%d input, %d cached input, %d output) cost $%s at %s's current prices (%s) and would have cost $%s at %s's (%s): "+
		"$%s a week, about $%s a month. Judged %s: %s succeeded %d of %d calls (%s) averaging %d ms, "+
		"%s %d of %d (%s) averaging %d ms, within %d percentage points of success and %d%% of latency; "+
		"their answers needed a schema repair %d and %d times, within %d percentage points.",
		r.Proposal.PrimaryModel, rt.OperationID, rt.PrimaryModel, fb, Days,
		e.InputTokens, e.CachedInputTokens, e.OutputTokens,
		e.WeeklyCurrent.String(), rt.PrimaryModel, e.CurrentPrice, e.WeeklyCandidate.String(), r.Proposal.PrimaryModel, e.CandidatePrice,
		(e.WeeklyCurrent - e.WeeklyCandidate).String(), r.MonthlySaving.String(), where,
		e.Current.Model, e.Current.Successes, e.Current.Calls, percent(e.Current), e.Current.AvgLatencyMS,
		e.Candidate.Model, e.Candidate.Successes, e.Candidate.Calls, percent(e.Candidate), e.Candidate.AvgLatencyMS,
		MaxSuccessRateDropBP/100, (MaxLatencyRatioNum-MaxLatencyRatioDen)*100/MaxLatencyRatioDen,
		e.Current.Repaired, e.Candidate.Repaired, MaxRepairRateRiseBP/100)
}

func percent(p Perf) string {
	if p.Calls == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", float64(p.Successes)*100/float64(p.Calls))
}

func addUsage(a, b catalog.Usage) catalog.Usage {
	return catalog.Usage{
		InputTokens: a.InputTokens + b.InputTokens, CachedInputTokens: a.CachedInputTokens + b.CachedInputTokens,
		CacheWriteTokens: a.CacheWriteTokens + b.CacheWriteTokens, CacheWrite1hTokens: a.CacheWrite1hTokens + b.CacheWrite1hTokens,
		OutputTokens: a.OutputTokens + b.OutputTokens, ReasoningTokens: a.ReasoningTokens + b.ReasoningTokens,
	}
}

// Stale says why a model switch no longer applies to the route as it is now, or "" if it does.
func Stale(b Basis, p Proposal, rt catalog.Route, target catalog.Model, targetKnown bool) string {
	switch {
	case rt.PrimaryModel != b.PrimaryModel:
		return fmt.Sprintf("the route's primary model is now %s; the recommendation was made when it was %s", rt.PrimaryModel, b.PrimaryModel)
	case rt.FallbackModel != b.FallbackModel:
		return fmt.Sprintf("the route's fallback model is now %q; the recommendation was made when it was %q", rt.FallbackModel, b.FallbackModel)
	case !targetKnown:
		return fmt.Sprintf("model %s no longer exists", p.PrimaryModel)
	case !target.Usable():
		return fmt.Sprintf("model %s is disabled or not served by any provider", p.PrimaryModel)
	}
	return ""
}

// Decay is what the run found of the routines (layer 5 insights): counts only, never content.
// Strength fades at read time (memory.Insight.Strength); the run persists nothing, because
// writing the faded value back would fade it twice.
type Decay struct {
	Routines   int64 `json:"routines"`    // active layer-5 insights
	Faded      int64 `json:"faded"`       // below memory.FadedStrength: out of chat prompts
	NewlyFaded int64 `json:"newly_faded"` // crossed below it in the last day
	Reinforced int64 `json:"reinforced"`  // reinforced in the last day: back at full weight
}

// Summary is the audit payload of a run (AuditKind), posted to #helix-alerts.
type Summary struct {
	Day       string    `json:"day"`
	TopCostly []Costly  `json:"top_costly"`
	Slow      []Slow    `json:"slow"`
	Anomalies []Anomaly `json:"anomalies"`
	// Recommendations: new ones, pending ones refreshed, pending ones made stale this run.
	NewRecommendations       int        `json:"new_recommendations"`
	RefreshedRecommendations int        `json:"refreshed_recommendations"`
	StaleRecommendations     int        `json:"stale_recommendations"`
	MonthlySaving            money.Nano `json:"estimated_monthly_saving_usd"` // of the pending ones proposed this run
	Decay                    Decay      `json:"memory_decay"`
}

// Stored is a recommendation as helix_recommendations keeps it, with its id and decision.
type Stored struct {
	ID            string
	Type          string
	Target        string
	Proposal      json.RawMessage
	MonthlySaving money.Nano
	Evidence      json.RawMessage
	Reasoning     string
	Basis         json.RawMessage
	Status        string
	StaleReason   string
	AnalysisDay   time.Time
	RefreshedDay  time.Time
	CreatedAt     time.Time
	DecidedBy     string
	DecidedAt     time.Time
	DecisionNote  string
}

// Statuses.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRejected = "rejected"
	StatusStale    = "stale"
	StatusApplied  = "applied"
)

// ErrNotFound: no recommendation has the id.
var ErrNotFound = fault.New(fault.RecommendationNotFound, "no such recommendation")
