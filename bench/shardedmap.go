package bench

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// ShardedMapLocal is the second design measured before the shipped one: 256
// shards, each a Go map from a 16-byte key to the bucket's tat (by value, no
// pointer per entry) under a per-shard mutex. It has the seed's algorithm
// and decisions; the shipped limiter replaced the map with an
// open-addressing table updated by compare-and-swap (see internal/limiter).
type ShardedMapLocal struct {
	interval, capacity int64
	base               time.Time
	seed               maphash.Seed
	shards             [256]mapShard
}

type mapShard struct {
	mu sync.Mutex
	m  map[[2]uint64]int64 // mu guards it
	_  [48]byte
}

// NewShardedMapLocal returns the sharded-map design with the given rate and
// burst, on the real monotonic clock.
func NewShardedMapLocal(rps float64, burst int) *ShardedMapLocal {
	interval := max(int64(float64(time.Second)/rps), 1)
	l := &ShardedMapLocal{interval: interval, capacity: interval * int64(burst), base: time.Now(), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = make(map[[2]uint64]int64)
	}
	return l
}

// Allow takes a token from key's bucket and reports whether it had one. Safe
// for concurrent use.
func (l *ShardedMapLocal) Allow(p netip.Prefix) bool {
	a := p.Masked().Addr().As16()
	k := [2]uint64{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:]) ^ uint64(p.Bits())}
	s := &l.shards[maphash.Comparable(l.seed, k)>>56]
	now := int64(time.Since(l.base))
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.m[k]
	if !ok {
		tat = now
	}
	next := max(tat, now) + l.interval
	if next-now > l.capacity {
		return false
	}
	s.m[k] = next
	return true
}
