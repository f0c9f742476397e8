package bench

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// SeedLocal is the seed's design of the in-process limiter, kept here only to
// be measured against the sharded map that internal/limiter ships: a sync.Map
// from client prefix to *bucket, each bucket one atomic int64 (its GCRA tat)
// updated by compare-and-swap. Same algorithm and decisions as limiter.Local,
// without the key cap or metrics.
type SeedLocal struct {
	interval, capacity int64
	now                func() time.Time
	base               time.Time
	buckets            sync.Map // netip.Prefix → *seedBucket
}

type seedBucket struct{ tat atomic.Int64 }

// NewSeedLocal returns the seed design with the given rate and burst.
func NewSeedLocal(rps float64, burst int, now func() time.Time) *SeedLocal {
	interval := max(int64(float64(time.Second)/rps), 1)
	return &SeedLocal{interval: interval, capacity: interval * int64(burst), now: now, base: now()}
}

// Allow takes a token from key's bucket and reports whether it had one. Safe
// for concurrent use.
func (l *SeedLocal) Allow(key netip.Prefix) bool {
	now := int64(l.now().Sub(l.base))
	v, ok := l.buckets.Load(key)
	if !ok {
		b := &seedBucket{}
		b.tat.Store(now)
		v, _ = l.buckets.LoadOrStore(key, b)
	}
	b := v.(*seedBucket)
	for {
		tat := b.tat.Load()
		next := max(tat, now) + l.interval
		if next-now > l.capacity {
			return false
		}
		if b.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}
