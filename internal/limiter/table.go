package limiter

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// table is an open-addressing hash table (linear probing) from key to bucket
// state, one per shard. Readers find an entry and update its tat with
// compare-and-swap, without a lock; only adding a key and replacing the
// table take the shard's mutex. So on the hit path nothing but the bucket's
// own cache line is written: no lock word bounces between cores, and there is
// one probe sequence over one contiguous, pointer-free array where a Go map
// would need a lookup, an assignment and a lock around both.
//
// Entries are never deleted in place. The sweeper (and growth) build a new
// table from the live entries and publish it; each old entry's tat is first
// swapped for moved, so a reader racing with the copy either updates the
// entry before the swap (and the copy carries its update) or sees moved and
// waits for the new table. No token is ever lost or handed out twice.
type table struct {
	slots []entry // len is a power of two; at most 3/4 of the slots are used
	n     int     // used slots; the shard's mutex guards it
}

// entry is one bucket: 24 bytes, no pointers.
type entry struct {
	hi  uint64        // key.hi: written before lo is published, never after
	lo  atomic.Uint64 // key.lo; 0 marks an empty slot. Stored last: publishes the entry
	tat atomic.Int64  // the bucket's state (see package doc), or moved
}

// moved is the tat of an entry whose table has been replaced: its bucket, if
// still tracked, lives in the shard's current table.
const moved = math.MinInt64

const minSlots = 16

// sizeFor is the table size for n entries: room for half as many again
// before the next growth.
func sizeFor(n int) int {
	return max(minSlots, 1<<bits.Len(uint(n+n/2)))
}

// seed keys the hash so that an attacker choosing client addresses cannot
// aim them at one probe chain: without the seed, which is random per
// limiter and never leaves the process, collisions cannot be computed.
type seed [3]uint64

// hash mixes k with the seed (two rounds of 64×64→128-bit multiply-fold, as
// wyhash and rapidhash do). The top 8 bits pick the shard, the low bits the
// slot.
func (s *seed) hash(k key) uint64 {
	hi, lo := bits.Mul64(k.hi^s[0], k.lo^s[1])
	hi, lo = bits.Mul64(hi^lo^s[2], 0x9E3779B97F4A7C15)
	return hi ^ lo
}

// find returns the entry holding k, or the empty slot where k would go. It is
// safe without the shard's mutex: a slot's key is read only once its lo has
// been seen published.
func (t *table) find(k key, h uint64) (*entry, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := &t.slots[i]
		lo := e.lo.Load()
		if lo == 0 {
			return e, false
		}
		if lo == k.lo && e.hi == k.hi {
			return e, true
		}
	}
}

// any reports whether some entry's tat satisfies f. Safe without the mutex.
func (t *table) any(f func(tat int64) bool) bool {
	for i := range t.slots {
		e := &t.slots[i]
		if e.lo.Load() != 0 {
			if tat := e.tat.Load(); tat != moved && f(tat) {
				return true
			}
		}
	}
	return false
}

// put fills the empty slot e with k and tat and publishes it. The shard's
// mutex must be held (or t not yet published).
func (t *table) put(e *entry, k key, tat int64) {
	e.hi = k.hi
	e.tat.Store(tat)
	e.lo.Store(k.lo)
	t.n++
}

// shard is one lock-protected slice of the buckets. It is 64 bytes, and the
// fields are in its first 16, so that with the shards array's placement (see
// Local.shards) no two shards' fields share a cache line.
type shard struct {
	mu sync.Mutex // serialises adding keys and replacing t
	t  atomic.Pointer[table]
	_  [48]byte
}

// replace builds a table of the given size (0: sized for what is kept) from
// the current one's entries whose tat satisfies keep, publishes it, and
// returns it with the number of entries dropped. s.mu must be held.
func (s *shard) replace(sd *seed, size int, keep func(tat int64) bool) (*table, int) {
	old := s.t.Load()
	// Freeze first: from here readers of old wait for the new table.
	tats := make([]int64, len(old.slots))
	kept := 0
	for i := range old.slots {
		e := &old.slots[i]
		if e.lo.Load() == 0 {
			continue
		}
		tats[i] = e.tat.Swap(moved)
		if keep(tats[i]) {
			kept++
		}
	}
	if size == 0 {
		size = sizeFor(kept)
	}
	fresh := &table{slots: make([]entry, size)}
	for i := range old.slots {
		e := &old.slots[i]
		lo := e.lo.Load()
		if lo == 0 || !keep(tats[i]) {
			continue
		}
		k := key{hi: e.hi, lo: lo}
		dst, _ := fresh.find(k, sd.hash(k))
		fresh.put(dst, k, tats[i])
	}
	s.t.Store(fresh)
	return fresh, old.n - kept
}
