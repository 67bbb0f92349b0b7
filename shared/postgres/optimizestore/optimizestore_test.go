package optimizestore_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/helixhq/helix/shared/memory"
	"github.com/helixhq/helix/shared/optimize"
	"github.com/helixhq/helix/shared/pgtest"
	"github.com/helixhq/helix/shared/postgres/optimizestore"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(s *pgtest.Server) { pg = s }))
}

// The decay counts use memory.Insight.Strength's formula in SQL: each seeded routine's count is
// checked against Strength itself, so the two cannot drift apart.
func TestDecayCountsMatchStrength(t *testing.T) {
	pool := pg.NewPool(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	insights := []struct {
		name                     string
		layer                    memory.Layer
		confidence               float64
		age                      time.Duration
		invalidated              bool
		faded, newly, reinforced bool
	}{
		{"reinforced an hour ago", memory.IntegrationRhythms, 0.8, time.Hour, false, false, false, true},
		{"two months old", memory.IntegrationRhythms, 0.8, 60 * day, false, true, false, false},
		// 0.4 × 0.5^(28.5/14) = 0.097 now; 0.4 × 0.5^(27.5/14) = 0.103 a day ago.
		{"faded today", memory.IntegrationRhythms, 0.4, 28*day + 12*time.Hour, false, true, true, false},
		{"invalidated", memory.IntegrationRhythms, 0.8, 60 * day, true, false, false, false},
		{"not a routine", memory.NarrativeCore, 0.8, 365 * day, false, false, false, false},
	}
	var want optimize.Decay
	for _, in := range insights {
		ins := memory.Insight{Layer: in.layer, Confidence: in.confidence, LastReinforcedAt: now.Add(-in.age)}
		faded := ins.Strength(now) < memory.FadedStrength
		wasFaded := ins.Strength(now.Add(-day)) < memory.FadedStrength
		if in.layer == memory.IntegrationRhythms && !in.invalidated && (faded != in.faded || (faded && !wasFaded) != in.newly) {
			t.Fatalf("%s: Strength says faded %v (a day ago %v); the case says %v, %v", in.name, faded, wasFaded, in.faded, in.newly)
		}
		var inval *time.Time
		if in.invalidated {
			inval = &now
		} else if in.layer == memory.IntegrationRhythms {
			want.Routines++
		}
		if in.faded {
			want.Faded++
		}
		if in.newly {
			want.NewlyFaded++
		}
		if in.reinforced {
			want.Reinforced++
		}
		if _, err := pool.Exec(ctx, `
			INSERT INTO conversation_insights (insight_id, user_id, layer, layer_name, text, confidence, valid_from,
			                                   last_reinforced_at, invalidated_at)
			VALUES ($1, 'alice', $2, $3, 'x', $4, $5, $5, $6)`,
			uuid.NewString(), int(in.layer), in.layer.Name(), in.confidence, now.Add(-in.age), inval); err != nil {
			t.Fatal(err)
		}
	}
	got, err := optimizestore.New(pool).Decay(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || want != (optimize.Decay{Routines: 3, Faded: 2, NewlyFaded: 1, Reinforced: 1}) {
		t.Errorf("decay %+v, want %+v", got, want)
	}
}

func TestGetUnknown(t *testing.T) {
	_, err := optimizestore.New(pg.NewPool(t)).Get(context.Background(), uuid.NewString())
	if err != optimizestore.ErrNotFound {
		t.Errorf("err %v", err)
	}
}

// A schema repair is the call "<request id>-repair" (shared/intelligence): the store counts it
// against the model whose answer needed it, on its operation, within the window.
func TestRepairsCountAgainstTheRepairedCallsModel(t *testing.T) {
	pool := pg.NewPool(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	at := now.AddDate(0, 0, -2)
	if _, err := pool.Exec(ctx, `
		INSERT INTO ai_operation_log (request_id, operation_id, user_id, model_used, provider, success, latency_ms, created_at) VALUES
		    ('a', 'email-compose', 'u', 'gemini_flash', 'gemini', true, 100, $1),
		    ('a-repair', 'email-compose', 'u', 'deepseek', 'deepseek', true, 100, $1),
		    ('b', 'email-compose', 'u', 'gemini_flash', 'gemini', true, 100, $1),
		    ('c', 'email-compose', 'u', 'deepseek', 'deepseek', true, 100, $1),
		    ('old', 'email-compose', 'u', 'deepseek', 'deepseek', true, 100, $2),
		    ('old-repair', 'email-compose', 'u', 'deepseek', 'deepseek', true, 100, $2)`, at, now.AddDate(0, 0, -30)); err != nil {
		t.Fatal(err)
	}
	in, err := optimizestore.New(pool).Load(ctx, optimize.WindowAt(now))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, s := range in.Stats {
		got[s.Model] = s.Repaired
	}
	if got["gemini_flash"] != 1 || got["deepseek"] != 0 {
		t.Errorf("repairs by model %v, want gemini_flash 1 (its answer was repaired), deepseek 0 (the old one is outside the window)", got)
	}
}
