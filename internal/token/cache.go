package token

import (
	"sync"
	"time"
)

// cacheShards spreads the verified-token cache over independently locked
// maps so that concurrent requests rarely share a lock (or its cache line).
const cacheShards = 32

// cache remembers tokens that passed Verify, keyed by their exact string.
// It is bounded: a full shard evicts an expired entry if it finds one among
// the first few it looks at, otherwise an arbitrary one (Go's map iteration
// starts at a random place, which makes it a cheap random eviction).
type cache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex // guards m
	m  map[string]*cacheEntry
	_  [40]byte // keep neighbouring shards' locks on separate cache lines
}

// cacheEntry is immutable once stored.
type cacheEntry struct {
	claims Claims
	expiry time.Time // exp + Leeway: the entry is dead from here
	kid    string
}

func newCache(size int) *cache {
	c := &cache{perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheEntry)
	}
	return c
}

// shard picks a shard from the token's last bytes: they are signature
// bytes, uniformly spread, and reading them costs nothing.
func (c *cache) shard(raw string) *cacheShard {
	var h uint32 = 2166136261
	for i := max(0, len(raw)-8); i < len(raw); i++ {
		h = (h ^ uint32(raw[i])) * 16777619
	}
	return &c.shards[h%cacheShards]
}

// get returns a copy of the cached claims of raw if raw was verified, has
// not expired at now and its key still verifies in ring. A dead entry is
// dropped and reported as a miss, so the caller's full check gives the reason.
func (c *cache) get(raw string, now time.Time, ring *Keyring) (*Claims, bool) {
	s := c.shard(raw)
	s.mu.RLock()
	e := s.m[raw]
	s.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	if !now.Before(e.expiry) || !keyVerifies(ring, e.kid, now) {
		s.mu.Lock()
		if s.m[raw] == e {
			delete(s.m, raw)
		}
		s.mu.Unlock()
		return nil, false
	}
	cl := e.claims
	return &cl, true
}

func keyVerifies(ring *Keyring, kid string, now time.Time) bool {
	k := ring.set.Load().byKID[kid]
	return k != nil && k.verifies(now)
}

// put remembers that raw verified with claims under kid at now.
func (c *cache) put(raw string, claims *Claims, kid string, now time.Time) {
	if claims.ExpiresAt == nil {
		return
	}
	e := &cacheEntry{claims: *claims, expiry: claims.ExpiresAt.Add(Leeway), kid: kid}
	s := c.shard(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[raw]; !ok && len(s.m) >= c.perShard {
		s.evictOne(now)
	}
	s.m[raw] = e
}

// evictOne removes one entry, preferring an expired one among the first
// few visited. Called with s.mu held.
func (s *cacheShard) evictOne(now time.Time) {
	const look = 8
	var victim string
	n := 0
	for raw, e := range s.m {
		if !now.Before(e.expiry) {
			victim = raw
			break
		}
		if n == 0 {
			victim = raw
		}
		if n++; n == look {
			break
		}
	}
	delete(s.m, victim)
}

// len returns the number of cached tokens (for tests).
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
