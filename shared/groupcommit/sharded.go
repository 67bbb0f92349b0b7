package groupcommit

import (
	"context"
	"sync"
)

// Sharded keeps one Batcher per shard, so that items of different shards never share a batch
// (nor its transaction). With one database every item is in the same shard; sharding budgets
// by user (docs/admin/scaling.md) gives each shard its own batches, so a batch stays a
// single-shard transaction.
type Sharded[T, R any] struct {
	shard func(T) string
	flush Flush[T, R]
	opts  Options

	// one serves every item when there is no shard function (one database): no lookup per item.
	one *Batcher[T, R]

	mu       sync.Mutex
	batchers map[string]*Batcher[T, R]
}

// NewSharded returns batchers keyed by shard(item); a nil shard puts every item in one shard.
func NewSharded[T, R any](shard func(T) string, flush Flush[T, R], opts Options) *Sharded[T, R] {
	if shard == nil {
		return &Sharded[T, R]{one: New(flush, opts)}
	}
	return &Sharded[T, R]{shard: shard, flush: flush, opts: opts, batchers: map[string]*Batcher[T, R]{}}
}

// Do is Batcher.Do on the item's shard.
func (s *Sharded[T, R]) Do(ctx, abandon context.Context, item T) (R, error) {
	if s.one != nil {
		return s.one.Do(ctx, abandon, item)
	}
	key := s.shard(item)
	s.mu.Lock()
	b, ok := s.batchers[key]
	if !ok {
		b = New(s.flush, s.opts)
		s.batchers[key] = b
	}
	s.mu.Unlock()
	return b.Do(ctx, abandon, item)
}
