package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/helixhq/helix/infra/migrations"

	"github.com/helixhq/helix/shared/catalog"
	"github.com/helixhq/helix/shared/money"
	"github.com/helixhq/helix/shared/postgres"
)

func TestSeedHasTheSeventeenOperationsOfTheDesign(t *testing.T) {
	pool := pg.NewPool(t)
	snap, err := postgres.NewCatalog(pool, nil).LoadCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		primary, fallback string
		crit              catalog.Criticality
		enabled           bool
	}
	wants := map[string]want{
		"chat_message":        {"deepseek", "gemini_flash", catalog.High, true},
		"agent_execution":     {"deepseek", "gemini_flash", catalog.High, true},
		"memory_synthesis":    {"gemini_flash", "deepseek", catalog.Medium, true},
		"sentiment_analysis":  {"gemini_flash", "deepseek", catalog.Low, true},
		"video_understanding": {"gemini_flash", "", catalog.Medium, true},
		"audio_transcription": {"speech", "", catalog.Medium, false},
		"text_to_speech":      {"speech", "", catalog.Low, false},
		"email_analysis":      {"gemini_flash", "deepseek", catalog.Low, false},
		"email-compose":       {"deepseek", "gemini_flash", catalog.Low, true},
		"email-classify":      {"deepseek", "gemini_flash", catalog.Low, true},
		"email-respond":       {"deepseek", "gemini_flash", catalog.Low, true},
		"calendar-prep":       {"deepseek", "gemini_flash", catalog.Low, true},
		"calendar-time":       {"gemini_flash", "deepseek", catalog.Low, true},
		"task-prioritize":     {"deepseek", "gemini_flash", catalog.Low, true},
		"task-breakdown":      {"deepseek", "gemini_flash", catalog.Low, true},
		"analytics-summary":   {"gemini_flash", "deepseek", catalog.Medium, true},
		"analytics-anomaly":   {"deepseek", "gemini_flash", catalog.Low, true},
	}
	routes := snap.Routes()
	if len(routes) != 17 {
		t.Fatalf("got %d routes, want 17", len(routes))
	}
	for _, r := range routes {
		w, ok := wants[r.OperationID]
		if !ok {
			t.Errorf("unexpected operation %q", r.OperationID)
			continue
		}
		if r.PrimaryModel != w.primary || r.FallbackModel != w.fallback || r.Criticality != w.crit || r.Enabled != w.enabled {
			t.Errorf("%s = %s/%s/%s/enabled=%v, want %s/%s/%s/enabled=%v", r.OperationID,
				r.PrimaryModel, r.FallbackModel, r.Criticality, r.Enabled, w.primary, w.fallback, w.crit, w.enabled)
		}
		if r.MaxOutputTokens <= 0 || r.RequiresApproval {
			t.Errorf("%s: max_output_tokens=%d requires_approval=%v", r.OperationID, r.MaxOutputTokens, r.RequiresApproval)
		}
	}

	prices := map[string][3]money.Nano{ // input, output, cached input per 1M tokens
		"deepseek":     {money.MustUSD(0.28), money.MustUSD(0.42), money.MustUSD(0.028)},
		"gemini_flash": {money.MustUSD(0.10), money.MustUSD(0.40), money.MustUSD(0.01)},
		"claude":       {money.MustUSD(1), money.MustUSD(5), money.MustUSD(0.10)},
	}
	for key, p := range prices {
		m, ok := snap.Model(key)
		if !ok {
			t.Fatalf("model %s missing", key)
		}
		if got := [3]money.Nano{m.InputPerMTok, m.OutputPerMTok, m.CachedInputPerMTok}; got != p {
			t.Errorf("%s prices = %v, want %v", key, got, p)
		}
		if !m.Usable() || m.PriceVersion == "" {
			t.Errorf("%s: usable=%v price_version=%q", key, m.Usable(), m.PriceVersion)
		}
	}
	if em, ok := snap.Emergency(); !ok || em.Key != "claude" {
		t.Errorf("emergency model = %v %v, want claude", em.Key, ok)
	}
	if sp, _ := snap.Model("speech"); sp.Usable() {
		t.Error("the speech placeholder must not be usable until a provider serves it")
	}
}

func TestOperationLogHasTheDesignIndexes(t *testing.T) {
	pool := pg.NewPool(t)
	for _, idx := range []string{"idx_ai_ops_user_date", "idx_ai_ops_model"} {
		var def string
		err := pool.QueryRow(context.Background(), `SELECT indexdef FROM pg_indexes WHERE indexname = $1`, idx).Scan(&def)
		if err != nil {
			t.Errorf("index %s: %v", idx, err)
		}
	}
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	url := pg.NewDatabase(t)
	if err := migrations.Up(context.Background(), url, nil); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
}

func TestUpdateRoute(t *testing.T) {
	ctx := context.Background()
	repo := postgres.NewCatalog(pg.NewPool(t), nil)
	gem, off, approval, max := "gemini_flash", false, true, int64(777)
	crit := catalog.Medium
	r, err := repo.UpdateRoute(ctx, "email-compose", catalog.RouteChange{
		PrimaryModel: &gem, FallbackModel: ptr("deepseek"), Enabled: &off,
		RequiresApproval: &approval, MaxOutputTokens: &max, Criticality: &crit,
	}, "admin-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.PrimaryModel != "gemini_flash" || r.FallbackModel != "deepseek" || r.Enabled || !r.RequiresApproval ||
		r.MaxOutputTokens != 777 || r.Criticality != catalog.Medium || r.UpdatedBy != "admin-1" {
		t.Errorf("updated route = %+v", r)
	}
	if time.Since(r.UpdatedAt) > time.Minute {
		t.Errorf("updated_at not refreshed: %v", r.UpdatedAt)
	}
	// Clearing the fallback stores NULL.
	r, err = repo.UpdateRoute(ctx, "email-compose", catalog.RouteChange{FallbackModel: ptr("")}, "admin-1")
	if err != nil || r.FallbackModel != "" {
		t.Fatalf("clear fallback: %+v %v", r, err)
	}

	tests := []struct {
		name string
		op   string
		ch   catalog.RouteChange
		want error
	}{
		{"unknown operation", "nope", catalog.RouteChange{Enabled: &off}, catalog.ErrUnknownOperation},
		{"unknown primary", "email-compose", catalog.RouteChange{PrimaryModel: ptr("gpt-9")}, catalog.ErrUnknownModel},
		{"unknown fallback", "email-compose", catalog.RouteChange{FallbackModel: ptr("gpt-9")}, catalog.ErrUnknownModel},
		{"fallback equals primary", "email-compose", catalog.RouteChange{FallbackModel: ptr("gemini_flash")}, catalog.ErrInvalidChange},
		{"zero max tokens", "email-compose", catalog.RouteChange{MaxOutputTokens: new(int64)}, catalog.ErrInvalidChange},
		{"bad criticality", "email-compose", catalog.RouteChange{Criticality: ptr(catalog.Criticality("URGENT"))}, catalog.ErrInvalidChange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := repo.UpdateRoute(ctx, tt.op, tt.ch, "admin-1"); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
