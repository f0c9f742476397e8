// Package memstate is the in-process auth.StateStore: expiring keys and
// counters held in memory, for a single authd instance (no AUTHD_REDIS_URL).
// State is lost when the process exits and is not shared between instances;
// run several instances with internal/redis instead.
package memstate

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd/authd/internal/auth"
)

// DefaultSweepInterval is how often Run removes expired entries when
// Params.SweepEvery is zero.
const DefaultSweepInterval = time.Minute

// Params configures a Store.
type Params struct {
	// SweepEvery is how often Run removes expired entries (0: 1 minute).
	SweepEvery time.Duration
	// MaxKeys caps the entries held (expired entries not yet swept count;
	// 0: no cap). At the cap, a write that would add a key fails with an
	// error wrapping ErrFull (and auth.ErrOverloaded), while existing keys
	// are read, updated and deleted as usual: no entry is ever evicted to
	// make room, so a flood of new keys cannot reset or drop the state of
	// the keys already held. Room comes back as entries expire and Sweep
	// (or Run) removes them.
	MaxKeys int
}

// numShards spreads the keys over independent locks so that concurrent
// requests on different keys rarely wait for each other.
const numShards = 32

// Store is an in-memory auth.StateStore. Expiry is checked against the
// injected clock on every read, so an expired entry is never returned even
// before Run's sweeper removes it. Values are copied in and out: a caller may
// reuse or modify a slice after passing it or receiving it.
//
// All methods are safe for concurrent use. The zero value is not usable; call New.
type Store struct {
	now        func() time.Time
	sweepEvery time.Duration
	maxKeys    int64 // 0: no cap
	seed       maphash.Seed
	n          atomic.Int64 // entries held, expired ones included, across shards
	shards     [numShards]shard
}

type shard struct {
	mu sync.Mutex
	m  map[string]entry // mu guards m
}

type entry struct {
	val []byte
	exp time.Time // zero: never expires
}

func (e entry) expired(now time.Time) bool { return !e.exp.IsZero() && !now.Before(e.exp) }

var _ auth.StateStore = (*Store)(nil)

// ErrFull is wrapped by the error of a write refused at the Params.MaxKeys
// cap; it matches auth.ErrOverloaded.
var ErrFull = fmt.Errorf("memstate: store full: %w", auth.ErrOverloaded)

// reserve counts one more entry, or reports false at the cap.
func (s *Store) reserve() bool {
	for {
		n := s.n.Load()
		if s.maxKeys > 0 && n >= s.maxKeys {
			return false
		}
		if s.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// New returns an empty Store whose expiry follows now (time.Now in
// production, a fake clock in tests). Expired entries stay in memory, unseen,
// until Sweep or Run removes them. It returns an error for a nil clock or a
// negative sweep interval or key cap.
func New(p Params, now func() time.Time) (*Store, error) {
	if now == nil {
		return nil, errors.New("memstate: a clock is required")
	}
	if p.SweepEvery < 0 {
		return nil, fmt.Errorf("memstate: sweep interval %v is negative", p.SweepEvery)
	}
	if p.MaxKeys < 0 {
		return nil, fmt.Errorf("memstate: key cap %d is negative", p.MaxKeys)
	}
	if p.SweepEvery == 0 {
		p.SweepEvery = DefaultSweepInterval
	}
	s := &Store{now: now, sweepEvery: p.SweepEvery, maxKeys: int64(p.MaxKeys), seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]entry)
	}
	return s, nil
}

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%numShards]
}

// expiry turns a ttl into an absolute deadline; 0 means none.
func (s *Store) expiry(ttl time.Duration) time.Time {
	if ttl == 0 {
		return time.Time{}
	}
	return s.now().Add(ttl)
}

var errNegativeTTL = errors.New("negative ttl")

// Get returns a copy of the value at key, or an error wrapping
// auth.ErrNotFound when the key is absent or expired.
func (s *Store) Get(_ context.Context, key string) ([]byte, error) {
	sh := s.shard(key)
	sh.mu.Lock()
	e, ok := sh.m[key]
	sh.mu.Unlock()
	if !ok || e.expired(s.now()) {
		return nil, fmt.Errorf("memstate: get: %w", auth.ErrNotFound)
	}
	return clone(e.val), nil
}

// MGet returns one copied value per key, nil where the key is absent or expired.
func (s *Store) MGet(_ context.Context, keys ...string) ([][]byte, error) {
	now := s.now()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		sh := s.shard(k)
		sh.mu.Lock()
		e, ok := sh.m[k]
		sh.mu.Unlock()
		if ok && !e.expired(now) {
			out[i] = clone(e.val)
		}
	}
	return out, nil
}

// Set stores a copy of value under key for ttl (0: no expiry), replacing any
// previous value and expiry. A negative ttl is an error.
func (s *Store) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("memstate: set: %w", errNegativeTTL)
	}
	sh := s.shard(key)
	e := entry{val: clone(value), exp: s.expiry(ttl)}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[key]; !ok && !s.reserve() {
		return fmt.Errorf("memstate: set: %w", ErrFull)
	}
	sh.m[key] = e
	return nil
}

// SetNX stores a copy of value under key for ttl only if the key is absent
// or expired, and reports whether it did. Of concurrent calls on one key,
// exactly one wins.
func (s *Store) SetNX(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl < 0 {
		return false, fmt.Errorf("memstate: setnx: %w", errNegativeTTL)
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := s.now()
	old, ok := sh.m[key]
	if ok && !old.expired(now) {
		return false, nil
	}
	if !ok && !s.reserve() {
		return false, fmt.Errorf("memstate: setnx: %w", ErrFull)
	}
	e := entry{val: clone(value)}
	if ttl > 0 {
		e.exp = now.Add(ttl)
	}
	sh.m[key] = e
	return true, nil
}

// Incr adds 1 to the decimal integer at key and returns the new value. An
// absent or expired key counts as 0 and is created with ttl (0: no expiry);
// an existing key keeps its expiry. A value that is not a decimal int64, or
// an increment past math.MaxInt64, is an error and leaves the value alone.
func (s *Store) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	if ttl < 0 {
		return 0, fmt.Errorf("memstate: incr: %w", errNegativeTTL)
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := s.now()
	e, ok := sh.m[key]
	if !ok && !s.reserve() {
		return 0, fmt.Errorf("memstate: incr: %w", ErrFull)
	}
	if !ok || e.expired(now) {
		e = entry{}
		if ttl > 0 {
			e.exp = now.Add(ttl)
		}
	}
	var n int64
	if e.val != nil {
		var ok bool
		if n, ok = parseInt(e.val); !ok {
			return 0, fmt.Errorf("memstate: incr: value is not an integer")
		}
		if n == math.MaxInt64 {
			return 0, fmt.Errorf("memstate: incr: increment would overflow")
		}
	}
	n++
	e.val = strconv.AppendInt(nil, n, 10)
	sh.m[key] = e
	return n, nil
}

// Delete removes the keys; absent keys are not an error.
func (s *Store) Delete(_ context.Context, keys ...string) error {
	for _, k := range keys {
		sh := s.shard(k)
		sh.mu.Lock()
		if _, ok := sh.m[k]; ok {
			delete(sh.m, k)
			s.n.Add(-1)
		}
		sh.mu.Unlock()
	}
	return nil
}

// DeleteIfEqual removes key only if it is live and holds value, under the
// key's lock, and reports whether it did.
func (s *Store) DeleteIfEqual(_ context.Context, key string, value []byte) (bool, error) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	if !ok || e.expired(s.now()) || string(e.val) != string(value) {
		return false, nil
	}
	delete(sh.m, key)
	s.n.Add(-1)
	return true, nil
}

// Expire sets a live key's expiry to ttl from now (0: none) and reports
// whether the key was live. A negative ttl is an error.
func (s *Store) Expire(_ context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl < 0 {
		return false, fmt.Errorf("memstate: expire: %w", errNegativeTTL)
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	if !ok || e.expired(s.now()) {
		return false, nil
	}
	e.exp = s.expiry(ttl)
	sh.m[key] = e
	return true, nil
}

// Ping always returns nil: the store is this process's memory.
func (s *Store) Ping(context.Context) error { return nil }

// Len returns the number of entries held, counting expired ones that have
// not been swept yet.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Sweep removes every expired entry now and returns how many it removed. It
// locks one shard at a time, so concurrent calls on other shards proceed.
func (s *Store) Sweep() int {
	removed := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		now := s.now()
		n := 0
		for k, e := range sh.m {
			if e.expired(now) {
				delete(sh.m, k)
				n++
			}
		}
		s.n.Add(int64(-n))
		sh.mu.Unlock()
		removed += n
	}
	return removed
}

// Run calls Sweep every Params.SweepEvery until ctx is done, then returns
// nil. It blocks; the program runs it as one of its parts. The
// store works without Run, but expired entries then stay in memory until
// overwritten or deleted.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Sweep()
		}
	}
}

// parseInt accepts only the canonical decimal form of an int64 (no sign
// but '-', no leading zeros, no spaces), as Redis's INCR does, so that both
// stores agree on which values are counters.
func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	var buf [20]byte
	return n, string(strconv.AppendInt(buf[:0], n, 10)) == string(b)
}

// clone copies b; a nil or empty input gives a non-nil empty slice, so a
// stored empty value reads back as present.
func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}
