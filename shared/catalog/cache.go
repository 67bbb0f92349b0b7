package catalog

import (
	"context"
	"time"

	"github.com/helixhq/helix/shared/ttlcache"
)

// Source loads the whole catalog (a few dozen rows) in one go.
type Source interface {
	LoadCatalog(ctx context.Context) (*Snapshot, error)
}

// Cache keeps the latest snapshot in memory for at most its TTL (see package ttlcache): never
// stale past it, and a failed reload is an error rather than old prices or routes.
type Cache struct {
	c *ttlcache.Cache[*Snapshot]
}

// NewCache returns a cache over src. now is the clock (nil means time.Now).
func NewCache(src Source, ttl time.Duration, now func() time.Time) *Cache {
	return &Cache{c: ttlcache.New(src.LoadCatalog, ttl, now)}
}

// Get returns a snapshot no older than the TTL.
func (c *Cache) Get(ctx context.Context) (*Snapshot, error) { return c.c.Get(ctx) }

// Invalidate drops the cached snapshot, so this instance sees its own admin writes at once.
func (c *Cache) Invalidate() { c.c.Invalidate() }
