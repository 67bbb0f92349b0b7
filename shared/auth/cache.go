package auth

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// verifiedCache remembers tokens whose signature and claims were verified, so that a client
// sending the same token on every request pays for the check once rather than every time
// (verification was about a quarter of the dev server's CPU per request). Entries are keyed by
// the hash of the exact token bytes, so only that very token hits; they last until the token
// expires or ttl passes, whichever comes first, so a key removed from the issuer's JWKS stops
// being honoured within ttl. The cache is bounded: when full it is emptied and refills.
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]verifiedEntry
	max     int
	ttl     time.Duration
}

type verifiedEntry struct {
	p     Principal
	until time.Time
}

func newVerifiedCache(max int, ttl time.Duration) *verifiedCache {
	return &verifiedCache{entries: make(map[[sha256.Size]byte]verifiedEntry), max: max, ttl: ttl}
}

// tokenKey is the cache key of a token: the SHA-256 of its bytes. The bytes are hashed in place
// rather than through []byte(token), which copies a token (a few hundred bytes) to the heap on
// every request: Sum256 only reads its argument and keeps nothing of it, so viewing the
// string's bytes as a slice is safe here.
func tokenKey(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

func (c *verifiedCache) get(token string, now time.Time) (Principal, bool) {
	k := tokenKey(token)
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return Principal{}, false
	}
	return e.p, true
}

func (c *verifiedCache) put(token string, p Principal, expires, now time.Time) {
	until := now.Add(c.ttl)
	if expires.Before(until) {
		until = expires
	}
	k := tokenKey(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[k] = verifiedEntry{p: p, until: until}
}
