// Package ttlcache keeps one value loaded from a slow source (Postgres) in memory for at most a
// TTL. A value older than the TTL is never served: the next caller reloads it, one load at a time,
// and gets the load's error rather than stale data if it fails.
package ttlcache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Cache holds the latest value of type T.
type Cache[T any] struct {
	load func(context.Context) (T, error)
	ttl  time.Duration
	now  func() time.Time

	cur    atomic.Pointer[entry[T]]
	loadMu sync.Mutex
	// gen counts invalidations: a load that began before one must not store its older value.
	gen atomic.Uint64
}

type entry[T any] struct {
	val T
	at  time.Time // by this cache's clock, taken before the load began
}

// New returns a cache over load. now is the clock; nil means time.Now.
func New[T any](load func(context.Context) (T, error), ttl time.Duration, now func() time.Time) *Cache[T] {
	if now == nil {
		now = time.Now
	}
	return &Cache[T]{load: load, ttl: ttl, now: now}
}

// Get returns a value no older than the TTL.
func (c *Cache[T]) Get(ctx context.Context) (T, error) {
	if e := c.cur.Load(); e != nil && c.now().Sub(e.at) < c.ttl {
		return e.val, nil
	}
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	// Another caller may have reloaded while this one waited for the lock.
	if e := c.cur.Load(); e != nil && c.now().Sub(e.at) < c.ttl {
		return e.val, nil
	}
	at, gen := c.now(), c.gen.Load()
	v, err := c.load(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	if c.gen.Load() == gen {
		c.cur.Store(&entry[T]{val: v, at: at})
	}
	return v, nil
}

// Invalidate drops the cached value, so this instance sees its own writes at once; a load already
// under way when it is called does not store what it read.
func (c *Cache[T]) Invalidate() {
	c.gen.Add(1)
	c.cur.Store(nil)
}
