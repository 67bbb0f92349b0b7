package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a flush that records its batches and answers each item with item*10, or an error
// for negative items; gate, when set, holds each flush until the test lets it go.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	gate    chan struct{}
	started chan []int
}

func (r *recorder) flush(_ context.Context, items []int) []Result[int] {
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(items))
	r.mu.Unlock()
	if r.started != nil {
		r.started <- slices.Clone(items)
	}
	if r.gate != nil {
		<-r.gate
	}
	out := make([]Result[int], len(items))
	for i, it := range items {
		if it < 0 {
			out[i].Err = fmt.Errorf("item %d refused", it)
		} else {
			out[i].Value = it * 10
		}
	}
	return out
}

func (r *recorder) seen() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// fakeClock is an After that records each wait and fires only when the test says so.
type fakeClock struct {
	waits chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{waits: make(chan time.Duration, 16), fire: make(chan time.Time)}
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

// queued waits until n items are queued in b (the test's way to know concurrent callers have
// arrived, without sleeping a guessed time).
func queued[T, R any](t *testing.T, b *Batcher[T, R], n int) {
	t.Helper()
	for range 10000 {
		b.mu.Lock()
		got := len(b.queue)
		b.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d items never queued", n)
}

type outcome struct {
	v   int
	err error
}

func goDo(b *Batcher[int, int], ctx, abandon context.Context, item int) chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		v, err := b.Do(ctx, abandon, item)
		ch <- outcome{v, err}
	}()
	return ch
}

// A lone item is written at once, alone, and never waits on the clock, even with a Linger set.
func TestLoneItemIsWrittenAtOnceWithoutWaiting(t *testing.T) {
	rec := &recorder{}
	clock := newFakeClock()
	b := New(rec.flush, Options{Linger: time.Hour, After: clock.After})
	for i := range 3 {
		// The fake clock never fires: had Do waited on it, this would block forever.
		v, err := b.Do(context.Background(), nil, i)
		if err != nil || v != i*10 {
			t.Fatalf("Do(%d) = %d, %v", i, v, err)
		}
	}
	if len(clock.waits) != 0 {
		t.Fatalf("a lone item waited on the clock %d times", len(clock.waits))
	}
	if got := rec.seen(); !slices.EqualFunc(got, [][]int{{0}, {1}, {2}}, slices.Equal) {
		t.Fatalf("batches = %v, want each item alone", got)
	}
}

// Items that arrive while the only writer is busy are written together in the next batch, in
// arrival order, each with its own result (a refused one does not fail the others).
func TestItemsArrivingDuringAWriteShareTheNextBatch(t *testing.T) {
	rec := &recorder{gate: make(chan struct{}), started: make(chan []int, 4)}
	b := New(rec.flush, Options{MaxInFlight: 1})
	ctx := context.Background()
	first := goDo(b, ctx, nil, 1)
	<-rec.started // the first write is in flight
	var waits []chan outcome
	for i, it := range []int{2, -3, 4} {
		waits = append(waits, goDo(b, ctx, nil, it))
		queued(t, b, i+1)
	}
	rec.gate <- struct{}{} // the first write ends; its writer hands the queue on
	if got := <-rec.started; !slices.Equal(got, []int{2, -3, 4}) {
		t.Fatalf("second batch = %v, want [2 -3 4]", got)
	}
	rec.gate <- struct{}{}
	if o := <-first; o.err != nil || o.v != 10 {
		t.Fatalf("first = %+v", o)
	}
	want := []outcome{{20, nil}, {0, errors.New("refused")}, {40, nil}}
	for i, ch := range waits {
		o := <-ch
		if (o.err != nil) != (want[i].err != nil) || o.v != want[i].v {
			t.Errorf("item %d: %+v, want %+v", i, o, want[i])
		}
	}
	if n := len(rec.seen()); n != 2 {
		t.Fatalf("%d flushes, want 2", n)
	}
}

// MaxBatch splits a long queue; every item is still written exactly once.
func TestMaxBatchSplitsTheQueue(t *testing.T) {
	rec := &recorder{gate: make(chan struct{}), started: make(chan []int, 8)}
	b := New(rec.flush, Options{MaxInFlight: 1, MaxBatch: 2})
	ctx := context.Background()
	first := goDo(b, ctx, nil, 0)
	<-rec.started
	var waits []chan outcome
	for i := 1; i <= 5; i++ {
		waits = append(waits, goDo(b, ctx, nil, i))
		queued(t, b, i)
	}
	var sizes []int
	for range 4 { // the first write and the three batches of the queue (2, 2, 1)
		rec.gate <- struct{}{}
		if len(sizes) < 3 {
			sizes = append(sizes, len(<-rec.started))
		}
	}
	if !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Fatalf("batch sizes %v, want [2 2 1]", sizes)
	}
	<-first
	for i, ch := range waits {
		if o := <-ch; o.err != nil || o.v != (i+1)*10 {
			t.Errorf("item %d: %+v", i+1, o)
		}
	}
}

// A writer that starts while another batch is in flight lingers on the clock for more items;
// the batch it writes holds the ones that came meanwhile.
func TestLingerGathersItemsWhileAnotherBatchIsInFlight(t *testing.T) {
	rec := &recorder{gate: make(chan struct{}), started: make(chan []int, 4)}
	clock := newFakeClock()
	b := New(rec.flush, Options{MaxInFlight: 2, Linger: 200 * time.Microsecond, After: clock.After})
	ctx := context.Background()
	first := goDo(b, ctx, nil, 1)
	<-rec.started
	second := goDo(b, ctx, nil, 2) // a free writer, but a batch is in flight: it lingers
	if d := <-clock.waits; d != 200*time.Microsecond {
		t.Fatalf("lingered %v", d)
	}
	third := goDo(b, ctx, nil, 3)
	queued(t, b, 2) // 2 (forming) and 3
	clock.fire <- time.Time{}
	if got := <-rec.started; !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("lingered batch = %v, want [2 3]", got)
	}
	rec.gate <- struct{}{}
	rec.gate <- struct{}{}
	for i, ch := range []chan outcome{first, second, third} {
		if o := <-ch; o.err != nil || o.v != (i+1)*10 {
			t.Errorf("item %d: %+v", i+1, o)
		}
	}
}

// A lingering batch that fills up is written without waiting for the clock.
func TestLingerEndsWhenTheBatchIsFull(t *testing.T) {
	rec := &recorder{gate: make(chan struct{}), started: make(chan []int, 4)}
	clock := newFakeClock()
	b := New(rec.flush, Options{MaxInFlight: 2, MaxBatch: 2, Linger: time.Hour, After: clock.After})
	ctx := context.Background()
	first := goDo(b, ctx, nil, 1)
	<-rec.started
	second := goDo(b, ctx, nil, 2)
	<-clock.waits
	third := goDo(b, ctx, nil, 3) // fills the forming batch: it goes now, the clock never fires
	if got := <-rec.started; !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("full batch = %v, want [2 3]", got)
	}
	rec.gate <- struct{}{}
	rec.gate <- struct{}{}
	for _, ch := range []chan outcome{first, second, third} {
		if o := <-ch; o.err != nil {
			t.Error(o.err)
		}
	}
}

// A queued item whose caller goes away is not written: abandon gives ErrAbandoned, the
// context's end gives its error. An item already being written is waited for.
func TestQueuedItemsCanBeAbandoned(t *testing.T) {
	rec := &recorder{gate: make(chan struct{}), started: make(chan []int, 4)}
	b := New(rec.flush, Options{MaxInFlight: 1})
	ctx := context.Background()
	firstAbandon, cancelFirst := context.WithCancel(ctx)
	first := goDo(b, ctx, firstAbandon, 1)
	<-rec.started
	cancelFirst() // too late: it is being written

	abandon, giveUp := context.WithCancel(ctx)
	gone := goDo(b, ctx, abandon, 2)
	queued(t, b, 1)
	expiring, expire := context.WithCancel(ctx)
	expired := goDo(b, expiring, nil, 3)
	queued(t, b, 2)
	kept := goDo(b, ctx, nil, 4)
	queued(t, b, 3)
	giveUp()
	expire()
	if o := <-gone; !errors.Is(o.err, ErrAbandoned) {
		t.Errorf("abandoned item: %+v, want ErrAbandoned", o)
	}
	if o := <-expired; !errors.Is(o.err, context.Canceled) {
		t.Errorf("item whose context ended: %+v, want context.Canceled", o)
	}
	rec.gate <- struct{}{}
	if got := <-rec.started; !slices.Equal(got, []int{4}) {
		t.Fatalf("next batch = %v, want only the item still waiting", got)
	}
	rec.gate <- struct{}{}
	if o := <-first; o.err != nil || o.v != 10 {
		t.Errorf("item abandoned while being written: %+v, want its result", o)
	}
	if o := <-kept; o.err != nil || o.v != 40 {
		t.Errorf("kept item: %+v", o)
	}
}

// The flush runs under a context no caller can cancel, with the batch's earliest deadline.
func TestFlushContextHasTheEarliestDeadlineAndNoCancellation(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan struct{}, 4)
	var got []time.Time
	var canceled []bool
	var mu sync.Mutex
	b := New(func(ctx context.Context, items []int) []Result[int] {
		started <- struct{}{}
		<-gate
		dl, _ := ctx.Deadline()
		mu.Lock()
		got, canceled = append(got, dl), append(canceled, ctx.Err() != nil)
		mu.Unlock()
		return make([]Result[int], len(items))
	}, Options{MaxInFlight: 1})
	base := time.Now().Add(time.Hour)
	first := goDo(b, context.Background(), nil, 0)
	<-started
	late, cancelLate := context.WithDeadline(context.Background(), base.Add(time.Minute))
	defer cancelLate()
	early, cancelEarly := context.WithDeadline(context.Background(), base)
	defer cancelEarly()
	a := goDo(b, late, nil, 1)
	queued(t, b, 1)
	c := goDo(b, early, nil, 2)
	queued(t, b, 2)
	gate <- struct{}{}
	<-started
	cancelLate() // the leader's own context ends mid-write: the write goes on
	gate <- struct{}{}
	<-first
	<-a
	<-c
	mu.Lock()
	defer mu.Unlock()
	if !got[1].Equal(base) || canceled[1] {
		t.Fatalf("flush deadline %v (canceled %v), want %v and not canceled", got[1], canceled[1], base)
	}
}

// A flush that answers the wrong number of results fails its whole batch, never misattributes.
func TestWrongResultCountFailsTheBatch(t *testing.T) {
	b := New(func(_ context.Context, items []int) []Result[int] { return nil }, Options{})
	if _, err := b.Do(context.Background(), nil, 1); err == nil {
		t.Fatal("no error for a flush without results")
	}
}

// Under many concurrent callers every item is written exactly once, in a batch no larger than
// MaxBatch, with no more than MaxInFlight writes at once, and gets its own result.
func TestConcurrentCallersEachGetTheirOwnResult(t *testing.T) {
	var inFlight, peak atomic.Int32
	var written sync.Map
	var mu sync.Mutex
	largest := 0
	b := New(func(_ context.Context, items []int) []Result[int] {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer inFlight.Add(-1)
		mu.Lock()
		largest = max(largest, len(items))
		mu.Unlock()
		out := make([]Result[int], len(items))
		for i, it := range items {
			if _, dup := written.LoadOrStore(it, true); dup {
				out[i].Err = fmt.Errorf("item %d written twice", it)
			}
			out[i].Value = it * 10
			time.Sleep(10 * time.Microsecond) // a write takes time, so queues form
		}
		return out
	}, Options{MaxInFlight: 3, MaxBatch: 16})
	const n = 2000
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := b.Do(context.Background(), nil, i)
			if err != nil || v != i*10 {
				t.Errorf("item %d: %d, %v", i, v, err)
			}
		})
	}
	wg.Wait()
	count := 0
	written.Range(func(any, any) bool { count++; return true })
	if count != n {
		t.Fatalf("%d items written, want %d", count, n)
	}
	if p := peak.Load(); p > 3 {
		t.Fatalf("%d writes at once, MaxInFlight is 3", p)
	}
	if largest > 16 {
		t.Fatalf("a batch of %d, MaxBatch is 16", largest)
	}
	t.Logf("largest batch %d, peak writes at once %d", largest, peak.Load())
}

// Items of different shards never share a batch; items of one shard do.
func TestShardedBatchesNeverMixShards(t *testing.T) {
	gate := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	started := make(chan struct{}, 16)
	s := NewSharded(func(i int) string { return fmt.Sprint(i % 2) }, func(_ context.Context, items []int) []Result[int] {
		mu.Lock()
		batches = append(batches, slices.Clone(items))
		mu.Unlock()
		started <- struct{}{}
		<-gate
		return make([]Result[int], len(items))
	}, Options{MaxInFlight: 1})
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, first := range []int{0, 1} { // one write in flight per shard
		wg.Go(func() { _, _ = s.Do(ctx, nil, first) })
		<-started
	}
	for i := 2; i < 10; i++ {
		wg.Go(func() { _, _ = s.Do(ctx, nil, i) })
	}
	for _, b := range s.batchers {
		queued(t, b, 4)
	}
	close(gate)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 4 {
		t.Fatalf("batches %v, want 4 (one lone and one of four per shard)", batches)
	}
	for _, b := range batches {
		for _, it := range b {
			if it%2 != b[0]%2 {
				t.Fatalf("batch %v mixes shards", b)
			}
		}
	}
}
