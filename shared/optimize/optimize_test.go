package optimize_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/optimize"
)

const usd = money.PerUSD

// The seeded catalog's prices (infra/migrations/00002), per million tokens; a cheaper model that
// is disabled, which must never be proposed; and the emergency model.
var models = []catalog.Model{
	{Key: "deepseek", Provider: "deepseek", Enabled: true, PriceVersion: "deepseek-v3.2@2026-11",
		InputPerMTok: 280_000_000, OutputPerMTok: 420_000_000, CachedInputPerMTok: 28_000_000, CacheWritePerMTok: 280_000_000, CacheWrite1hPerMTok: 280_000_000},
	{Key: "gemini_flash", Provider: "gemini", Enabled: true, PriceVersion: "gemini-2.5-flash-lite@2026-11",
		InputPerMTok: 100_000_000, OutputPerMTok: 400_000_000, CachedInputPerMTok: 10_000_000, CacheWritePerMTok: 100_000_000, CacheWrite1hPerMTok: 100_000_000},
	{Key: "claude", Provider: "anthropic", Enabled: true, Emergency: true,
		InputPerMTok: 1_000_000_000, OutputPerMTok: 5_000_000_000, CachedInputPerMTok: 100_000_000},
	{Key: "cheapo", Provider: "deepseek", Enabled: false, InputPerMTok: 1, OutputPerMTok: 1},
}

func route(op, primary, fallback string) catalog.Route {
	return catalog.Route{OperationID: op, PrimaryModel: primary, FallbackModel: fallback, Enabled: true}
}

func stats(op, model string, calls, ok, latencyEach int64, cost money.Nano, in, cached, out int64) optimize.Stats {
	return optimize.Stats{OperationID: op, Model: model, Calls: calls, Successes: ok, LatencyMS: calls * latencyEach, Cost: cost,
		Tokens: catalog.Usage{InputTokens: in, CachedInputTokens: cached, OutputTokens: out}}
}

// week is a seeded week, every value chosen so the expected numbers below can be worked out by
// hand (they are, in the comments).
func week() optimize.Input {
	return optimize.Input{
		Window: optimize.WindowAt(time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)),
		Stats: []optimize.Stats{
			// email-compose: 100 deepseek calls (98 ok, 400 ms) and 40 gemini fallbacks (39 ok,
			// 450 ms). Tokens 12,000,000 in, 2,500,000 out.
			stats("email-compose", "deepseek", 100, 98, 400, 5*usd, 10_000_000, 0, 2_000_000),
			stats("email-compose", "gemini_flash", 40, 39, 450, 1*usd, 2_000_000, 0, 500_000),
			// email-classify: gemini has only 10 calls here, so the email- kind decides.
			stats("email-classify", "deepseek", 200, 200, 300, 1_500_000_000, 10_000_000, 10_000_000, 1_000_000),
			stats("email-classify", "gemini_flash", 10, 10, 200, 100_000_000, 500_000, 0, 50_000),
			// chat_message: slow (800 ms), no cheaper model has any calls and it has no kind.
			stats("chat_message", "deepseek", 1000, 990, 800, 20*usd, 1_000_000, 0, 1_000_000),
			// calendar-prep: gemini is cheaper but succeeded 30 of 40 (75%) against 49 of 50.
			stats("calendar-prep", "deepseek", 50, 49, 600, 500_000_000, 20_000_000, 0, 0),
			stats("calendar-prep", "gemini_flash", 40, 30, 100, 100_000_000, 1_000_000, 0, 0),
			// analytics-summary: on gemini already (nothing cheaper); 501 ms is slow.
			stats("analytics-summary", "gemini_flash", 100, 100, 501, 2*usd, 100_000, 0, 100_000),
			// task-breakdown: exactly 500 ms is not slow.
			stats("task-breakdown", "deepseek", 10, 10, 500, 3*usd, 10_000, 0, 1_000),
			stats("task-prioritize", "deepseek", 5, 5, 100, 250_000_000, 1_000, 0, 100),
		},
		OpSpend: []optimize.Spend{
			{Key: "chat_message", Today: 10 * usd, Baseline: 21 * usd},      // 10 > 2×3, 7 above: anomaly
			{Key: "email-compose", Today: 1_500_000_000, Baseline: 0},       // 1.5 above nothing: anomaly
			{Key: "task-breakdown", Today: 900_000_000, Baseline: 0},        // below the $1 floor
			{Key: "analytics-summary", Today: 6 * usd, Baseline: 21 * usd},  // exactly 2×3: not above
			{Key: "calendar-prep", Today: 500_000_000, Baseline: 7_000_000}, // 0.5 is above 2×0.001 but under the floor
		},
		UserSpend: []optimize.Spend{
			{Key: "alice", Today: 8 * usd, Baseline: 7 * usd},            // 8 > 2×1, 7 above
			{Key: "bob", Today: 2_500_000_000, Baseline: 7 * usd},        // 2.5 > 2×1, 1.5 above
			{Key: "carol", Today: 999_999_999, Baseline: 0},              // a nano under the floor
			{Key: "dave", Today: 2_000_000_000, Baseline: 7_000_000_000}, // exactly 2×1
		},
		Models: models,
		Routes: []catalog.Route{
			route("email-compose", "deepseek", "gemini_flash"),
			route("email-classify", "deepseek", "gemini_flash"),
			route("chat_message", "deepseek", "gemini_flash"),
			route("calendar-prep", "deepseek", "gemini_flash"),
			route("analytics-summary", "gemini_flash", "deepseek"),
			route("task-breakdown", "deepseek", "gemini_flash"),
			route("task-prioritize", "deepseek", "gemini_flash"),
		},
	}
}

func TestTopCostlySlowAndAnomalies(t *testing.T) {
	r := optimize.Analyze(week())
	if r.Day != "2026-12-02" {
		t.Errorf("day %q", r.Day)
	}
	wantTop := []optimize.Costly{
		{OperationID: "chat_message", Calls: 1000, Cost: 20 * usd},
		{OperationID: "email-compose", Calls: 140, Cost: 6 * usd},
		{OperationID: "task-breakdown", Calls: 10, Cost: 3 * usd},
		{OperationID: "analytics-summary", Calls: 100, Cost: 2 * usd},
		{OperationID: "email-classify", Calls: 210, Cost: 1_600_000_000},
	}
	if !slices.Equal(r.TopCostly, wantTop) {
		t.Errorf("top costly\n got %+v\nwant %+v", r.TopCostly, wantTop)
	}
	wantSlow := []optimize.Slow{
		{OperationID: "chat_message", Calls: 1000, AvgLatencyMS: 800},
		{OperationID: "analytics-summary", Calls: 100, AvgLatencyMS: 501},
	}
	if !slices.Equal(r.Slow, wantSlow) {
		t.Errorf("slow\n got %+v\nwant %+v", r.Slow, wantSlow)
	}
	// Largest excess first; equal excesses by scope, then key.
	wantAnomalies := []optimize.Anomaly{
		{Scope: "operation", Key: "chat_message", Today: 10 * usd, Baseline: 3 * usd},
		{Scope: "user", Key: "alice", Today: 8 * usd, Baseline: 1 * usd},
		{Scope: "operation", Key: "email-compose", Today: 1_500_000_000, Baseline: 0},
		{Scope: "user", Key: "bob", Today: 2_500_000_000, Baseline: 1 * usd},
	}
	if !slices.Equal(r.Anomalies, wantAnomalies) {
		t.Errorf("anomalies\n got %+v\nwant %+v", r.Anomalies, wantAnomalies)
	}
}

func TestModelSwitchSavings(t *testing.T) {
	r := optimize.Analyze(week())
	got := map[string]optimize.Recommendation{}
	for _, rec := range r.Recommendations {
		got[rec.Target] = rec
	}
	if len(got) != 2 {
		t.Fatalf("recommendations for %v, want email-classify and email-compose only", keys(got))
	}

	// email-compose, its own calls: 12,000,000 in and 2,500,000 out cost
	// 12×0.28 + 2.5×0.42 = 3.36 + 1.05 = $4.41 at deepseek and 12×0.10 + 2.5×0.40 = 1.20 + 1.00 =
	// $2.20 at gemini: $2.21 a week, 2.21 × 30/7 = $9.471428571 a month (rounded down).
	c := got["email-compose"]
	if c.MonthlySaving != 9_471_428_571 || c.Evidence.WeeklyCurrent != 4_410_000_000 || c.Evidence.WeeklyCandidate != 2_200_000_000 {
		t.Errorf("email-compose: saving %d, weekly %d → %d", c.MonthlySaving, c.Evidence.WeeklyCurrent, c.Evidence.WeeklyCandidate)
	}
	if c.Evidence.Scope != "operation" || c.Evidence.Current != (optimize.Perf{Model: "deepseek", Calls: 100, Successes: 98, AvgLatencyMS: 400}) ||
		c.Evidence.Candidate != (optimize.Perf{Model: "gemini_flash", Calls: 40, Successes: 39, AvgLatencyMS: 450}) {
		t.Errorf("email-compose evidence %+v", c.Evidence)
	}
	// The fallback was gemini: the two swap.
	if c.Proposal != (optimize.Proposal{PrimaryModel: "gemini_flash", FallbackModel: "deepseek"}) ||
		c.Basis != (optimize.Basis{PrimaryModel: "deepseek", FallbackModel: "gemini_flash"}) {
		t.Errorf("email-compose proposal %+v basis %+v", c.Proposal, c.Basis)
	}
	for _, s := range []string{"gemini_flash the primary model of email-compose instead of deepseek", "$4.41", "$2.2 ", "$9.471428571 a month",
		"98 of 100", "39 of 40", "needed a schema repair 0 and 0 times"} {
		if !strings.Contains(c.Reasoning, s) {
			t.Errorf("email-compose reasoning lacks %q: %s", s, c.Reasoning)
		}
	}

	// email-classify, judged on the email- kind (gemini has 10 calls of its own): deepseek
	// 300 calls, 298 ok, avg 100,000/300 = 333 ms; gemini 50, 49 ok, avg 20,000/50 = 400 ms
	// (within 25% of 333.3: 20,000×300×4 = 24,000,000 ≤ 100,000×50×5 = 25,000,000). Tokens 10,500,000 in,
	// 10,000,000 cached, 1,050,000 out: deepseek 2.94 + 0.28 + 0.441 = $3.661, gemini
	// 1.05 + 0.10 + 0.42 = $1.57; $2.091 a week, 2.091 × 30/7 = $8.961428571 a month.
	k := got["email-classify"]
	if k.MonthlySaving != 8_961_428_571 || k.Evidence.WeeklyCurrent != 3_661_000_000 || k.Evidence.WeeklyCandidate != 1_570_000_000 {
		t.Errorf("email-classify: saving %d, weekly %d → %d", k.MonthlySaving, k.Evidence.WeeklyCurrent, k.Evidence.WeeklyCandidate)
	}
	if k.Evidence.Scope != "kind:email-" || k.Evidence.Current != (optimize.Perf{Model: "deepseek", Calls: 300, Successes: 298, AvgLatencyMS: 333}) ||
		k.Evidence.Candidate != (optimize.Perf{Model: "gemini_flash", Calls: 50, Successes: 49, AvgLatencyMS: 400}) {
		t.Errorf("email-classify evidence %+v", k.Evidence)
	}
	if !strings.Contains(k.Reasoning, "on the email-* operations") {
		t.Errorf("email-classify reasoning does not say it was judged on its kind: %s", k.Reasoning)
	}
}

// The rules' edges, one change to the seeded week each.
func TestModelSwitchRules(t *testing.T) {
	tests := []struct {
		name   string
		change func(*optimize.Input)
		want   bool // email-compose still gets a recommendation
	}{
		{"as seeded", func(*optimize.Input) {}, true},
		{"gemini 2.5 points below on success (39/40 against 100/100)", func(in *optimize.Input) {
			in.Stats[0].Successes = 100
		}, false},
		{"gemini exactly 2 points below (38/40 = 95% against 97%)", func(in *optimize.Input) {
			in.Stats[0].Successes, in.Stats[1].Successes = 97, 38
		}, true},
		{"gemini exactly 25% slower (500 ms against 400)", func(in *optimize.Input) { in.Stats[1].LatencyMS = 40 * 500 }, true},
		{"gemini a millisecond more", func(in *optimize.Input) { in.Stats[1].LatencyMS = 40*500 + 40 }, false},
		{"too few calls of gemini anywhere of the kind", func(in *optimize.Input) {
			in.Stats[1].Calls, in.Stats[1].Successes, in.Stats[1].LatencyMS = 10, 10, 10*450
			in.Stats[3].Calls = 5
		}, false},
		{"gemini repaired exactly 2 points more often (1/40 against 1/200)", func(in *optimize.Input) {
			in.Stats[0].Calls, in.Stats[0].Successes, in.Stats[0].LatencyMS = 200, 196, 200*400
			in.Stats[0].Repaired, in.Stats[1].Repaired = 1, 1
		}, true},
		{"gemini repaired 5 points more often (2/40 against 0/100)", func(in *optimize.Input) {
			in.Stats[1].Repaired = 2
		}, false},
		{"4/100 against 2/40: within 2 points", func(in *optimize.Input) {
			in.Stats[0].Repaired, in.Stats[1].Repaired = 4, 2
		}, true},
		{"the route disabled", func(in *optimize.Input) { in.Routes[0].Enabled = false }, false},
		{"gemini disabled", func(in *optimize.Input) { in.Models[1].Enabled = false }, false},
		{"a saving under $1 a month", func(in *optimize.Input) {
			in.Stats[0].Tokens = catalog.Usage{InputTokens: 100_000}
			in.Stats[1].Tokens = catalog.Usage{}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := week()
			in.Models = slices.Clone(models)
			tt.change(&in)
			found := false
			for _, r := range optimize.Analyze(in).Recommendations {
				if r.Target == "email-compose" {
					found = true
					if r.Proposal.PrimaryModel == "cheapo" || r.Proposal.PrimaryModel == "claude" {
						t.Errorf("proposed %s", r.Proposal.PrimaryModel)
					}
				}
			}
			if found != tt.want {
				t.Errorf("recommended %v, want %v", found, tt.want)
			}
		})
	}
}

func TestWindowAndKind(t *testing.T) {
	w := optimize.WindowAt(time.Date(2026, 12, 2, 6, 0, 0, 0, time.FixedZone("x", 3600)))
	if !w.From.Equal(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)) || !w.Today.Equal(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)) || w.Elapsed() != 5*time.Hour {
		t.Errorf("window %+v elapsed %s", w, w.Elapsed())
	}
	for op, want := range map[string]string{"email-compose": "email-", "chat_message": "", "-x": "", "a-b-c": "a-"} {
		if got := optimize.Kind(op); got != want {
			t.Errorf("Kind(%q) = %q, want %q", op, got, want)
		}
	}
}

func TestStale(t *testing.T) {
	b := optimize.Basis{PrimaryModel: "deepseek", FallbackModel: "gemini_flash"}
	p := optimize.Proposal{PrimaryModel: "gemini_flash", FallbackModel: "deepseek"}
	ok := models[1]
	tests := []struct {
		name  string
		rt    catalog.Route
		model catalog.Model
		known bool
		want  string
	}{
		{"unchanged", route("x", "deepseek", "gemini_flash"), ok, true, ""},
		{"primary changed", route("x", "claude", "gemini_flash"), ok, true, "primary model is now claude"},
		{"fallback changed", route("x", "deepseek", ""), ok, true, "fallback model is now"},
		{"model gone", route("x", "deepseek", "gemini_flash"), catalog.Model{}, false, "no longer exists"},
		{"model disabled", route("x", "deepseek", "gemini_flash"), models[3], true, "disabled"},
	}
	for _, tt := range tests {
		got := optimize.Stale(b, p, tt.rt, tt.model, tt.known)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: Stale = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
