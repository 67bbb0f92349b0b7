// Package toggles holds Helix's kill switches: one per provider (DISABLE_DEEPSEEK, ...: its
// routes fail over), DISABLE_SYNTHESIS, and ENABLE_MAINTENANCE_MODE (operations and writes answer
// 503; reads still work). They live in the feature_toggles table so operators can flip them at
// runtime, and an environment variable of the same name overrides the table, for a deploy-time
// switch that no admin call can undo.
package toggles

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/ttlcache"
)

// Keys of the fixed toggles.
const (
	Maintenance      = "ENABLE_MAINTENANCE_MODE"
	DisableSynthesis = "DISABLE_SYNTHESIS"
)

// providerPrefix starts every provider kill switch.
const providerPrefix = "DISABLE_"

// DisableProvider is the kill switch of a provider ("deepseek" → "DISABLE_DEEPSEEK").
func DisableProvider(provider string) string {
	return providerPrefix + strings.ToUpper(provider)
}

// Toggle is a stored switch.
type Toggle struct {
	Key         string
	Enabled     bool
	Description string
	UpdatedBy   string
	UpdatedAt   time.Time
}

// Source of a toggle's effective value.
const (
	SourceDatabase = "database"
	SourceEnv      = "env"
	SourceDefault  = "default"
)

// Set is the state of every toggle at one moment.
type Set struct {
	stored map[string]Toggle
	env    map[string]bool
}

// Enabled is the effective value of key: the environment's, else the table's, else off.
func (s Set) Enabled(key string) bool {
	if v, ok := s.env[key]; ok {
		return v
	}
	return s.stored[key].Enabled
}

// ProviderDisabled reports whether a provider's kill switch is on.
func (s Set) ProviderDisabled(provider string) bool { return s.Enabled(DisableProvider(provider)) }

// View is a toggle as the admin API shows it.
type View struct {
	Key         string
	Enabled     bool   // effective
	Stored      bool   // the table's value
	Source      string // where the effective value comes from
	Description string
	UpdatedBy   string
	UpdatedAt   time.Time
}

// Views lists every known toggle, sorted by key.
func (s Set) Views() []View {
	keys := map[string]struct{}{}
	for k := range s.stored {
		keys[k] = struct{}{}
	}
	for k := range s.env {
		keys[k] = struct{}{}
	}
	out := make([]View, 0, len(keys))
	for k := range keys {
		out = append(out, s.view(k))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (s Set) view(k string) View {
	t, stored := s.stored[k]
	v := View{Key: k, Enabled: s.Enabled(k), Stored: t.Enabled, Description: t.Description, UpdatedBy: t.UpdatedBy, UpdatedAt: t.UpdatedAt}
	switch _, env := s.env[k]; {
	case env:
		v.Source = SourceEnv
	case stored:
		v.Source = SourceDatabase
	default:
		v.Source = SourceDefault
	}
	return v
}

// Store persists toggles.
type Store interface {
	LoadToggles(ctx context.Context) (map[string]Toggle, error)
	SetToggle(ctx context.Context, key string, enabled bool, actor string) (Toggle, error)
}

// ErrUnknownToggle is returned when setting a key that is neither a known toggle nor a provider
// kill switch.
var ErrUnknownToggle = fault.New(fault.UnknownToggle, "unknown toggle")

// Service reads toggles through a short cache and writes them through the store.
type Service struct {
	store Store
	env   map[string]bool
	cache *ttlcache.Cache[Set]
}

// NewService returns the toggle service. env holds the overrides the environment pins
// (config.Config.KillSwitches); ttl bounds how long another instance's change can go unseen.
func NewService(store Store, env map[string]bool, ttl time.Duration, now func() time.Time) *Service {
	s := &Service{store: store, env: env}
	s.cache = ttlcache.New(func(ctx context.Context) (Set, error) {
		stored, err := store.LoadToggles(ctx)
		if err != nil {
			return Set{}, fmt.Errorf("load toggles: %w", err)
		}
		return Set{stored: stored, env: s.env}, nil
	}, ttl, now)
	return s
}

// Current returns the toggles, at most the TTL old.
func (s *Service) Current(ctx context.Context) (Set, error) { return s.cache.Get(ctx) }

// Set stores a toggle and returns the resulting view. Only keys already in the table or
// provider kill switches (DISABLE_<PROVIDER>) may be set, so a typo cannot create a switch that
// nothing reads.
func (s *Service) Set(ctx context.Context, key string, enabled bool, actor string, knownProviders []string) (View, error) {
	cur, err := s.Current(ctx)
	if err != nil {
		return View{}, err
	}
	if _, ok := cur.stored[key]; !ok && !isProviderSwitch(key, knownProviders) {
		return View{}, fault.Errorf(fault.UnknownToggle, "unknown toggle %q: use a key from GET /admin/toggles", key)
	}
	if _, err := s.store.SetToggle(ctx, key, enabled, actor); err != nil {
		return View{}, err
	}
	s.cache.Invalidate()
	cur, err = s.Current(ctx)
	if err != nil {
		return View{}, err
	}
	return cur.view(key), nil
}

func isProviderSwitch(key string, providers []string) bool {
	for _, p := range providers {
		if key == DisableProvider(p) {
			return true
		}
	}
	return false
}
