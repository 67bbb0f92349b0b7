package breaker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/helixhq/helix/shared/breaker"
)

// fakeStore is an in-memory breaker.Store that records every call. loadGate, when set, makes
// LoadBreakers signal loadStarted and wait for the gate before answering with the rows it read
// on entry.
type fakeStore struct {
	mu        sync.Mutex
	rows      map[string]breaker.State
	loads     int
	failures  []failureCall
	successes []string
	failState breaker.State // what RecordFailure returns
	loadErr   error

	loadStarted chan struct{}
	loadGate    chan struct{}
}

type failureCall struct {
	provider, reason string
	now              time.Time
	policy           breaker.Policy
}

func newFakeStore() *fakeStore { return &fakeStore{rows: map[string]breaker.State{}} }

func (s *fakeStore) LoadBreakers(context.Context) (map[string]breaker.State, error) {
	s.mu.Lock()
	s.loads++
	out := make(map[string]breaker.State, len(s.rows))
	for k, v := range s.rows {
		out[k] = v
	}
	started, gate, err := s.loadStarted, s.loadGate, s.loadErr
	s.mu.Unlock()
	if gate != nil {
		started <- struct{}{}
		<-gate
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *fakeStore) RecordFailure(_ context.Context, provider string, now time.Time, p breaker.Policy, reason string) (breaker.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, failureCall{provider: provider, reason: reason, now: now, policy: p})
	if !s.failState.OpenUntil.IsZero() {
		s.rows[provider] = s.failState
	}
	return s.failState, nil
}

func (s *fakeStore) RecordSuccess(_ context.Context, provider string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.successes = append(s.successes, provider)
	delete(s.rows, provider)
	return nil
}

func (s *fakeStore) set(provider string, st breaker.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows[provider] = st
}

func (s *fakeStore) stats() (loads, failures, successes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads, len(s.failures), len(s.successes)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

var policy = breaker.Policy{Threshold: 2, Window: time.Minute, Cooldown: time.Minute}

func snapshot(t *testing.T, b *breaker.Breakers) breaker.Snapshot {
	t.Helper()
	s, err := b.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSnapshotOpenByTime(t *testing.T) {
	clk := &clock{t: t0}
	st := newFakeStore()
	st.set("deepseek", breaker.State{OpenUntil: t0.Add(time.Minute)})
	st.set("gemini", breaker.State{OpenUntil: t0.Add(-time.Second)}) // cooled down: trial allowed
	b := breaker.New(st, policy, time.Hour, clk.now)

	tests := []struct {
		at       time.Duration
		provider string
		open     bool
	}{
		{0, "deepseek", true},
		{59 * time.Second, "deepseek", true},
		{time.Minute - time.Nanosecond, "deepseek", true},
		{time.Minute, "deepseek", false}, // open until, not through
		{2 * time.Minute, "deepseek", false},
		{0, "gemini", false},
		{0, "anthropic", false}, // no row: closed
	}
	for _, tt := range tests {
		clk.mu.Lock()
		clk.t = t0.Add(tt.at)
		clk.mu.Unlock()
		if got := snapshot(t, b).Open(tt.provider); got != tt.open {
			t.Errorf("at +%v Open(%s) = %v, want %v", tt.at, tt.provider, got, tt.open)
		}
	}
	// The zero Snapshot (no state at all) opens nothing.
	if (breaker.Snapshot{}).Open("deepseek") {
		t.Error("zero snapshot reports an open breaker")
	}
	if loads, _, _ := st.stats(); loads != 1 {
		t.Errorf("loads within the TTL = %d, want 1", loads)
	}
}

func TestSnapshotIsFixedAtItsTime(t *testing.T) {
	clk := &clock{t: t0}
	st := newFakeStore()
	st.set("deepseek", breaker.State{OpenUntil: t0.Add(time.Minute)})
	b := breaker.New(st, policy, time.Hour, clk.now)
	s := snapshot(t, b)
	clk.advance(2 * time.Minute)
	if !s.Open("deepseek") {
		t.Error("a snapshot changed its answer when the clock moved")
	}
}

func TestFailurePassesClockPolicyAndReason(t *testing.T) {
	clk := &clock{t: t0}
	st := newFakeStore()
	b := breaker.New(st, policy, time.Hour, clk.now)
	if err := b.Failure(context.Background(), "deepseek", "unavailable"); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.failures) != 1 {
		t.Fatalf("RecordFailure calls = %d", len(st.failures))
	}
	got := st.failures[0]
	if got.provider != "deepseek" || got.reason != "unavailable" || !got.now.Equal(t0) || got.policy != policy {
		t.Errorf("RecordFailure got %+v", got)
	}
}

func TestFailureThatOpensIsSeenLocallyAtOnce(t *testing.T) {
	clk := &clock{t: t0}
	st := newFakeStore()
	b := breaker.New(st, policy, time.Hour, clk.now)
	if snapshot(t, b).Open("deepseek") {
		t.Fatal("open before any failure")
	}
	// The store says this failure opened the breaker; the cache (an hour's TTL) has not reloaded.
	st.failState = breaker.State{OpenUntil: t0.Add(time.Minute)}
	if err := b.Failure(context.Background(), "deepseek", "unavailable"); err != nil {
		t.Fatal(err)
	}
	if !snapshot(t, b).Open("deepseek") {
		t.Error("this instance does not see the breaker it just opened")
	}
	if loads, _, _ := st.stats(); loads != 1 {
		t.Errorf("loads = %d, want 1 (the overlay must not need a reload)", loads)
	}
}

func TestSuccessWritesOnlyAfterAnOpenPeriod(t *testing.T) {
	tests := []struct {
		name      string
		state     *breaker.State
		wantWrite bool
	}{
		{name: "never opened", state: nil, wantWrite: false},
		{name: "open now", state: &breaker.State{OpenUntil: t0.Add(time.Minute)}, wantWrite: true},
		{name: "cooled down, trial pending", state: &breaker.State{OpenUntil: t0.Add(-time.Minute)}, wantWrite: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: t0}
			st := newFakeStore()
			if tt.state != nil {
				st.set("deepseek", *tt.state)
			}
			b := breaker.New(st, policy, time.Hour, clk.now)
			snap := snapshot(t, b)
			if err := b.Success(context.Background(), snap, "deepseek"); err != nil {
				t.Fatal(err)
			}
			_, _, successes := st.stats()
			if got := successes == 1; got != tt.wantWrite || successes > 1 {
				t.Fatalf("RecordSuccess calls = %d, want write %v", successes, tt.wantWrite)
			}
			// Another provider's success never writes.
			if err := b.Success(context.Background(), snap, "gemini"); err != nil {
				t.Fatal(err)
			}
			if _, _, s := st.stats(); s != successes {
				t.Error("a success of a provider with no open period wrote")
			}
			if tt.wantWrite && snapshot(t, b).Open("deepseek") {
				t.Error("after a success closed it, this instance still sees the breaker open")
			}
		})
	}
}

func TestOverlayIsDroppedOnReload(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: t0}
	st := newFakeStore()
	b := breaker.New(st, policy, 10*time.Second, clk.now)
	snapshot(t, b) // load 1: nothing open

	st.failState = breaker.State{OpenUntil: t0.Add(time.Hour)}
	if err := b.Failure(ctx, "deepseek", "unavailable"); err != nil {
		t.Fatal(err)
	}
	if !snapshot(t, b).Open("deepseek") {
		t.Fatal("overlay not applied")
	}
	// Meanwhile another instance's success closed it in the database.
	st.mu.Lock()
	delete(st.rows, "deepseek")
	st.mu.Unlock()
	clk.advance(5 * time.Second)
	if !snapshot(t, b).Open("deepseek") {
		t.Error("within the TTL the overlay should still apply")
	}
	clk.advance(5 * time.Second) // the TTL has passed: reload
	if snapshot(t, b).Open("deepseek") {
		t.Error("after a reload the stale overlay still keeps the breaker open")
	}
	if loads, _, _ := st.stats(); loads != 2 {
		t.Errorf("loads = %d, want 2", loads)
	}

	// Refresh drops cache and overlay at once.
	st.failState = breaker.State{OpenUntil: t0.Add(time.Hour)}
	if err := b.Failure(ctx, "gemini", "unavailable"); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	delete(st.rows, "gemini")
	st.mu.Unlock()
	b.Refresh()
	if snapshot(t, b).Open("gemini") {
		t.Error("Refresh kept the overlay")
	}
}

func TestLoadErrorIsAnError(t *testing.T) {
	st := newFakeStore()
	st.loadErr = errors.New("db down")
	b := breaker.New(st, policy, time.Minute, nil)
	if _, err := b.Snapshot(context.Background()); err == nil {
		t.Error("Snapshot hid a failed load")
	}
}

// A failure recorded while a reload is in flight must not be forgotten: the reload read the
// table before the failure was written, so clearing the overlay loses this instance's own write.
func TestFailureDuringReloadIsNotForgotten(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: t0}
	st := newFakeStore()
	st.loadStarted, st.loadGate = make(chan struct{}), make(chan struct{})
	b := breaker.New(st, policy, time.Hour, clk.now)

	done := make(chan error)
	go func() {
		_, err := b.Snapshot(ctx) // reads the table (nothing open), then waits at the gate
		done <- err
	}()
	<-st.loadStarted
	st.failState = breaker.State{OpenUntil: t0.Add(time.Minute)}
	if err := b.Failure(ctx, "deepseek", "unavailable"); err != nil {
		t.Fatal(err)
	}
	close(st.loadGate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.loadStarted, st.loadGate = nil, nil
	st.mu.Unlock()
	if !snapshot(t, b).Open("deepseek") {
		t.Error("the breaker this instance opened during a reload is forgotten until the next reload")
	}
}
