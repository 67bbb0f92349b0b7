// Package groupcommit writes the items of concurrent requests in one statement and one commit
// (group commit), for the writes Postgres cannot combine by itself: each of our budget
// reservations and settlements is its own transaction, and at 64 requests in flight the commits,
// round trips and per-statement work dominate what each request costs.
//
// How it batches: a request whose item finds no batch being written writes its item at once,
// alone; there is no timer on that path, so a lone request (the usual Lambda case: one request
// per instance) waits for nothing. Items that arrive while the MaxInFlight batches (one by
// default) are being written queue up, and the next free writer takes the whole queue (up to MaxBatch) as one
// batch. The window is therefore the time a commit takes, adaptive by construction: the busier
// the process, the larger the batches. Linger, when set, lets a writer that starts while other
// batches are in flight wait that long for more items (never a lone one).
//
// There is no background goroutine: the caller whose item leads a batch writes it and hands the
// next batch to a waiting caller, so nothing outlives the requests (a frozen Lambda holds no
// timers or workers).
//
// No library fits: the batching libraries we looked at flush on a timer or a size, which would
// add the window's wait to a lone request; this one is small and keeps that path wait-free.
package groupcommit

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Result is one item's outcome: the flush gives each item its own.
type Result[R any] struct {
	Value R
	Err   error
}

// Flush writes a batch and returns one result per item, in the items' order. It runs under a
// context that no single caller's cancellation can end (the batch is shared), bounded by the
// earliest deadline among the items.
type Flush[T, R any] func(ctx context.Context, items []T) []Result[R]

// Options tune a Batcher; the zero value is usable.
type Options struct {
	// MaxBatch bounds the items of one batch (default 64).
	MaxBatch int
	// MaxInFlight bounds the batches being written at once (default 1): a new item waits only
	// when that many are in flight. One batches best; more let a slow batch not hold up the
	// next, at the price of more lone writes.
	MaxInFlight int
	// Linger is how long a writer that starts while another batch is in flight waits for more
	// items before writing (default 0: it writes at once). A writer with no batch in flight
	// never lingers.
	Linger time.Duration
	// After is the clock Linger waits on (default time.After); tests give a fake.
	After func(time.Duration) <-chan time.Time
}

// ErrAbandoned: the caller's abandon context ended while its item was still queued; the item
// was not written.
var ErrAbandoned = errors.New("groupcommit: abandoned before it was written")

// Batcher batches the items of concurrent callers. Safe for concurrent use.
type Batcher[T, R any] struct {
	flush Flush[T, R]
	opts  Options

	mu       sync.Mutex
	inFlight int             // batches being written or formed
	queue    []*waiter[T, R] // items waiting for a writer
	forming  chan struct{}   // non-nil while a lingering writer waits; closed when the queue fills
}

type waiter[T, R any] struct {
	ctx  context.Context
	item T
	// done receives exactly one message: the item's result, or the batch it must write.
	done chan message[T, R]
}

type message[T, R any] struct {
	result Result[R]
	lead   []*waiter[T, R]
}

// New returns a batcher that writes with flush.
func New[T, R any](flush Flush[T, R], opts Options) *Batcher[T, R] {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 64
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1
	}
	if opts.After == nil {
		opts.After = time.After
	}
	return &Batcher[T, R]{flush: flush, opts: opts}
}

// Do writes item, alone or with others, and returns its own result. While the item is queued,
// ctx ending returns ctx's error and abandon (optional) ending returns ErrAbandoned, with the
// item not written; once its batch is being written, Do waits for the result whatever the
// contexts do, so the caller always learns what happened to an item that was sent.
func (b *Batcher[T, R]) Do(ctx, abandon context.Context, item T) (R, error) {
	w := &waiter[T, R]{ctx: ctx, item: item, done: make(chan message[T, R], 1)}
	b.mu.Lock()
	if b.forming == nil && b.inFlight < b.opts.MaxInFlight {
		// A free writer: this caller writes its item and whatever is queued, now.
		b.inFlight++
		batch := b.takeLocked(w)
		lingering := b.inFlight > 1 && b.opts.Linger > 0 && len(batch) < b.opts.MaxBatch
		var full chan struct{}
		if lingering {
			full = make(chan struct{})
			b.forming = full
			b.queue = batch // the batch forms in the queue while this writer lingers
		}
		b.mu.Unlock()
		if lingering {
			batch = b.linger(full)
		}
		b.write(batch)
	} else {
		b.queue = append(b.queue, w)
		if b.forming != nil && len(b.queue) >= b.opts.MaxBatch {
			close(b.forming)
			b.forming = nil
		}
		b.mu.Unlock()
	}
	return b.wait(w, abandon)
}

// takeLocked returns w after the queued items (they came first), up to MaxBatch; the rest stay.
func (b *Batcher[T, R]) takeLocked(w *waiter[T, R]) []*waiter[T, R] {
	batch := append(b.queue, w)
	b.queue = nil
	if len(batch) > b.opts.MaxBatch {
		b.queue = append([]*waiter[T, R](nil), batch[b.opts.MaxBatch:]...)
		batch = batch[:b.opts.MaxBatch]
	}
	return batch
}

// linger waits for the queue to fill or Linger to pass, then takes the queue as the batch.
func (b *Batcher[T, R]) linger(full chan struct{}) []*waiter[T, R] {
	select {
	case <-full:
	case <-b.opts.After(b.opts.Linger):
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.forming == full {
		b.forming = nil
	}
	return b.takeQueueLocked()
}

// takeQueueLocked takes up to MaxBatch queued items (callers who left are no longer queued).
func (b *Batcher[T, R]) takeQueueLocked() []*waiter[T, R] {
	n := min(len(b.queue), b.opts.MaxBatch)
	batch := b.queue[:n:n]
	b.queue = append([]*waiter[T, R](nil), b.queue[n:]...)
	return batch
}

// wait returns w's result, or leads the batch it is handed. A caller leaves the queue only
// while its item is still in it: after that, its batch is written and it waits for the result.
func (b *Batcher[T, R]) wait(w *waiter[T, R], abandon context.Context) (R, error) {
	var gone <-chan struct{}
	if abandon != nil {
		gone = abandon.Done()
	}
	for {
		var m message[T, R]
		select {
		case m = <-w.done:
		case <-w.ctx.Done():
			if b.leave(w) {
				var zero R
				return zero, w.ctx.Err()
			}
			m = <-w.done
		case <-gone:
			if b.leave(w) {
				var zero R
				return zero, ErrAbandoned
			}
			m = <-w.done
		}
		if m.lead == nil {
			return m.result.Value, m.result.Err
		}
		b.write(m.lead)
		// w was in the batch it wrote: its result is in its channel now.
		gone = nil
	}
}

// leave removes w from the queue, reporting whether it was still there.
func (b *Batcher[T, R]) leave(w *waiter[T, R]) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range b.queue {
		if q == w {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			return true
		}
	}
	return false
}

// write flushes batch, hands the queued items to their next writer, and delivers the results.
func (b *Batcher[T, R]) write(batch []*waiter[T, R]) {
	results := b.run(batch)

	b.mu.Lock()
	var next []*waiter[T, R]
	if b.forming == nil && len(b.queue) > 0 {
		next = b.takeQueueLocked() // this writer's slot passes to the next batch
	} else {
		b.inFlight--
	}
	b.mu.Unlock()
	if len(next) > 0 {
		next[0].done <- message[T, R]{lead: next}
	}
	for i, w := range batch {
		w.done <- message[T, R]{result: results[i]}
	}
}

// run calls the flush under a shared context: values of the first item's, no cancellation, the
// earliest deadline of all. A flush that returns the wrong number of results fails the batch.
func (b *Batcher[T, R]) run(batch []*waiter[T, R]) []Result[R] {
	items := make([]T, len(batch))
	deadline, has := time.Time{}, false
	for i, w := range batch {
		items[i] = w.item
		if dl, ok := w.ctx.Deadline(); ok && (!has || dl.Before(deadline)) {
			deadline, has = dl, true
		}
	}
	ctx := context.WithoutCancel(batch[0].ctx)
	if has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	results := b.flush(ctx, items)
	if len(results) != len(items) {
		err := errors.New("groupcommit: the flush returned a result count unlike its batch's")
		results = make([]Result[R], len(items))
		for i := range results {
			results[i].Err = err
		}
	}
	return results
}
