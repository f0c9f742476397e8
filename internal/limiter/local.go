package limiter

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// numShards splits the buckets so that concurrent requests for different keys
// rarely wait on one another. 256 shards keep contention negligible on any
// machine authd runs on while costing only 16 KiB.
const numShards = 256

// key is the compact, pointer-free form of a client prefix: tables of them
// hold no pointers, so the garbage collector never scans the buckets, and a
// bucket costs 24 bytes of slot.
type key struct{ hi, lo uint64 }

// keyOf maps a prefix to its key: the masked address bits and the prefix
// length, with a family tag so IPv4 and IPv6 never collide. IPv6 prefixes
// longer than /64 are cut to /64; the zero Prefix maps to a key of its own.
// lo is never 0 (table uses that for empty slots).
func keyOf(p netip.Prefix) key {
	if !p.IsValid() {
		return key{lo: 1}
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4() {
		b := a.As4()
		v := uint64(binary.BigEndian.Uint32(b[:]))
		v &^= 1<<(32-bits) - 1
		return key{hi: v, lo: 4<<8 | uint64(bits)}
	}
	b := a.As16()
	bits = min(bits, 64)
	hi := binary.BigEndian.Uint64(b[:8])
	hi &^= 1<<(64-bits) - 1 // for bits == 0 the mask is all ones: Go's shift by 64 yields 0
	return key{hi: hi, lo: 6<<8 | uint64(bits)}
}

// Local is the in-process limiter: one token bucket per key, kept in 256
// shards, each an open-addressing table of pointer-free 24-byte entries that
// a tracked key's request updates with one compare-and-swap, taking no lock.
//
// Allow is safe for concurrent use. For a key already tracked it takes no
// lock and does not allocate; a new key takes its shard's mutex briefly. Buckets
// are created full on a key's first request and dropped by Run's sweeper once
// they have been idle long enough to be full again, so forgetting them loses
// nothing.
//
// At most MaxKeys keys are tracked. A key first seen while the cap is reached
// is limited by one shared overflow bucket (with the same RPS and Burst)
// until the sweeper frees room. The alternative, evicting old keys, would let
// a spray of fresh source addresses (cheap with IPv6) evict the sprayer's own
// exhausted bucket, or a victim's, and so hand out fresh budgets; a shared
// overflow bucket keeps memory bounded, leaves every tracked client's limit
// as it was, and gives a spray one client's budget, not a million. The price,
// paid only while at the cap, is that legitimate newcomers share that budget.
type Local struct {
	gcra       gcra
	now        func() time.Time
	base       time.Time
	maxKeys    int64
	sweepEvery time.Duration
	seed       seed
	m          metrics

	keys atomic.Int64 // tracked keys, across shards
	// shards is allocated on its own so that its placement is known: a
	// 16 KiB object starts a page, plus the allocator's 8-byte header, and
	// so each shard's fields (its first 16 of 64 bytes) lie in a cache line
	// that no other shard writes.
	shards *[numShards]shard

	overflow atomic.Int64 // tat of the bucket shared by keys over the cap
}

// NewLocal returns an in-process limiter with the given parameters, reading
// time from now (time.Now in production; tests pass a fake), and registers
// the Guardian metrics on reg (a registry that already has them is shared,
// so several limiters may use one). It returns an error when p.Validate
// fails or now or reg is nil. Run must be running for idle buckets to be
// dropped.
func NewLocal(p Params, now func() time.Time, reg prometheus.Registerer) (*Local, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if now == nil || reg == nil {
		return nil, errors.New("limiter: a clock and a registerer are required")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	p = p.withDefaults()
	l := &Local{
		gcra:       newGCRA(p),
		now:        now,
		base:       now(),
		maxKeys:    int64(p.MaxKeys),
		sweepEvery: p.SweepEvery,
		seed:       seed{rand.Uint64(), rand.Uint64(), rand.Uint64()},
		m:          m,
		shards:     new([numShards]shard),
	}
	for i := range l.shards {
		l.shards[i].t.Store(&table{slots: make([]entry, minSlots)})
	}
	return l, nil
}

// clock returns the limiter's time in nanoseconds since it was built. It is
// measured from a base reading so that, with time.Now, the monotonic clock is
// used and a wall-clock step cannot empty or refill every bucket at once.
func (l *Local) clock() int64 { return int64(l.now().Sub(l.base)) }

// Allow takes a token from key's bucket if it has one and reports the
// outcome; it implements Limiter. The context is ignored: an in-process
// decision never waits. It is safe for concurrent use; for a tracked key it
// takes no lock and allocates nothing.
func (l *Local) Allow(_ context.Context, p netip.Prefix) Decision { return l.allow(p) }

func (l *Local) allow(p netip.Prefix) Decision {
	k := keyOf(p)
	h := l.seed.hash(k)
	now := l.clock()
	s := &l.shards[h>>56]
	for {
		if e, ok := s.t.Load().find(k, h); ok {
			if d, ok := l.take(&e.tat, now); ok {
				return d
			}
			// The table is being replaced: add waits for the writer under
			// the shard's lock and finds the key in the new table, and the
			// loop then takes from it there.
		}
		if d, ok := l.add(s, k, h, now); ok {
			return d
		}
	}
}

// take applies a request at now to the bucket whose state is tat, with a
// compare-and-swap loop. It reports false, deciding nothing, if the bucket
// has moved to a new table.
func (l *Local) take(tat *atomic.Int64, now int64) (Decision, bool) {
	for {
		old := tat.Load()
		if old == moved {
			return Decision{}, false
		}
		next, d := l.gcra.step(old, now)
		if !d.Allowed {
			l.m.rejectedIP.Inc()
			return d, true
		}
		if tat.CompareAndSwap(old, next) {
			return d, true
		}
	}
}

// add tracks k with a new, full bucket and takes a token from it, or, at the
// key cap, decides by the overflow bucket. It reports false, deciding
// nothing, if another request added k first.
func (l *Local) add(s *shard, k key, h uint64, now int64) (Decision, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.t.Load()
	e, found := t.find(k, h)
	if found {
		return Decision{}, false
	}
	if !l.reserveKey() {
		d, _ := l.take(&l.overflow, now) // the overflow bucket never moves
		return d, true
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		t, _ = s.replace(&l.seed, len(t.slots)*2, func(int64) bool { return true })
		e, _ = t.find(k, h)
	}
	next, d := l.gcra.step(now, now) // a full bucket always allows
	t.put(e, k, next)
	l.m.tracked.Inc()
	return d, true
}

// reserveKey counts one more tracked key unless the cap is reached. A CAS
// loop rather than add-then-undo keeps Tracked exact for readers.
func (l *Local) reserveKey() bool {
	for {
		n := l.keys.Load()
		if n >= l.maxKeys {
			return false
		}
		if l.keys.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Tracked returns the number of keys with a bucket. Safe for concurrent use.
func (l *Local) Tracked() int { return int(l.keys.Load()) }

// Run drops idle buckets every SweepEvery until ctx ends, then returns nil.
// Call it once, from the goroutine that owns the limiter's lifetime.
func (l *Local) Run(ctx context.Context) error {
	t := time.NewTicker(l.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.Sweep()
		}
	}
}

// Sweep drops every bucket that is full again (idle for at least Burst/RPS
// since its last request) and returns how many it dropped. Run calls it
// periodically; it is safe to call concurrently with Allow, which waits only
// for the one shard being swept. Each shard's table is rebuilt at the size
// its live buckets need, so memory taken by a past spray is given back.
func (l *Local) Sweep() int {
	dropped := 0
	for i := range l.shards {
		s := &l.shards[i]
		now := l.clock()
		idle := func(tat int64) bool { return tat <= now }
		if !s.t.Load().any(idle) {
			continue // nothing to drop: leave the shard alone
		}
		s.mu.Lock()
		_, n := s.replace(&l.seed, 0, func(tat int64) bool { return !idle(tat) })
		s.mu.Unlock()
		if n > 0 {
			l.keys.Add(int64(-n))
			l.m.tracked.Sub(float64(n))
			dropped += n
		}
	}
	return dropped
}
