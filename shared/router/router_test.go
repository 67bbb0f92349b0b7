package router_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/router"
)

// The seeded catalog (infra/migrations/00002_seed_catalog.sql).
func seededModels() []catalog.Model {
	return []catalog.Model{
		{Key: "deepseek", Provider: "deepseek", APIModel: "deepseek-chat", InputPerMTok: 280_000_000, OutputPerMTok: 420_000_000, CachedInputPerMTok: 28_000_000, PriceVersion: "deepseek-v3.2@2026-11", Enabled: true},
		{Key: "gemini_flash", Provider: "gemini", APIModel: "gemini-2.5-flash-lite", InputPerMTok: 100_000_000, OutputPerMTok: 400_000_000, CachedInputPerMTok: 10_000_000, PriceVersion: "gemini-2.5-flash-lite@2026-11", Enabled: true},
		{Key: "claude", Provider: "anthropic", APIModel: "claude-haiku-4-5", InputPerMTok: 1_000_000_000, OutputPerMTok: 5_000_000_000, CachedInputPerMTok: 100_000_000, PriceVersion: "claude-haiku-4.5@2026-11", Enabled: true, Emergency: true},
		{Key: "speech", Provider: catalog.NoProvider, PriceVersion: "unpriced"},
	}
}

func route(op, primary, fallback string, enabled bool, crit catalog.Criticality, maxOut, avgIn, avgOut int64, emergency bool) catalog.Route {
	return catalog.Route{
		OperationID: op, OperationName: op, PrimaryModel: primary, FallbackModel: fallback,
		Enabled: enabled, Criticality: crit, MaxOutputTokens: maxOut,
		AvgInputTokens: avgIn, AvgOutputTokens: avgOut, AllowEmergency: emergency,
	}
}

func seededRoutes() []catalog.Route {
	L, M, H := catalog.Low, catalog.Medium, catalog.High
	return []catalog.Route{
		route("chat_message", "deepseek", "gemini_flash", true, H, 2048, 1500, 400, true),
		route("agent_execution", "deepseek", "gemini_flash", true, H, 4096, 3000, 800, true),
		route("memory_synthesis", "gemini_flash", "deepseek", true, M, 2048, 4000, 600, true),
		route("sentiment_analysis", "gemini_flash", "deepseek", true, L, 256, 400, 60, true),
		route("video_understanding", "gemini_flash", "", true, M, 2048, 8000, 500, false),
		route("audio_transcription", "speech", "", false, M, 4096, 2000, 1500, false),
		route("text_to_speech", "speech", "", false, L, 4096, 500, 0, false),
		route("email_analysis", "gemini_flash", "deepseek", false, L, 1024, 1200, 250, true),
		route("email-compose", "deepseek", "gemini_flash", true, L, 1024, 300, 350, true),
		route("email-classify", "deepseek", "gemini_flash", true, L, 256, 800, 80, true),
		route("email-respond", "deepseek", "gemini_flash", true, L, 1024, 900, 300, true),
		route("calendar-prep", "deepseek", "gemini_flash", true, L, 1024, 700, 400, true),
		route("calendar-time", "gemini_flash", "deepseek", true, L, 512, 600, 150, true),
		route("task-prioritize", "deepseek", "gemini_flash", true, L, 1024, 600, 300, true),
		route("task-breakdown", "deepseek", "gemini_flash", true, L, 1024, 300, 400, true),
		route("analytics-summary", "gemini_flash", "deepseek", true, M, 1024, 2000, 400, true),
		route("analytics-anomaly", "deepseek", "gemini_flash", true, L, 1024, 1500, 300, true),
	}
}

func seededSnapshot() *catalog.Snapshot {
	return catalog.NewSnapshot(seededModels(), seededRoutes(), time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
}

// snapshotWith is the seeded snapshot with edits to models and routes.
func snapshotWith(editModel func(*catalog.Model), extra ...catalog.Route) *catalog.Snapshot {
	models := seededModels()
	if editModel != nil {
		for i := range models {
			editModel(&models[i])
		}
	}
	return catalog.NewSnapshot(models, append(seededRoutes(), extra...), time.Time{})
}

func chainKeys(d *router.Decision) []string {
	out := make([]string, d.ChainLen)
	for i := range out {
		out[i] = d.Chain[i].Key
	}
	return out
}

func TestDecideChain(t *testing.T) {
	skipKey := func(keys ...string) func(catalog.Model) bool {
		return func(m catalog.Model) bool { return slices.Contains(keys, m.Key) }
	}
	disable := func(keys ...string) func(*catalog.Model) {
		return func(m *catalog.Model) {
			if slices.Contains(keys, m.Key) {
				m.Enabled = false
			}
		}
	}
	tests := []struct {
		name      string
		snap      *catalog.Snapshot
		req       router.Request
		wantChain []string
		wantErr   error
	}{
		{name: "deepseek first", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose"},
			wantChain: []string{"deepseek", "gemini_flash", "claude"}},
		{name: "gemini first", snap: seededSnapshot(), req: router.Request{OperationID: "memory_synthesis"},
			wantChain: []string{"gemini_flash", "deepseek", "claude"}},
		{name: "no fallback and no emergency", snap: seededSnapshot(), req: router.Request{OperationID: "video_understanding"},
			wantChain: []string{"gemini_flash"}},
		{name: "primary disabled", snap: snapshotWith(disable("deepseek")), req: router.Request{OperationID: "email-compose"},
			wantChain: []string{"gemini_flash", "claude"}},
		{name: "fallback disabled", snap: snapshotWith(disable("gemini_flash")), req: router.Request{OperationID: "chat_message"},
			wantChain: []string{"deepseek", "claude"}},
		{name: "emergency disabled", snap: snapshotWith(disable("claude")), req: router.Request{OperationID: "chat_message"},
			wantChain: []string{"deepseek", "gemini_flash"}},
		{name: "only the emergency model left", snap: snapshotWith(disable("deepseek", "gemini_flash")), req: router.Request{OperationID: "chat_message"},
			wantChain: []string{"claude"}},
		{name: "skip the primary", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", Skip: skipKey("deepseek")},
			wantChain: []string{"gemini_flash", "claude"}},
		{name: "skip a provider", snap: seededSnapshot(), req: router.Request{OperationID: "calendar-time", Skip: func(m catalog.Model) bool { return m.Provider == "gemini" }},
			wantChain: []string{"deepseek", "claude"}},
		{name: "skip the emergency model", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", Skip: skipKey("claude")},
			wantChain: []string{"deepseek", "gemini_flash"}},
		{name: "skip nothing", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", Skip: func(catalog.Model) bool { return false }},
			wantChain: []string{"deepseek", "gemini_flash", "claude"}},
		{name: "emergency not allowed", snap: snapshotWith(nil, route("no-emergency", "deepseek", "gemini_flash", true, catalog.Low, 100, 10, 10, false)),
			req: router.Request{OperationID: "no-emergency"}, wantChain: []string{"deepseek", "gemini_flash"}},
		{name: "emergency model as primary is not repeated", snap: snapshotWith(nil, route("premium", "claude", "deepseek", true, catalog.High, 100, 10, 10, true)),
			req: router.Request{OperationID: "premium"}, wantChain: []string{"claude", "deepseek"}},
		{name: "route pointing at an unknown model", snap: snapshotWith(nil, route("ghost", "gpt-9", "gemini_flash", true, catalog.Low, 100, 10, 10, false)),
			req: router.Request{OperationID: "ghost"}, wantChain: []string{"gemini_flash"}},
		{name: "no emergency model configured", snap: catalog.NewSnapshot(seededModels()[:2], seededRoutes(), time.Time{}),
			req: router.Request{OperationID: "email-compose"}, wantChain: []string{"deepseek", "gemini_flash"}},

		{name: "unknown operation", snap: seededSnapshot(), req: router.Request{OperationID: "email_compose"}, wantErr: router.ErrUnknownOperation},
		{name: "empty operation", snap: seededSnapshot(), req: router.Request{}, wantErr: router.ErrUnknownOperation},
		{name: "seeded disabled operation", snap: seededSnapshot(), req: router.Request{OperationID: "email_analysis"}, wantErr: router.ErrOperationDisabled},
		{name: "speech operation disabled", snap: seededSnapshot(), req: router.Request{OperationID: "audio_transcription"}, wantErr: router.ErrOperationDisabled},
		{name: "enabled speech route has no usable model", snap: snapshotWith(nil, route("speech-on", "speech", "", true, catalog.Low, 100, 10, 10, false)),
			req: router.Request{OperationID: "speech-on"}, wantErr: router.ErrNoModel},
		{name: "everything skipped", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", Skip: func(catalog.Model) bool { return true }}, wantErr: router.ErrNoModel},
		{name: "only model disabled, no emergency", snap: snapshotWith(disable("gemini_flash")), req: router.Request{OperationID: "video_understanding"}, wantErr: router.ErrNoModel},
		{name: "emergency not allowed and chain skipped", snap: seededSnapshot(), req: router.Request{OperationID: "video_understanding", Skip: skipKey("gemini_flash")}, wantErr: router.ErrNoModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := router.Decide(tt.snap, tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decide = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got := chainKeys(&d); !slices.Equal(got, tt.wantChain) {
				t.Fatalf("chain = %v, want %v", got, tt.wantChain)
			}
			if d.Model().Key != tt.wantChain[0] {
				t.Errorf("Model() = %q, want %q", d.Model().Key, tt.wantChain[0])
			}
			fb, ok := d.Fallback()
			if len(tt.wantChain) > 1 {
				if !ok || fb.Key != tt.wantChain[1] {
					t.Errorf("Fallback() = %q, %v; want %q", fb.Key, ok, tt.wantChain[1])
				}
			} else if ok {
				t.Errorf("Fallback() = %q, true; want none", fb.Key)
			}
			if d.Route.OperationID != tt.req.OperationID {
				t.Errorf("Route = %q, want %q", d.Route.OperationID, tt.req.OperationID)
			}
		})
	}
}

func TestDecideErrorsAreDistinct(t *testing.T) {
	if errors.Is(router.ErrOperationDisabled, router.ErrNoModel) || errors.Is(router.ErrNoModel, router.ErrUnknownOperation) {
		t.Fatal("router errors must be distinguishable")
	}
	if !errors.Is(router.ErrUnknownOperation, catalog.ErrUnknownOperation) {
		t.Fatal("router.ErrUnknownOperation must be catalog.ErrUnknownOperation")
	}
}

func TestDecideEstimates(t *testing.T) {
	tests := []struct {
		name          string
		snap          *catalog.Snapshot
		req           router.Request
		wantInput     int64
		wantOutput    int64
		wantEstimate  money.Nano
		wantWorstCase money.Nano
	}{
		// 100×280 + 350×420 = 28000 + 147000 = 175000 ($0.000175).
		// Worst: claude 100×1000 + 1024×5000 = 100000 + 5120000 = 5220000.
		{name: "email-compose, 100 tokens", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", InputTokens: 100},
			wantInput: 100, wantOutput: 350, wantEstimate: 175_000, wantWorstCase: 5_220_000},
		// Zero input uses the average, 300: 300×280 + 350×420 = 84000 + 147000 = 231000.
		// Worst: claude 300×1000 + 1024×5000 = 5420000.
		{name: "email-compose, zero uses average", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", InputTokens: 0},
			wantInput: 300, wantOutput: 350, wantEstimate: 231_000, wantWorstCase: 5_420_000},
		{name: "email-compose, negative uses average", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", InputTokens: -7},
			wantInput: 300, wantOutput: 350, wantEstimate: 231_000, wantWorstCase: 5_420_000},
		// One token: 280 + 147000 = 147280; worst 1000 + 5120000.
		{name: "email-compose, one token", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", InputTokens: 1},
			wantInput: 1, wantOutput: 350, wantEstimate: 147_280, wantWorstCase: 5_121_000},
		// Gemini first: 4000×100 + 600×400 = 400000 + 240000 = 640000.
		// Worst: claude 4000×1000 + 2048×5000 = 4000000 + 10240000 = 14240000.
		{name: "memory_synthesis average", snap: seededSnapshot(), req: router.Request{OperationID: "memory_synthesis"},
			wantInput: 4000, wantOutput: 600, wantEstimate: 640_000, wantWorstCase: 14_240_000},
		// No emergency: worst over gemini only: 8000×100 + 2048×400 = 800000 + 819200.
		// Estimate: 8000×100 + 500×400 = 800000 + 200000.
		{name: "video_understanding, single model", snap: seededSnapshot(), req: router.Request{OperationID: "video_understanding"},
			wantInput: 8000, wantOutput: 500, wantEstimate: 1_000_000, wantWorstCase: 1_619_200},
		// Without claude the worst case is the dearer of deepseek and gemini:
		// deepseek 1500×280 + 2048×420 = 420000 + 860160 = 1280160;
		// gemini 1500×100 + 2048×400 = 150000 + 819200 = 969200.
		// Estimate at deepseek: 1500×280 + 400×420 = 420000 + 168000 = 588000.
		{name: "chat_message without the emergency model", snap: seededSnapshot(),
			req:       router.Request{OperationID: "chat_message", Skip: func(m catalog.Model) bool { return m.Emergency }},
			wantInput: 1500, wantOutput: 400, wantEstimate: 588_000, wantWorstCase: 1_280_160},
		// The worst case covers a fallback that is dearer than the primary: with deepseek first and
		// gemini skipped, calendar-time (gemini primary) becomes deepseek-only:
		// estimate 600×280 + 150×420 = 168000 + 63000 = 231000; worst includes claude:
		// 600×1000 + 512×5000 = 600000 + 2560000 = 3160000.
		{name: "calendar-time with gemini skipped", snap: seededSnapshot(),
			req:       router.Request{OperationID: "calendar-time", Skip: func(m catalog.Model) bool { return m.Key == "gemini_flash" }},
			wantInput: 600, wantOutput: 150, wantEstimate: 231_000, wantWorstCase: 3_160_000},
		// The estimate is at the first model even when a later one is cheaper; the worst case at
		// the dearest: gemini primary, deepseek fallback, no emergency:
		// estimate 1000×100 + 100×400 = 140000; worst deepseek 1000×280 + 200×420 = 364000
		// vs gemini 1000×100 + 200×400 = 180000.
		{name: "worst case is the dearest model, not the first", snap: snapshotWith(nil, route("wc", "gemini_flash", "deepseek", true, catalog.Low, 200, 1000, 100, false)),
			req: router.Request{OperationID: "wc"}, wantInput: 1000, wantOutput: 100, wantEstimate: 140_000, wantWorstCase: 364_000},
		// Input is capped at MaxInputTokensLimit (1e7): 1e7×280 + 350×420 = 2.8e9 + 147000.
		// Worst: claude 1e7×1000 + 1024×5000 = 1e10 + 5120000.
		{name: "input capped", snap: seededSnapshot(), req: router.Request{OperationID: "email-compose", InputTokens: 1 << 40},
			wantInput: catalog.MaxInputTokensLimit, wantOutput: 350, wantEstimate: 2_800_147_000, wantWorstCase: 10_005_120_000},
		// Rounding up: a price of 1 nano per 1M tokens makes every part a fraction.
		{name: "fractional prices round up", snap: catalog.NewSnapshot(
			[]catalog.Model{{Key: "cheap", Provider: "p", Enabled: true, InputPerMTok: 1, OutputPerMTok: 3}},
			[]catalog.Route{route("tiny", "cheap", "", true, catalog.Low, 10, 5, 7, false)}, time.Time{}),
			// 5×1 + 7×3 = 26 / 1e6 → 1; 5×1 + 10×3 = 35 / 1e6 → 1.
			req: router.Request{OperationID: "tiny"}, wantInput: 5, wantOutput: 7, wantEstimate: 1, wantWorstCase: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := router.Decide(tt.snap, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.InputTokens != tt.wantInput || d.OutputTokens != tt.wantOutput {
				t.Errorf("tokens = %d in / %d out, want %d / %d", d.InputTokens, d.OutputTokens, tt.wantInput, tt.wantOutput)
			}
			if d.EstimatedCost != tt.wantEstimate {
				t.Errorf("EstimatedCost = %d (%s), want %d (%s)", d.EstimatedCost, d.EstimatedCost, tt.wantEstimate, tt.wantEstimate)
			}
			if d.WorstCase != tt.wantWorstCase {
				t.Errorf("WorstCase = %d (%s), want %d (%s)", d.WorstCase, d.WorstCase, tt.wantWorstCase, tt.wantWorstCase)
			}
			if d.WorstCase < d.EstimatedCost && d.Route.MaxOutputTokens >= d.OutputTokens {
				t.Errorf("WorstCase %d below EstimatedCost %d", d.WorstCase, d.EstimatedCost)
			}
		})
	}
}

func TestEmailComposeEstimateIsUSD0000175(t *testing.T) {
	d, err := router.Decide(seededSnapshot(), router.Request{OperationID: "email-compose", InputTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.EstimatedCost.String(); got != "0.000175" {
		t.Fatalf("estimate = $%s, want $0.000175", got)
	}
	if d.Model().Key != "deepseek" {
		t.Fatalf("model = %q, want deepseek", d.Model().Key)
	}
	if fb, _ := d.Fallback(); fb.Key != "gemini_flash" {
		t.Fatalf("fallback = %q, want gemini_flash", fb.Key)
	}
}

// Every seeded enabled operation routes, and its chain starts with the seeded primary.
func TestDecideEverySeededRoute(t *testing.T) {
	s := seededSnapshot()
	for _, r := range seededRoutes() {
		d, err := router.Decide(s, router.Request{OperationID: r.OperationID})
		if !r.Enabled {
			if !errors.Is(err, router.ErrOperationDisabled) {
				t.Errorf("%s: Decide = %v, want ErrOperationDisabled", r.OperationID, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", r.OperationID, err)
			continue
		}
		if d.Model().Key != r.PrimaryModel {
			t.Errorf("%s: model %q, want %q", r.OperationID, d.Model().Key, r.PrimaryModel)
		}
		if d.EstimatedCost <= 0 || d.WorstCase < d.EstimatedCost {
			t.Errorf("%s: estimate %d, worst %d", r.OperationID, d.EstimatedCost, d.WorstCase)
		}
	}
}

func TestDecideDoesNotCallSkipForUnusableModels(t *testing.T) {
	var seen []string
	_, err := router.Decide(snapshotWith(func(m *catalog.Model) {
		if m.Key == "gemini_flash" {
			m.Enabled = false
		}
	}), router.Request{OperationID: "email-compose", Skip: func(m catalog.Model) bool {
		seen = append(seen, m.Key)
		return false
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"deepseek", "claude"}) {
		t.Fatalf("Skip saw %v, want [deepseek claude]", seen)
	}
}
