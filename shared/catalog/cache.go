package catalog

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Source loads the whole catalog (a few dozen rows) in one go.
type Source interface {
	LoadCatalog(ctx context.Context) (*Snapshot, error)
}

// Cache keeps the latest snapshot in memory for at most TTL. A snapshot older than TTL is never
// served: the next caller reloads it (one load at a time), and if the load fails the caller gets
// the error rather than stale prices or routes.
type Cache struct {
	src Source
	ttl time.Duration
	now func() time.Time

	cur    atomic.Pointer[cached]
	loadMu sync.Mutex
}

type cached struct {
	snap *Snapshot
	at   time.Time // by this cache's clock
}

// NewCache returns a cache over src. now is the clock (time.Now in production).
func NewCache(src Source, ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{src: src, ttl: ttl, now: now}
}

// Get returns a snapshot no older than the TTL.
func (c *Cache) Get(ctx context.Context) (*Snapshot, error) {
	if e := c.cur.Load(); e != nil && c.now().Sub(e.at) < c.ttl {
		return e.snap, nil
	}
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	// Another caller may have reloaded while we waited for the lock.
	if e := c.cur.Load(); e != nil && c.now().Sub(e.at) < c.ttl {
		return e.snap, nil
	}
	// Stamp the time before the query: the data is at least this fresh.
	at := c.now()
	s, err := c.src.LoadCatalog(ctx)
	if err != nil {
		return nil, err
	}
	c.cur.Store(&cached{snap: s, at: at})
	return s, nil
}

// Invalidate drops the cached snapshot, so this instance sees its own admin writes at once.
func (c *Cache) Invalidate() { c.cur.Store(nil) }
