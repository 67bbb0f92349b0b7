package catalog_test

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/money"
)

// Seeded models (infra/migrations/00002_seed_catalog.sql).
var (
	deepseek = catalog.Model{
		Key: "deepseek", Provider: "deepseek", APIModel: "deepseek-chat", DisplayName: "DeepSeek V3.2",
		InputPerMTok: 280_000_000, OutputPerMTok: 420_000_000, CachedInputPerMTok: 28_000_000,
		PriceVersion: "deepseek-v3.2@2026-11", Enabled: true,
	}
	gemini = catalog.Model{
		Key: "gemini_flash", Provider: "gemini", APIModel: "gemini-2.5-flash-lite", DisplayName: "Gemini 2.5 Flash-Lite",
		InputPerMTok: 100_000_000, OutputPerMTok: 400_000_000, CachedInputPerMTok: 10_000_000,
		PriceVersion: "gemini-2.5-flash-lite@2026-11", Enabled: true,
	}
	claude = catalog.Model{
		Key: "claude", Provider: "anthropic", APIModel: "claude-haiku-4-5", DisplayName: "Claude Haiku 4.5",
		InputPerMTok: 1_000_000_000, OutputPerMTok: 5_000_000_000, CachedInputPerMTok: 100_000_000,
		CacheWritePerMTok: 1_250_000_000, CacheWrite1hPerMTok: 2_000_000_000,
		PriceVersion: "claude-haiku-4.5@2026-11", Enabled: true, Emergency: true,
	}
	speech = catalog.Model{
		Key: "speech", Provider: catalog.NoProvider, DisplayName: "Speech model (no provider configured)",
		PriceVersion: "unpriced",
	}
)

func seededModels() map[string]catalog.Model {
	return map[string]catalog.Model{
		deepseek.Key: deepseek, gemini.Key: gemini, claude.Key: claude, speech.Key: speech,
	}
}

func TestModelCost(t *testing.T) {
	tests := []struct {
		name   string
		model  catalog.Model
		usage  catalog.Usage
		want   money.Nano
		wantOK bool
	}{
		{name: "no usage", model: deepseek, wantOK: true},
		// 1000×280 + 500×420 = 280000 + 210000.
		{name: "deepseek plain", model: deepseek, usage: catalog.Usage{InputTokens: 1000, OutputTokens: 500}, want: 490_000, wantOK: true},
		// 1000×280 + 4000×28 + 500×420 = 280000 + 112000 + 210000.
		{name: "deepseek with cache hits", model: deepseek, usage: catalog.Usage{InputTokens: 1000, CachedInputTokens: 4000, OutputTokens: 500}, want: 602_000, wantOK: true},
		// Reasoning is billed at the output price: 1000×280 + (500+300)×420 = 280000 + 336000.
		{name: "deepseek with reasoning", model: deepseek, usage: catalog.Usage{InputTokens: 1000, OutputTokens: 500, ReasoningTokens: 300}, want: 616_000, wantOK: true},
		// All four: 10×280 + 3×28 + 7×420 + 11×420 = 2800 + 84 + 2940 + 4620 = 10444.
		{name: "deepseek all components", model: deepseek, usage: catalog.Usage{InputTokens: 10, CachedInputTokens: 3, OutputTokens: 7, ReasoningTokens: 11}, want: 10_444, wantOK: true},
		// Gemini: 1×100 + 1×10 + 1×400 = 510.
		{name: "gemini one of each", model: gemini, usage: catalog.Usage{InputTokens: 1, CachedInputTokens: 1, OutputTokens: 1}, want: 510, wantOK: true},
		// Claude: 2000×1000 + 10000×100 + 1000×5000 + 200×5000 = 2e6 + 1e6 + 5e6 + 1e6.
		{name: "claude with cache and reasoning", model: claude, usage: catalog.Usage{InputTokens: 2000, CachedInputTokens: 10_000, OutputTokens: 1000, ReasoningTokens: 200}, want: 9_000_000, wantOK: true},
		// Rounded up once on the sum: 1 cached token at 10 nano/1M... use a price with fractions:
		// 3 tokens at 333 333 333 → 999.999999 → 1000, plus 1 cached at 1 → sum 999.999999+0.000001 = 1000 exactly.
		{name: "sum rounded once", model: catalog.Model{InputPerMTok: 333_333_333, CachedInputPerMTok: 1}, usage: catalog.Usage{InputTokens: 3, CachedInputTokens: 1}, want: 1000, wantOK: true},
		{name: "fraction rounds up", model: catalog.Model{InputPerMTok: 1}, usage: catalog.Usage{InputTokens: 1}, want: 1, wantOK: true},
		{name: "free model", model: speech, usage: catalog.Usage{InputTokens: 1000, OutputTokens: 1000}, want: 0, wantOK: true},
		// Claude's cache writes: 5-minute at 1.25×, 1-hour at 2× the input price:
		// 100×1000 + 1000×1250 + 2000×2000 + 50×5000 = 100000 + 1250000 + 4000000 + 250000.
		{name: "claude cache writes", model: claude, usage: catalog.Usage{InputTokens: 100, CacheWriteTokens: 1000, CacheWrite1hTokens: 2000, OutputTokens: 50}, want: 5_600_000, wantOK: true},
		{name: "negative cache write", model: claude, usage: catalog.Usage{CacheWriteTokens: -1}, wantOK: false},
		{name: "negative 1-hour cache write", model: claude, usage: catalog.Usage{CacheWrite1hTokens: -1}, wantOK: false},
		{name: "negative input", model: deepseek, usage: catalog.Usage{InputTokens: -1}, wantOK: false},
		{name: "negative cached", model: deepseek, usage: catalog.Usage{CachedInputTokens: -1}, wantOK: false},
		{name: "negative output", model: deepseek, usage: catalog.Usage{OutputTokens: -1}, wantOK: false},
		{name: "negative reasoning alone", model: deepseek, usage: catalog.Usage{ReasoningTokens: -1}, wantOK: false},
		{name: "output plus reasoning overflows", model: deepseek, usage: catalog.Usage{OutputTokens: math.MaxInt64, ReasoningTokens: 1}, wantOK: false},
		{name: "absurd usage", model: claude, usage: catalog.Usage{InputTokens: math.MaxInt64}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.model.Cost(tt.usage)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("Cost(%+v) = %d, %v; want %d, %v", tt.usage, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// Cost documents "ok is false for negative ... usage", but it adds OutputTokens and
// ReasoningTokens before CostOf sees them, so a negative component hidden by a larger positive
// one is accepted and lowers the bill.
func TestModelCostRejectsNegativeComponentInSum(t *testing.T) {
	got, ok := deepseek.Cost(catalog.Usage{OutputTokens: 100, ReasoningTokens: -50})
	if ok {
		t.Fatalf("Cost with ReasoningTokens=-50 = %d, true; want ok=false", got)
	}
}

// A worst case prices input at the dearest an input token can be: a cache write above the input
// price counts; one below it (or none) does not.
func TestMaxInputPerMTok(t *testing.T) {
	for _, tt := range []struct {
		m    catalog.Model
		want money.Nano
	}{
		{claude, 2_000_000_000},
		{deepseek, 280_000_000},
		{catalog.Model{InputPerMTok: 5, CacheWritePerMTok: 3, CacheWrite1hPerMTok: 4}, 5},
		{catalog.Model{InputPerMTok: 5, CacheWritePerMTok: 7}, 7},
	} {
		if got := tt.m.MaxInputPerMTok(); got != tt.want {
			t.Errorf("%+v: MaxInputPerMTok = %d, want %d", tt.m, got, tt.want)
		}
	}
}

func TestModelUsable(t *testing.T) {
	tests := []struct {
		name string
		m    catalog.Model
		want bool
	}{
		{"enabled with provider", deepseek, true},
		{"disabled", catalog.Model{Provider: "deepseek"}, false},
		{"no provider", catalog.Model{Enabled: true, Provider: catalog.NoProvider}, false},
		{"empty provider", catalog.Model{Enabled: true}, false},
		{"speech placeholder", speech, false},
	}
	for _, tt := range tests {
		if got := tt.m.Usable(); got != tt.want {
			t.Errorf("%s: Usable() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCriticalityValid(t *testing.T) {
	for _, c := range []catalog.Criticality{catalog.Low, catalog.Medium, catalog.High} {
		if !c.Valid() {
			t.Errorf("%q is not valid", c)
		}
	}
	for _, c := range []catalog.Criticality{"", "low", "CRITICAL", "HIGH "} {
		if c.Valid() {
			t.Errorf("%q is valid", c)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func baseRoute() catalog.Route {
	return catalog.Route{
		OperationID: "email-compose", OperationName: "Email compose",
		PrimaryModel: "deepseek", FallbackModel: "gemini_flash", Enabled: true,
		Criticality: catalog.Low, MaxOutputTokens: 1024, AvgInputTokens: 300, AvgOutputTokens: 350,
		AllowEmergency: true,
	}
}

func TestRouteChangeApplyTo(t *testing.T) {
	tests := []struct {
		name    string
		change  catalog.RouteChange
		start   func(*catalog.Route)
		wantErr error
		want    func(*catalog.Route) // edits baseRoute() into the expected result
	}{
		{name: "empty change", change: catalog.RouteChange{}, want: func(*catalog.Route) {}},
		{name: "switch primary and fallback", change: catalog.RouteChange{PrimaryModel: ptr("gemini_flash"), FallbackModel: ptr("deepseek")},
			want: func(r *catalog.Route) { r.PrimaryModel, r.FallbackModel = "gemini_flash", "deepseek" }},
		{name: "new primary to a third model", change: catalog.RouteChange{PrimaryModel: ptr("claude")},
			want: func(r *catalog.Route) { r.PrimaryModel = "claude" }},
		{name: "clear fallback", change: catalog.RouteChange{FallbackModel: ptr("")},
			want: func(r *catalog.Route) { r.FallbackModel = "" }},
		{name: "primary to the old fallback while clearing it", change: catalog.RouteChange{PrimaryModel: ptr("gemini_flash"), FallbackModel: ptr("")},
			want: func(r *catalog.Route) { r.PrimaryModel, r.FallbackModel = "gemini_flash", "" }},
		{name: "disable", change: catalog.RouteChange{Enabled: ptr(false)},
			want: func(r *catalog.Route) { r.Enabled = false }},
		{name: "enable a disabled route", start: func(r *catalog.Route) { r.Enabled = false }, change: catalog.RouteChange{Enabled: ptr(true)},
			want: func(r *catalog.Route) { r.Enabled = true }},
		{name: "requires approval", change: catalog.RouteChange{RequiresApproval: ptr(true)},
			want: func(r *catalog.Route) { r.RequiresApproval = true }},
		{name: "max output lower bound", change: catalog.RouteChange{MaxOutputTokens: ptr[int64](1)},
			want: func(r *catalog.Route) { r.MaxOutputTokens = 1 }},
		{name: "max output upper bound", change: catalog.RouteChange{MaxOutputTokens: ptr[int64](catalog.MaxOutputTokensLimit)},
			want: func(r *catalog.Route) { r.MaxOutputTokens = catalog.MaxOutputTokensLimit }},
		{name: "criticality HIGH", change: catalog.RouteChange{Criticality: ptr(catalog.High)},
			want: func(r *catalog.Route) { r.Criticality = catalog.High }},
		{name: "everything at once", change: catalog.RouteChange{
			PrimaryModel: ptr("gemini_flash"), FallbackModel: ptr("claude"), Enabled: ptr(false),
			RequiresApproval: ptr(true), MaxOutputTokens: ptr[int64](2048), Criticality: ptr(catalog.Medium),
		}, want: func(r *catalog.Route) {
			r.PrimaryModel, r.FallbackModel, r.Enabled = "gemini_flash", "claude", false
			r.RequiresApproval, r.MaxOutputTokens, r.Criticality = true, 2048, catalog.Medium
		}},

		{name: "unknown primary", change: catalog.RouteChange{PrimaryModel: ptr("gpt-9")}, wantErr: catalog.ErrUnknownModel},
		{name: "empty primary", change: catalog.RouteChange{PrimaryModel: ptr("")}, wantErr: catalog.ErrUnknownModel},
		{name: "unknown fallback", change: catalog.RouteChange{FallbackModel: ptr("gpt-9")}, wantErr: catalog.ErrUnknownModel},
		{name: "model keys are case-sensitive", change: catalog.RouteChange{PrimaryModel: ptr("DeepSeek")}, wantErr: catalog.ErrUnknownModel},
		{name: "fallback equals primary", change: catalog.RouteChange{FallbackModel: ptr("deepseek")}, wantErr: catalog.ErrInvalidChange},
		{name: "primary equals existing fallback", change: catalog.RouteChange{PrimaryModel: ptr("gemini_flash")}, wantErr: catalog.ErrInvalidChange},
		{name: "both set to the same model", change: catalog.RouteChange{PrimaryModel: ptr("claude"), FallbackModel: ptr("claude")}, wantErr: catalog.ErrInvalidChange},
		{name: "max output zero", change: catalog.RouteChange{MaxOutputTokens: ptr[int64](0)}, wantErr: catalog.ErrInvalidChange},
		{name: "max output negative", change: catalog.RouteChange{MaxOutputTokens: ptr[int64](-5)}, wantErr: catalog.ErrInvalidChange},
		{name: "max output over limit", change: catalog.RouteChange{MaxOutputTokens: ptr[int64](catalog.MaxOutputTokensLimit + 1)}, wantErr: catalog.ErrInvalidChange},
		{name: "criticality lowercase", change: catalog.RouteChange{Criticality: ptr(catalog.Criticality("high"))}, wantErr: catalog.ErrInvalidChange},
		{name: "criticality empty", change: catalog.RouteChange{Criticality: ptr(catalog.Criticality(""))}, wantErr: catalog.ErrInvalidChange},
		// Valid fields before an invalid one must not leak into the route.
		{name: "valid edits then bad criticality", change: catalog.RouteChange{
			PrimaryModel: ptr("claude"), Enabled: ptr(false), RequiresApproval: ptr(true),
			MaxOutputTokens: ptr[int64](99), Criticality: ptr(catalog.Criticality("URGENT")),
		}, wantErr: catalog.ErrInvalidChange},
		{name: "valid edits then bad max output", change: catalog.RouteChange{
			FallbackModel: ptr(""), Enabled: ptr(false), MaxOutputTokens: ptr[int64](0),
		}, wantErr: catalog.ErrInvalidChange},
		{name: "valid primary then unknown fallback", change: catalog.RouteChange{PrimaryModel: ptr("claude"), FallbackModel: ptr("nope")}, wantErr: catalog.ErrUnknownModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baseRoute()
			if tt.start != nil {
				tt.start(&r)
			}
			before := r
			err := tt.change.ApplyTo(&r, seededModels())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ApplyTo = %v, want %v", err, tt.wantErr)
				}
				if r != before {
					t.Fatalf("failed change modified the route:\n got %+v\nwant %+v", r, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyTo = %v", err)
			}
			want := before
			tt.want(&want)
			if r != want {
				t.Fatalf("route after change:\n got %+v\nwant %+v", r, want)
			}
		})
	}
}

func TestRouteChangeEmpty(t *testing.T) {
	tests := []struct {
		c    catalog.RouteChange
		want bool
	}{
		{catalog.RouteChange{}, true},
		{catalog.RouteChange{PrimaryModel: ptr("x")}, false},
		{catalog.RouteChange{FallbackModel: ptr("")}, false},
		{catalog.RouteChange{Enabled: ptr(false)}, false},
		{catalog.RouteChange{RequiresApproval: ptr(false)}, false},
		{catalog.RouteChange{MaxOutputTokens: ptr[int64](0)}, false},
		{catalog.RouteChange{Criticality: ptr(catalog.Low)}, false},
	}
	for i, tt := range tests {
		if got := tt.c.Empty(); got != tt.want {
			t.Errorf("case %d: Empty() = %v, want %v", i, got, tt.want)
		}
	}
}

func TestSnapshotAccessors(t *testing.T) {
	loaded := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	r1 := baseRoute()
	r2 := catalog.Route{OperationID: "chat_message", PrimaryModel: "deepseek", FallbackModel: "gemini_flash", Enabled: true, Criticality: catalog.High}
	r3 := catalog.Route{OperationID: "analytics-summary", PrimaryModel: "gemini_flash", Enabled: true, Criticality: catalog.Medium}
	s := catalog.NewSnapshot([]catalog.Model{speech, gemini, claude, deepseek}, []catalog.Route{r1, r2, r3}, loaded)

	if got := s.LoadedAt(); !got.Equal(loaded) {
		t.Errorf("LoadedAt = %v, want %v", got, loaded)
	}
	if m, ok := s.Model("deepseek"); !ok || m != deepseek {
		t.Errorf("Model(deepseek) = %+v, %v", m, ok)
	}
	if m, ok := s.Model("nope"); ok || m != (catalog.Model{}) {
		t.Errorf("Model(nope) = %+v, %v; want zero, false", m, ok)
	}
	if r, ok := s.Route("email-compose"); !ok || r != r1 {
		t.Errorf("Route(email-compose) = %+v, %v", r, ok)
	}
	if _, ok := s.Route("email_compose"); ok {
		t.Error("Route(email_compose) found; operation ids are exact")
	}
	if m, ok := s.Emergency(); !ok || m.Key != "claude" {
		t.Errorf("Emergency() = %q, %v; want claude", m.Key, ok)
	}

	var keys []string
	for _, m := range s.Models() {
		keys = append(keys, m.Key)
	}
	if want := []string{"claude", "deepseek", "gemini_flash", "speech"}; !slices.Equal(keys, want) {
		t.Errorf("Models() keys = %v, want %v", keys, want)
	}
	var ops []string
	for _, r := range s.Routes() {
		ops = append(ops, r.OperationID)
	}
	if want := []string{"analytics-summary", "chat_message", "email-compose"}; !slices.Equal(ops, want) {
		t.Errorf("Routes() ids = %v, want %v", ops, want)
	}

	// The slices are copies: changing them does not change the snapshot.
	s.Models()[0].InputPerMTok = 1
	s.Routes()[0].Enabled = false
	if m, _ := s.Model("claude"); m.InputPerMTok != claude.InputPerMTok {
		t.Error("Models() exposes the snapshot's storage")
	}
	if r, _ := s.Route("analytics-summary"); !r.Enabled {
		t.Error("Routes() exposes the snapshot's storage")
	}
}

func TestSnapshotWithoutEmergency(t *testing.T) {
	s := catalog.NewSnapshot([]catalog.Model{deepseek, gemini}, nil, time.Time{})
	if m, ok := s.Emergency(); ok {
		t.Errorf("Emergency() = %+v, true; want none", m)
	}
	if got := s.Routes(); len(got) != 0 {
		t.Errorf("Routes() = %v, want none", got)
	}
	empty := catalog.NewSnapshot(nil, nil, time.Time{})
	if got := empty.Models(); len(got) != 0 {
		t.Errorf("Models() of empty snapshot = %v", got)
	}
}
