// Package breaker keeps per-provider circuit breakers whose state lives in Postgres, so every
// Lambda instance skips a provider another instance found failing. A breaker opens when
// Threshold failures happen within Window, stays open for Cooldown, then lets a trial call
// through: a failure reopens it at once, a success closes it.
//
// Successes cost no database write unless the breaker was recently open, so the healthy path
// stays at zero extra round trips; instances read the state through a short cache.
package breaker

import (
	"context"
	"sync"
	"time"

	"github.com/helixhq/helix/shared/ttlcache"
)

// Policy tunes the breakers.
type Policy struct {
	Threshold int           // failures within Window that open the breaker
	Window    time.Duration // how far back failures count
	Cooldown  time.Duration // how long an open breaker skips its provider
}

// DefaultPolicy opens after 5 failures in 30 s, for 30 s.
func DefaultPolicy() Policy {
	return Policy{Threshold: 5, Window: 30 * time.Second, Cooldown: 30 * time.Second}
}

// State is a provider's breaker as stored. OpenUntil is zero when it never opened or was closed
// by a success.
type State struct {
	OpenUntil time.Time
}

// Store persists breaker state.
type Store interface {
	LoadBreakers(ctx context.Context) (map[string]State, error)
	// RecordFailure counts a failure at now and returns the resulting state; the store opens the
	// breaker per policy in the same statement.
	RecordFailure(ctx context.Context, provider string, now time.Time, p Policy, reason string) (State, error)
	// RecordSuccess closes the breaker.
	RecordSuccess(ctx context.Context, provider string) error
}

// Breakers is the process-side view of the shared breakers.
type Breakers struct {
	store  Store
	policy Policy
	now    func() time.Time
	cache  *ttlcache.Cache[map[string]State]

	// seen holds states this instance learned from its own writes, with when it learned them;
	// a reload drops the entries learned before it began, since the database then has them (and
	// maybe newer ones), and keeps those learned while it ran.
	mu   sync.Mutex
	seq  uint64
	seen map[string]learned
}

type learned struct {
	state State
	seq   uint64
}

// New returns breakers over store; ttl bounds how late this instance sees another's change.
func New(store Store, p Policy, ttl time.Duration, now func() time.Time) *Breakers {
	if now == nil {
		now = time.Now
	}
	b := &Breakers{store: store, policy: p, now: now, seen: map[string]learned{}}
	b.cache = ttlcache.New(b.load, ttl, now)
	return b
}

func (b *Breakers) load(ctx context.Context) (map[string]State, error) {
	b.mu.Lock()
	began := b.seq
	b.mu.Unlock()
	states, err := b.store.LoadBreakers(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	for k, l := range b.seen {
		if l.seq <= began {
			delete(b.seen, k)
		}
	}
	b.mu.Unlock()
	return states, nil
}

// Snapshot is the breakers' state for one request.
type Snapshot struct {
	states map[string]State
	now    time.Time
}

// Open reports whether calls to provider should be skipped now.
func (s Snapshot) Open(provider string) bool {
	st, ok := s.states[provider]
	return ok && s.now.Before(st.OpenUntil)
}

// recentlyOpen reports whether the breaker has an open period on record (open now, or a trial
// pending after cooldown), which a success must clear.
func (s Snapshot) recentlyOpen(provider string) bool {
	return !s.states[provider].OpenUntil.IsZero()
}

// Snapshot returns the current state of every breaker.
func (b *Breakers) Snapshot(ctx context.Context) (Snapshot, error) {
	shared, err := b.cache.Get(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	states := shared
	if len(b.seen) > 0 {
		states = make(map[string]State, len(shared)+len(b.seen))
		for k, v := range shared {
			states[k] = v
		}
		for k, l := range b.seen {
			states[k] = l.state
		}
	}
	return Snapshot{states: states, now: b.now()}, nil
}

// Failure records a failed call to provider.
func (b *Breakers) Failure(ctx context.Context, provider, reason string) error {
	st, err := b.store.RecordFailure(ctx, provider, b.now(), b.policy, reason)
	if err != nil {
		return err
	}
	b.remember(provider, st)
	return nil
}

// Success records a successful call; it writes only when the breaker had an open period.
func (b *Breakers) Success(ctx context.Context, snap Snapshot, provider string) error {
	if !snap.recentlyOpen(provider) {
		return nil
	}
	if err := b.store.RecordSuccess(ctx, provider); err != nil {
		return err
	}
	b.remember(provider, State{})
	return nil
}

func (b *Breakers) remember(provider string, st State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	b.seen[provider] = learned{state: st, seq: b.seq}
}

// Refresh drops the cached shared state and this instance's overlay (tests, admin reads).
func (b *Breakers) Refresh() {
	b.cache.Invalidate()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = map[string]learned{}
}
