package toggles_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/toggles"
)

// memStore is an in-memory toggles.Store that counts loads and writes.
type memStore struct {
	mu     sync.Mutex
	rows   map[string]toggles.Toggle
	loads  int
	writes []string
}

func newMemStore(rows ...toggles.Toggle) *memStore {
	s := &memStore{rows: map[string]toggles.Toggle{}}
	for _, r := range rows {
		s.rows[r.Key] = r
	}
	return s
}

func (s *memStore) LoadToggles(context.Context) (map[string]toggles.Toggle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	out := make(map[string]toggles.Toggle, len(s.rows))
	for k, v := range s.rows {
		out[k] = v
	}
	return out, nil
}

func (s *memStore) SetToggle(_ context.Context, key string, enabled bool, actor string) (toggles.Toggle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.rows[key]
	t.Key, t.Enabled, t.UpdatedBy = key, enabled, actor
	s.rows[key] = t
	s.writes = append(s.writes, key)
	return t, nil
}

func (s *memStore) counts() (loads, writes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads, len(s.writes)
}

// seeded mirrors the five toggles the 00003 migration seeds.
func seeded() *memStore {
	return newMemStore(
		toggles.Toggle{Key: "DISABLE_DEEPSEEK", Description: "deepseek"},
		toggles.Toggle{Key: "DISABLE_GEMINI", Description: "gemini"},
		toggles.Toggle{Key: "DISABLE_ANTHROPIC", Description: "anthropic"},
		toggles.Toggle{Key: toggles.DisableSynthesis, Description: "synthesis"},
		toggles.Toggle{Key: toggles.Maintenance, Description: "maintenance"},
	)
}

type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fixedClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestDisableProvider(t *testing.T) {
	for provider, want := range map[string]string{
		"deepseek": "DISABLE_DEEPSEEK", "gemini": "DISABLE_GEMINI", "anthropic": "DISABLE_ANTHROPIC", "OpenRouter": "DISABLE_OPENROUTER",
	} {
		if got := toggles.DisableProvider(provider); got != want {
			t.Errorf("DisableProvider(%q) = %q, want %q", provider, got, want)
		}
	}
}

func TestSetEnabledPrecedence(t *testing.T) {
	// env > database > off, for every combination.
	tests := []struct {
		name         string
		stored       *bool // nil: no row
		env          *bool // nil: no override
		wantEnabled  bool
		wantSource   string
		wantStoredOn bool
	}{
		{name: "neither", wantEnabled: false, wantSource: toggles.SourceDefault},
		{name: "db on", stored: ptr(true), wantEnabled: true, wantSource: toggles.SourceDatabase, wantStoredOn: true},
		{name: "db off", stored: ptr(false), wantEnabled: false, wantSource: toggles.SourceDatabase},
		{name: "env on", env: ptr(true), wantEnabled: true, wantSource: toggles.SourceEnv},
		{name: "env off", env: ptr(false), wantEnabled: false, wantSource: toggles.SourceEnv},
		{name: "env on beats db off", stored: ptr(false), env: ptr(true), wantEnabled: true, wantSource: toggles.SourceEnv},
		{name: "env off beats db on", stored: ptr(true), env: ptr(false), wantEnabled: false, wantSource: toggles.SourceEnv, wantStoredOn: true},
	}
	const key = "DISABLE_DEEPSEEK"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemStore()
			if tt.stored != nil {
				st.rows[key] = toggles.Toggle{Key: key, Enabled: *tt.stored, Description: "d", UpdatedBy: "ops"}
			}
			env := map[string]bool{}
			if tt.env != nil {
				env[key] = *tt.env
			}
			set, err := toggles.NewService(st, env, time.Minute, nil).Current(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := set.Enabled(key); got != tt.wantEnabled {
				t.Errorf("Enabled = %v, want %v", got, tt.wantEnabled)
			}
			if got := set.ProviderDisabled("deepseek"); got != tt.wantEnabled {
				t.Errorf("ProviderDisabled(deepseek) = %v, want %v", got, tt.wantEnabled)
			}
			if set.ProviderDisabled("gemini") {
				t.Error("another provider's switch is on")
			}
			views := set.Views()
			if tt.stored == nil && tt.env == nil {
				if len(views) != 0 {
					t.Errorf("views of an empty set = %+v", views)
				}
				return
			}
			if len(views) != 1 {
				t.Fatalf("views = %+v, want one", views)
			}
			v := views[0]
			if v.Key != key || v.Enabled != tt.wantEnabled || v.Source != tt.wantSource || v.Stored != tt.wantStoredOn {
				t.Errorf("view = %+v, want enabled %v source %s stored %v", v, tt.wantEnabled, tt.wantSource, tt.wantStoredOn)
			}
			if tt.stored != nil && (v.Description != "d" || v.UpdatedBy != "ops") {
				t.Errorf("view lost the row's description or author: %+v", v)
			}
		})
	}
}

func TestViewsListsStoredAndEnvKeysSorted(t *testing.T) {
	st := seeded()
	st.rows["DISABLE_GEMINI"] = toggles.Toggle{Key: "DISABLE_GEMINI", Enabled: true}
	env := map[string]bool{"DISABLE_DEEPSEEK": true, "DISABLE_OPENROUTER": true}
	set, err := toggles.NewService(st, env, time.Minute, nil).Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	views := set.Views()
	var keys []string
	sources := map[string]string{}
	enabled := map[string]bool{}
	for _, v := range views {
		keys = append(keys, v.Key)
		sources[v.Key] = v.Source
		enabled[v.Key] = v.Enabled
	}
	wantKeys := []string{"DISABLE_ANTHROPIC", "DISABLE_DEEPSEEK", "DISABLE_GEMINI", "DISABLE_OPENROUTER", "DISABLE_SYNTHESIS", "ENABLE_MAINTENANCE_MODE"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Fatalf("keys = %v, want %v", keys, wantKeys)
	}
	wantSources := map[string]string{
		"DISABLE_ANTHROPIC": toggles.SourceDatabase, "DISABLE_DEEPSEEK": toggles.SourceEnv,
		"DISABLE_GEMINI": toggles.SourceDatabase, "DISABLE_OPENROUTER": toggles.SourceEnv,
		"DISABLE_SYNTHESIS": toggles.SourceDatabase, "ENABLE_MAINTENANCE_MODE": toggles.SourceDatabase,
	}
	if !reflect.DeepEqual(sources, wantSources) {
		t.Errorf("sources = %v, want %v", sources, wantSources)
	}
	wantEnabled := map[string]bool{"DISABLE_DEEPSEEK": true, "DISABLE_GEMINI": true, "DISABLE_OPENROUTER": true}
	for k, on := range enabled {
		if on != wantEnabled[k] {
			t.Errorf("%s enabled = %v, want %v", k, on, wantEnabled[k])
		}
	}
}

func TestServiceSet(t *testing.T) {
	ctx := context.Background()
	known := []string{"deepseek", "gemini", "anthropic", "openrouter"}

	t.Run("rejects unknown keys without writing", func(t *testing.T) {
		for _, key := range []string{"DISABLE_SYNTHESYS", "DISABLE_MISTRAL", "disable_deepseek", "DISABLE_deepseek", "ENABLE_MAINTENANCE", ""} {
			st := seeded()
			s := toggles.NewService(st, nil, time.Minute, nil)
			if _, err := s.Set(ctx, key, true, "admin", known); !errors.Is(err, toggles.ErrUnknownToggle) {
				t.Errorf("Set(%q) = %v, want ErrUnknownToggle", key, err)
			}
			if _, writes := st.counts(); writes != 0 {
				t.Errorf("Set(%q) wrote to the store", key)
			}
		}
	})

	t.Run("accepts stored keys and known provider switches", func(t *testing.T) {
		for _, key := range []string{"DISABLE_SYNTHESIS", toggles.Maintenance, "DISABLE_GEMINI", "DISABLE_OPENROUTER"} {
			st := seeded()
			s := toggles.NewService(st, nil, time.Hour, nil)
			v, err := s.Set(ctx, key, true, "admin", known)
			if err != nil {
				t.Fatalf("Set(%q): %v", key, err)
			}
			if v.Key != key || !v.Enabled || !v.Stored || v.Source != toggles.SourceDatabase || v.UpdatedBy != "admin" {
				t.Errorf("Set(%q) view = %+v", key, v)
			}
			// The write is visible at once on this instance, despite the hour-long TTL.
			cur, err := s.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !cur.Enabled(key) {
				t.Errorf("after Set(%q) Current still says off", key)
			}
		}
	})

	t.Run("a provider switch needs the provider to be known", func(t *testing.T) {
		st := newMemStore() // not even seeded
		s := toggles.NewService(st, nil, time.Minute, nil)
		if _, err := s.Set(ctx, "DISABLE_OPENROUTER", true, "admin", []string{"deepseek"}); !errors.Is(err, toggles.ErrUnknownToggle) {
			t.Errorf("switch of an unknown provider = %v", err)
		}
		if _, err := s.Set(ctx, "DISABLE_DEEPSEEK", true, "admin", []string{"deepseek"}); err != nil {
			t.Errorf("switch of a known provider = %v", err)
		}
	})

	t.Run("an env override stays in force and the view says so", func(t *testing.T) {
		st := seeded()
		s := toggles.NewService(st, map[string]bool{"DISABLE_DEEPSEEK": true}, time.Minute, nil)
		v, err := s.Set(ctx, "DISABLE_DEEPSEEK", false, "admin", known)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Enabled || v.Stored || v.Source != toggles.SourceEnv {
			t.Errorf("view = %+v, want effective on from env, stored off", v)
		}
	})
}

func TestServiceCachesForTTL(t *testing.T) {
	ctx := context.Background()
	clk := &fixedClock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	st := seeded()
	s := toggles.NewService(st, nil, 30*time.Second, clk.now)
	for i := 0; i < 3; i++ {
		if _, err := s.Current(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if loads, _ := st.counts(); loads != 1 {
		t.Fatalf("loads within the TTL = %d, want 1", loads)
	}
	// Another instance flips a switch in the table: unseen until the TTL passes.
	st.mu.Lock()
	st.rows["DISABLE_DEEPSEEK"] = toggles.Toggle{Key: "DISABLE_DEEPSEEK", Enabled: true}
	st.mu.Unlock()
	set, _ := s.Current(ctx)
	if set.ProviderDisabled("deepseek") {
		t.Error("change seen before the TTL passed (the cache did not cache)")
	}
	clk.advance(30 * time.Second)
	set, err := s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !set.ProviderDisabled("deepseek") {
		t.Error("change not seen after the TTL")
	}
	if loads, _ := st.counts(); loads != 2 {
		t.Errorf("loads = %d, want 2", loads)
	}
}

type failingStore struct{ *memStore }

func (failingStore) LoadToggles(context.Context) (map[string]toggles.Toggle, error) {
	return nil, errors.New("db down")
}

func TestServiceLoadErrorIsAnError(t *testing.T) {
	s := toggles.NewService(failingStore{newMemStore()}, map[string]bool{"DISABLE_DEEPSEEK": true}, time.Minute, nil)
	if _, err := s.Current(context.Background()); err == nil {
		t.Error("a failed load returned toggles")
	}
}

func ptr[T any](v T) *T { return &v }
