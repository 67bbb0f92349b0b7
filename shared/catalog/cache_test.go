package catalog_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/catalog"
)

// clock is a manual clock for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// source is a fake catalog.Source: every load returns a new snapshot whose LoadedAt is the
// number of the load in seconds after the Unix epoch, so tests can tell loads apart.
type source struct {
	calls atomic.Int64
	fail  atomic.Bool
	// hook, when set, runs inside LoadCatalog after the call is counted.
	hook func(ctx context.Context, n int64)
}

var errDB = errors.New("database unavailable")

func (s *source) LoadCatalog(ctx context.Context) (*catalog.Snapshot, error) {
	n := s.calls.Add(1)
	if s.hook != nil {
		s.hook(ctx, n)
	}
	if s.fail.Load() {
		return nil, errDB
	}
	return catalog.NewSnapshot([]catalog.Model{deepseek}, []catalog.Route{baseRoute()}, time.Unix(n, 0)), nil
}

// loadNumber says which load produced s.
func loadNumber(s *catalog.Snapshot) int64 { return s.LoadedAt().Unix() }

const ttl = 5 * time.Second

func TestCacheTTL(t *testing.T) {
	tests := []struct {
		name       string
		after      time.Duration // clock advance after the first Get
		wantReload bool
	}{
		{"immediately", 0, false},
		{"half the TTL", ttl / 2, false},
		{"one nanosecond before the TTL", ttl - time.Nanosecond, false},
		{"exactly the TTL", ttl, true},
		{"just after the TTL", ttl + time.Nanosecond, true},
		{"long after", 100 * ttl, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			src := &source{}
			c := catalog.NewCache(src, ttl, clk.Now)
			first, err := c.Get(t.Context())
			if err != nil || first == nil {
				t.Fatalf("first Get = %v, %v", first, err)
			}
			clk.Advance(tt.after)
			second, err := c.Get(t.Context())
			if err != nil {
				t.Fatalf("second Get: %v", err)
			}
			wantCalls, wantLoad := int64(1), int64(1)
			if tt.wantReload {
				wantCalls, wantLoad = 2, 2
			}
			if got := src.calls.Load(); got != wantCalls {
				t.Errorf("loads = %d, want %d", got, wantCalls)
			}
			if got := loadNumber(second); got != wantLoad {
				t.Errorf("served the snapshot of load %d, want load %d", got, wantLoad)
			}
		})
	}
}

func TestCacheServesWithinTTLWithoutReloading(t *testing.T) {
	clk := newClock()
	src := &source{}
	c := catalog.NewCache(src, ttl, clk.Now)
	first, err := c.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		clk.Advance(ttl / 200) // 100 steps cover half the TTL
		got, err := c.Get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			t.Fatalf("Get returned a different snapshot within the TTL")
		}
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("loads = %d, want 1", got)
	}
}

// The TTL counts from when the load started, not when it finished: a slow query must not
// extend the life of what it read.
func TestCacheTTLCountsFromLoadStart(t *testing.T) {
	clk := newClock()
	src := &source{}
	src.hook = func(context.Context, int64) { clk.Advance(2 * time.Second) } // each load takes 2s
	c := catalog.NewCache(src, ttl, clk.Now)
	if _, err := c.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The load started at 0 and finished at 2s; at 5s the data is TTL old.
	clk.Advance(3 * time.Second)
	s, err := c.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := loadNumber(s); got != 2 {
		t.Fatalf("served load %d at TTL after the first load started; want a reload", got)
	}
}

func TestCacheFailedReloadNeverServesStale(t *testing.T) {
	clk := newClock()
	src := &source{}
	c := catalog.NewCache(src, ttl, clk.Now)
	if _, err := c.Get(t.Context()); err != nil {
		t.Fatal(err)
	}

	src.fail.Store(true)
	clk.Advance(ttl)
	for i := range 3 { // every caller retries the load, none gets the old snapshot
		s, err := c.Get(t.Context())
		if !errors.Is(err, errDB) || s != nil {
			t.Fatalf("Get %d after a failed reload = %v, %v; want nil, %v", i, s, err, errDB)
		}
	}
	if got := src.calls.Load(); got != 4 {
		t.Fatalf("loads = %d, want 4 (1 good, 3 failed attempts)", got)
	}

	src.fail.Store(false)
	s, err := c.Get(t.Context())
	if err != nil {
		t.Fatalf("Get after recovery: %v", err)
	}
	if got := loadNumber(s); got != 5 {
		t.Fatalf("served load %d, want the fresh load 5", got)
	}
}

func TestCacheFirstLoadFails(t *testing.T) {
	src := &source{}
	src.fail.Store(true)
	c := catalog.NewCache(src, ttl, newClock().Now)
	if s, err := c.Get(t.Context()); !errors.Is(err, errDB) || s != nil {
		t.Fatalf("Get = %v, %v; want nil, %v", s, err, errDB)
	}
}

func TestCacheInvalidate(t *testing.T) {
	clk := newClock()
	src := &source{}
	c := catalog.NewCache(src, ttl, clk.Now)
	if _, err := c.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Invalidate()
	s, err := c.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := loadNumber(s); got != 2 {
		t.Fatalf("after Invalidate served load %d, want a reload", got)
	}
	// And the reloaded snapshot is cached again.
	if s2, _ := c.Get(t.Context()); s2 != s || src.calls.Load() != 2 {
		t.Fatalf("after the reload: loads = %d, same snapshot = %v", src.calls.Load(), s2 == s)
	}
	// Invalidate on an empty cache is harmless.
	catalog.NewCache(src, ttl, clk.Now).Invalidate()
}

func TestCachePassesContext(t *testing.T) {
	type key struct{}
	src := &source{}
	var saw any
	src.hook = func(ctx context.Context, _ int64) { saw = ctx.Value(key{}) }
	c := catalog.NewCache(src, ttl, newClock().Now)
	if _, err := c.Get(context.WithValue(t.Context(), key{}, "marker")); err != nil {
		t.Fatal(err)
	}
	if saw != "marker" {
		t.Fatalf("source saw context value %v, want the caller's context", saw)
	}
}

func TestCacheDefaultClock(t *testing.T) {
	src := &source{}
	c := catalog.NewCache(src, time.Hour, nil)
	a, err := c.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Get(t.Context())
	if err != nil || a != b || src.calls.Load() != 1 {
		t.Fatalf("with the default clock and a 1h TTL: loads = %d, same = %v, err = %v", src.calls.Load(), a == b, err)
	}
}

// Many callers arriving while the snapshot is expired trigger exactly one load; the others wait
// for it and share its result.
func TestCacheConcurrentExpiryLoadsOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		prime bool // a snapshot exists and has expired, rather than an empty cache
	}{{"empty cache", false}, {"expired snapshot", true}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			src := &source{}
			c := catalog.NewCache(src, ttl, clk.Now)
			base := int64(0)
			if tc.prime {
				if _, err := c.Get(t.Context()); err != nil {
					t.Fatal(err)
				}
				base = 1
				clk.Advance(ttl)
			}

			started := make(chan struct{})
			release := make(chan struct{})
			src.hook = func(context.Context, int64) {
				select {
				case started <- struct{}{}:
				default:
				}
				<-release
			}

			const callers = 64
			var wg sync.WaitGroup
			results := make([]*catalog.Snapshot, callers)
			errs := make([]error, callers)
			gate := make(chan struct{})
			for i := range callers {
				wg.Go(func() {
					<-gate
					results[i], errs[i] = c.Get(t.Context())
				})
			}
			close(gate)
			<-started // one caller is inside the load; the others pile up behind it
			close(release)
			wg.Wait()

			if got := src.calls.Load() - base; got != 1 {
				t.Fatalf("%d concurrent Gets caused %d loads, want 1", callers, got)
			}
			for i := range callers {
				if errs[i] != nil || results[i] == nil || loadNumber(results[i]) != base+1 {
					t.Fatalf("caller %d got %v, %v; want the one fresh snapshot", i, results[i], errs[i])
				}
			}
		})
	}
}

// Get reads concurrently with Invalidate and clock changes; run with -race.
func TestCacheConcurrentUse(t *testing.T) {
	clk := newClock()
	src := &source{}
	c := catalog.NewCache(src, ttl, clk.Now)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				if _, err := c.Get(t.Context()); err != nil {
					t.Error(err)
					return
				}
				switch (i + j) % 50 {
				case 0:
					c.Invalidate()
				case 25:
					clk.Advance(ttl)
				}
			}
		})
	}
	wg.Wait()
}

// Invalidate exists so that an instance sees its own admin writes at once. If a reload that
// started before the write is still in flight when Invalidate runs, that reload stores the
// pre-write snapshot afterwards, and it is served for a full TTL.
func TestCacheInvalidateDuringLoad(t *testing.T) {
	clk := newClock()
	src := &source{}
	c := catalog.NewCache(src, ttl, clk.Now)

	inLoad := make(chan struct{})
	release := make(chan struct{})
	src.hook = func(_ context.Context, n int64) {
		if n == 1 {
			close(inLoad)
			<-release
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Get(t.Context()) // reads the catalog before the admin write
	}()
	<-inLoad
	c.Invalidate() // the admin write committed; this instance drops its cache
	close(release)
	<-done

	s, err := c.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if loadNumber(s) == 1 {
		t.Fatal("Get after Invalidate served the snapshot read before the invalidation")
	}
}
