// Package statetest is the behaviour suite every auth.StateStore must pass,
// so that the in-process store (memstate) and the shared one (redis) are
// interchangeable. Each implementation's tests call RunStateSuite.
//
// Expiry is observed in one of two ways, never by sleeping:
//   - advance moves the store's injected clock (memstate): the suite advances
//     past a ttl and checks the key is gone;
//   - WithTTLOf reads the remaining time to live from the backend (Redis,
//     whose expiry runs on the server's real clock): the suite checks the ttl
//     that was applied, and trusts the backend to expire keys on time.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
)

// TTLFunc reports the remaining time to live of key in st as the backend sees
// it: 0 for a key without expiry, an error wrapping auth.ErrNotFound for an
// absent key. st is a store returned by the suite's newStore.
type TTLFunc func(ctx context.Context, st auth.StateStore, key string) (time.Duration, error)

// Option configures RunStateSuite.
type Option func(*suite)

// WithTTLOf lets the suite check applied ttls directly, for stores whose
// expiry follows real time (pass a nil advance to RunStateSuite).
func WithTTLOf(f TTLFunc) Option { return func(s *suite) { s.ttlOf = f } }

type suite struct {
	newStore func(t *testing.T) auth.StateStore
	advance  func(time.Duration)
	ttlOf    TTLFunc
}

// RunStateSuite runs the StateStore behaviour suite as subtests of t.
//
// newStore returns a fresh, empty store for one subtest and registers its
// cleanup with t.Cleanup. advance moves the clock of every store newStore
// makes (nil when the store follows real time; then WithTTLOf is required).
// When advance is set, the subtests that use it run one at a time, before
// the others start, so nothing else moves the clock under them; every other
// subtest runs in parallel. Nothing outside the suite may advance that clock
// while the suite runs.
func RunStateSuite(t *testing.T, newStore func(t *testing.T) auth.StateStore, advance func(d time.Duration), opts ...Option) {
	t.Helper()
	s := &suite{newStore: newStore, advance: advance}
	for _, o := range opts {
		o(s)
	}
	if s.advance == nil && s.ttlOf == nil {
		t.Fatal("statetest: RunStateSuite needs advance or WithTTLOf to check expiry")
	}

	timed := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"TTLExpiry", s.testTTLExpiry},
		{"NoExpiry", s.testNoExpiry},
		{"SetReplacesTTL", s.testSetReplacesTTL},
		{"SetNXTTL", s.testSetNXTTL},
		{"IncrTTLOnCreate", s.testIncrTTLOnCreate},
		{"IncrWithoutTTL", s.testIncrWithoutTTL},
		{"ExpireTTL", s.testExpireTTL},
	}
	for _, tc := range timed {
		t.Run(tc.name, func(t *testing.T) {
			if s.advance == nil {
				t.Parallel() // no shared clock to protect
			}
			tc.fn(t)
		})
	}

	untimed := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"GetAbsent", s.testGetAbsent},
		{"SetGet", s.testSetGet},
		{"ValuesCopied", s.testValuesCopied},
		{"NegativeTTL", s.testNegativeTTL},
		{"SetNX", s.testSetNX},
		{"SetNXConcurrent", s.testSetNXConcurrent},
		{"Incr", s.testIncr},
		{"IncrNonInteger", s.testIncrNonInteger},
		{"IncrConcurrent", s.testIncrConcurrent},
		{"MGet", s.testMGet},
		{"Delete", s.testDelete},
		{"DeleteIfEqual", s.testDeleteIfEqual},
		{"DeleteIfEqualConcurrent", s.testDeleteIfEqualConcurrent},
		{"ExpireAbsent", s.testExpireAbsent},
		{"Isolation", s.testIsolation},
		{"Ping", s.testPing},
	}
	for _, tc := range untimed {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

// --- helpers ---------------------------------------------------------------

func mustSet(t *testing.T, st auth.StateStore, key, val string, ttl time.Duration) {
	t.Helper()
	if err := st.Set(t.Context(), key, []byte(val), ttl); err != nil {
		t.Fatalf("Set(%q, ttl %v): %v", key, ttl, err)
	}
}

func wantValue(t *testing.T, st auth.StateStore, key, want string) {
	t.Helper()
	got, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v, want %q", key, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func wantAbsent(t *testing.T, st auth.StateStore, key string) {
	t.Helper()
	got, err := st.Get(t.Context(), key)
	if !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
	vals, err := st.MGet(t.Context(), key)
	if err != nil {
		t.Fatalf("MGet(%q): %v", key, err)
	}
	if len(vals) != 1 || vals[0] != nil {
		t.Fatalf("MGet(%q) = %q, want [nil]", key, vals)
	}
}

func mustIncr(t *testing.T, st auth.StateStore, key string, ttl time.Duration, want int64) {
	t.Helper()
	n, err := st.Incr(t.Context(), key, ttl)
	if err != nil {
		t.Fatalf("Incr(%q, %v): %v", key, ttl, err)
	}
	if n != want {
		t.Fatalf("Incr(%q, %v) = %d, want %d", key, ttl, n, want)
	}
}

// wantTTL checks, when the suite can read ttls, that key's remaining ttl is
// in (want-slack, want]; want == 0 means the key must have no expiry.
func (s *suite) wantTTL(t *testing.T, st auth.StateStore, key string, want time.Duration) {
	t.Helper()
	if s.ttlOf == nil {
		return
	}
	got, err := s.ttlOf(t.Context(), st, key)
	if err != nil {
		t.Fatalf("ttl of %q: %v", key, err)
	}
	// The slack absorbs the real time between the write and this read on a
	// loaded machine; the ttls used are hours, so it never hides a wrong one.
	const slack = time.Minute
	if want == 0 {
		if got != 0 {
			t.Fatalf("ttl of %q = %v, want no expiry", key, got)
		}
		return
	}
	if got <= want-slack || got > want {
		t.Fatalf("ttl of %q = %v, want about %v", key, got, want)
	}
}

// --- timed -----------------------------------------------------------------

func (s *suite) testTTLExpiry(t *testing.T) {
	st := s.newStore(t)
	const ttl = 2 * time.Hour
	mustSet(t, st, "k", "v", ttl)
	wantValue(t, st, "k", "v")
	s.wantTTL(t, st, "k", ttl)
	if s.advance == nil {
		return
	}
	s.advance(ttl - time.Millisecond)
	wantValue(t, st, "k", "v")
	s.advance(time.Millisecond)
	wantAbsent(t, st, "k")
	// An expired key is absent for every method, not just Get.
	mustIncr(t, st, "k", 0, 1)
}

func (s *suite) testNoExpiry(t *testing.T) {
	st := s.newStore(t)
	mustSet(t, st, "k", "v", 0)
	s.wantTTL(t, st, "k", 0)
	if s.advance != nil {
		s.advance(10 * 365 * 24 * time.Hour)
	}
	wantValue(t, st, "k", "v")
}

func (s *suite) testSetReplacesTTL(t *testing.T) {
	st := s.newStore(t)
	const ttl = 2 * time.Hour
	// A Set without ttl clears an earlier one ...
	mustSet(t, st, "persist", "1", ttl)
	mustSet(t, st, "persist", "2", 0)
	s.wantTTL(t, st, "persist", 0)
	// ... and a Set with ttl gives a key without one an expiry.
	mustSet(t, st, "expire", "1", 0)
	mustSet(t, st, "expire", "2", ttl)
	s.wantTTL(t, st, "expire", ttl)
	if s.advance != nil {
		s.advance(ttl)
		wantValue(t, st, "persist", "2")
		wantAbsent(t, st, "expire")
	}
}

func (s *suite) testSetNXTTL(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	const ttl = 2 * time.Hour
	ok, err := st.SetNX(ctx, "k", []byte("first"), ttl)
	if err != nil || !ok {
		t.Fatalf("SetNX on absent key = %v, %v; want true", ok, err)
	}
	s.wantTTL(t, st, "k", ttl)
	if s.advance == nil {
		return
	}
	s.advance(ttl - time.Millisecond)
	if ok, err := st.SetNX(ctx, "k", []byte("second"), ttl); err != nil || ok {
		t.Fatalf("SetNX before expiry = %v, %v; want false", ok, err)
	}
	s.advance(time.Millisecond)
	if ok, err := st.SetNX(ctx, "k", []byte("third"), ttl); err != nil || !ok {
		t.Fatalf("SetNX after expiry = %v, %v; want true", ok, err)
	}
	wantValue(t, st, "k", "third")
	// The new value carries its own ttl, counted from the second SetNX.
	s.advance(ttl - time.Millisecond)
	wantValue(t, st, "k", "third")
	s.advance(time.Millisecond)
	wantAbsent(t, st, "k")
}

func (s *suite) testIncrTTLOnCreate(t *testing.T) {
	st := s.newStore(t)
	const ttl = 2 * time.Hour
	mustIncr(t, st, "n", ttl, 1)
	s.wantTTL(t, st, "n", ttl)
	// Later increments leave the ttl alone, whether they pass a longer or a
	// shorter one.
	mustIncr(t, st, "n", 10*ttl, 2)
	s.wantTTL(t, st, "n", ttl)
	mustIncr(t, st, "n", time.Millisecond, 3)
	s.wantTTL(t, st, "n", ttl)
	if s.advance == nil {
		return
	}
	s.advance(ttl - time.Millisecond)
	mustIncr(t, st, "n", ttl, 4)
	s.advance(time.Millisecond) // expires at the first Incr's deadline
	wantAbsent(t, st, "n")
	mustIncr(t, st, "n", ttl, 1) // a fresh counter with a fresh ttl
	s.advance(ttl - time.Millisecond)
	wantValue(t, st, "n", "1")
}

func (s *suite) testIncrWithoutTTL(t *testing.T) {
	st := s.newStore(t)
	mustIncr(t, st, "n", 0, 1)
	s.wantTTL(t, st, "n", 0)
	// The key exists, so a ttl passed later is not applied.
	mustIncr(t, st, "n", time.Hour, 2)
	s.wantTTL(t, st, "n", 0)
	if s.advance != nil {
		s.advance(2 * time.Hour)
		wantValue(t, st, "n", "2")
	}
}

// --- untimed ---------------------------------------------------------------

func (s *suite) testGetAbsent(t *testing.T) {
	st := s.newStore(t)
	wantAbsent(t, st, "missing")
}

func (s *suite) testSetGet(t *testing.T) {
	st := s.newStore(t)
	tests := []struct {
		name, key, val string
	}{
		{"text", "text", "hello"},
		{"empty value", "empty", ""},
		{"binary value", "binary", "\x00\xff\x01 \r\n"},
		{"key with separators", "a:b:{c}:d", "v"},
		{"unicode key", "ключ", "значение"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustSet(t, st, tt.key, tt.val, 0)
			wantValue(t, st, tt.key, tt.val)
			got, err := st.Get(t.Context(), tt.key)
			if err != nil || got == nil {
				t.Fatalf("Get(%q) = %v, %v; want a non-nil value", tt.key, got, err)
			}
		})
	}
	t.Run("overwrite", func(t *testing.T) {
		mustSet(t, st, "over", "old", 0)
		mustSet(t, st, "over", "new", 0)
		wantValue(t, st, "over", "new")
	})
}

func (s *suite) testValuesCopied(t *testing.T) {
	st := s.newStore(t)
	in := []byte("original")
	if err := st.Set(t.Context(), "k", in, 0); err != nil {
		t.Fatal(err)
	}
	copy(in, "XXXXXXXX")
	out, err := st.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "original" {
		t.Fatalf("Get after changing the Set slice = %q, want %q", out, "original")
	}
	copy(out, "YYYYYYYY")
	wantValue(t, st, "k", "original")
	vals, err := st.MGet(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	copy(vals[0], "ZZZZZZZZ")
	wantValue(t, st, "k", "original")
}

func (s *suite) testNegativeTTL(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	if err := st.Set(ctx, "k", []byte("v"), -time.Second); err == nil {
		t.Error("Set with negative ttl: no error")
	}
	if _, err := st.SetNX(ctx, "k", []byte("v"), -time.Second); err == nil {
		t.Error("SetNX with negative ttl: no error")
	}
	if _, err := st.Incr(ctx, "k", -time.Second); err == nil {
		t.Error("Incr with negative ttl: no error")
	}
	wantAbsent(t, st, "k")
}

func (s *suite) testSetNX(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	if ok, err := st.SetNX(ctx, "k", []byte("first"), time.Hour); err != nil || !ok {
		t.Fatalf("first SetNX = %v, %v; want true", ok, err)
	}
	if ok, err := st.SetNX(ctx, "k", []byte("second"), time.Hour); err != nil || ok {
		t.Fatalf("second SetNX = %v, %v; want false", ok, err)
	}
	wantValue(t, st, "k", "first")
	// A key written by Set counts as present too.
	mustSet(t, st, "set", "v", 0)
	if ok, err := st.SetNX(ctx, "set", []byte("other"), 0); err != nil || ok {
		t.Fatalf("SetNX over Set = %v, %v; want false", ok, err)
	}
	wantValue(t, st, "set", "v")
	// After Delete the key is free again.
	if err := st.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.SetNX(ctx, "k", []byte("third"), 0); err != nil || !ok {
		t.Fatalf("SetNX after Delete = %v, %v; want true", ok, err)
	}
	wantValue(t, st, "k", "third")
}

func (s *suite) testSetNXConcurrent(t *testing.T) {
	st := s.newStore(t)
	const n = 32
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []int
		errs []error
	)
	for i := range n {
		wg.Go(func() {
			ok, err := st.SetNX(t.Context(), "lock", []byte(strconv.Itoa(i)), time.Hour)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				wins = append(wins, i)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("SetNX errors: %v", errors.Join(errs...))
	}
	if len(wins) != 1 {
		t.Fatalf("%d of %d concurrent SetNX won, want exactly 1", len(wins), n)
	}
	wantValue(t, st, "lock", strconv.Itoa(wins[0]))
}

func (s *suite) testIncr(t *testing.T) {
	st := s.newStore(t)
	for i := int64(1); i <= 3; i++ {
		mustIncr(t, st, "n", time.Hour, i)
	}
	wantValue(t, st, "n", "3")
	// A counter written by Set is an integer too.
	mustSet(t, st, "set", "41", 0)
	mustIncr(t, st, "set", 0, 42)
	mustSet(t, st, "neg", "-2", 0)
	mustIncr(t, st, "neg", 0, -1)
}

func (s *suite) testIncrNonInteger(t *testing.T) {
	st := s.newStore(t)
	tests := []struct{ name, val string }{
		{"word", "abc"},
		{"empty", ""},
		{"float", "1.5"},
		{"spaces", " 1"},
		{"plus sign", "+1"},
		{"leading zero", "01"},
		{"overflow", "9223372036854775807"}, // incrementing MaxInt64 overflows
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "bad-" + tt.name
			mustSet(t, st, key, tt.val, 0)
			n, err := st.Incr(t.Context(), key, 0)
			if err == nil {
				t.Fatalf("Incr on %q = %d, want an error", tt.val, n)
			}
			if errors.Is(err, auth.ErrNotFound) || errors.Is(err, auth.ErrUnavailable) {
				t.Fatalf("Incr on %q: %v; want a plain error", tt.val, err)
			}
			wantValue(t, st, key, tt.val)
		})
	}
}

func (s *suite) testIncrConcurrent(t *testing.T) {
	st := s.newStore(t)
	const workers, each = 16, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	seen := make([][]int64, workers)
	for w := range workers {
		wg.Go(func() {
			for range each {
				n, err := st.Incr(t.Context(), "n", time.Hour)
				if err != nil {
					errc <- err
					return
				}
				seen[w] = append(seen[w], n)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("concurrent Incr: %v", err)
	}
	// Every increment returned a distinct value: no two callers saw the same count.
	got := make(map[int64]bool, workers*each)
	for _, ns := range seen {
		for _, n := range ns {
			if got[n] {
				t.Fatalf("Incr returned %d twice", n)
			}
			got[n] = true
		}
	}
	wantValue(t, st, "n", strconv.Itoa(workers*each))
	s.wantTTL(t, st, "n", time.Hour)
}

func (s *suite) testMGet(t *testing.T) {
	st := s.newStore(t)
	mustSet(t, st, "a", "1", 0)
	mustSet(t, st, "b", "", time.Hour)
	mustSet(t, st, "c", "3", 0)
	tests := []struct {
		name string
		keys []string
		want []*string // nil: absent
	}{
		{"none", nil, nil},
		{"all present", []string{"a", "b", "c"}, vals("1", "", "3")},
		{"all absent", []string{"x", "y"}, []*string{nil, nil}},
		{"mixed", []string{"x", "a", "y", "c"}, []*string{nil, ptr("1"), nil, ptr("3")}},
		{"repeated key", []string{"a", "a", "x", "x"}, []*string{ptr("1"), ptr("1"), nil, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.MGet(t.Context(), tt.keys...)
			if err != nil {
				t.Fatalf("MGet(%q): %v", tt.keys, err)
			}
			if len(got) != len(tt.keys) {
				t.Fatalf("MGet(%q) returned %d values, want %d", tt.keys, len(got), len(tt.keys))
			}
			for i := range got {
				switch {
				case tt.want[i] == nil && got[i] != nil:
					t.Errorf("MGet(%q)[%d] = %q, want nil", tt.keys, i, got[i])
				case tt.want[i] != nil && got[i] == nil:
					t.Errorf("MGet(%q)[%d] = nil, want %q", tt.keys, i, *tt.want[i])
				case tt.want[i] != nil && !bytes.Equal(got[i], []byte(*tt.want[i])):
					t.Errorf("MGet(%q)[%d] = %q, want %q", tt.keys, i, got[i], *tt.want[i])
				}
			}
		})
	}
}

func (s *suite) testDelete(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, st, k, "v", time.Hour)
	}
	if err := st.Delete(ctx, "a", "missing", "c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantAbsent(t, st, "a")
	wantAbsent(t, st, "c")
	wantValue(t, st, "b", "v")
	if err := st.Delete(ctx); err != nil {
		t.Fatalf("Delete with no keys: %v", err)
	}
	if err := st.Delete(ctx, "missing"); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
}

func (s *suite) testDeleteIfEqual(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	mustSet(t, st, "claim", "owner", time.Hour)
	for _, other := range []string{"other", "", "owne", "owner2"} {
		if ok, err := st.DeleteIfEqual(ctx, "claim", []byte(other)); err != nil || ok {
			t.Fatalf("DeleteIfEqual(claim, %q) = %v, %v; want false: it holds owner", other, ok, err)
		}
	}
	wantValue(t, st, "claim", "owner")
	if ok, err := st.DeleteIfEqual(ctx, "claim", []byte("owner")); err != nil || !ok {
		t.Fatalf("DeleteIfEqual(claim, owner) = %v, %v; want true", ok, err)
	}
	wantAbsent(t, st, "claim")
	// Giving back twice is harmless, and frees nothing taken since.
	if ok, err := st.DeleteIfEqual(ctx, "claim", []byte("owner")); err != nil || ok {
		t.Fatalf("second DeleteIfEqual = %v, %v; want false", ok, err)
	}
	mustSet(t, st, "claim", "next", time.Hour)
	if ok, err := st.DeleteIfEqual(ctx, "claim", []byte("owner")); err != nil || ok {
		t.Fatalf("stale DeleteIfEqual = %v, %v; want false", ok, err)
	}
	wantValue(t, st, "claim", "next")
}

// testDeleteIfEqualConcurrent: workers take one claim in turns with SetNX
// and a unique value, and give it back with DeleteIfEqual, while others
// try to give it back with their own (wrong) values. Each worker must see
// its own claim still held when it gives it back: nobody else freed it.
func (s *suite) testDeleteIfEqualConcurrent(t *testing.T) {
	st := s.newStore(t)
	const workers, rounds = 8, 30
	var (
		wg   sync.WaitGroup
		held sync.Mutex // held by whoever owns the claim, to detect overlap
		mu   sync.Mutex
		errs []error
	)
	report := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				mine := []byte(strconv.Itoa(w) + "/" + strconv.Itoa(r))
				ok, err := st.SetNX(t.Context(), "claim", mine, time.Hour)
				if err != nil {
					report(err)
					return
				}
				if !ok {
					// Not ours: a give-back with our value must not free it.
					if gone, err := st.DeleteIfEqual(t.Context(), "claim", mine); err != nil || gone {
						report(errors.New("DeleteIfEqual freed a claim held by another"))
						return
					}
					continue
				}
				if !held.TryLock() {
					report(errors.New("two workers hold the claim at once"))
					return
				}
				held.Unlock()
				if gone, err := st.DeleteIfEqual(t.Context(), "claim", mine); err != nil || !gone {
					report(errors.New("owner could not give its claim back: someone else freed it"))
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
}

func (s *suite) testExpireAbsent(t *testing.T) {
	st := s.newStore(t)
	ok, err := st.Expire(t.Context(), "missing", time.Hour)
	if err != nil || ok {
		t.Fatalf("Expire of an absent key = %v, %v; want false", ok, err)
	}
	wantAbsent(t, st, "missing")
	if _, err := st.Expire(t.Context(), "missing", -time.Second); err == nil {
		t.Fatal("Expire with a negative ttl: no error")
	}
}

func (s *suite) testExpireTTL(t *testing.T) {
	st := s.newStore(t)
	ctx := t.Context()
	const short, long = time.Hour, 3 * time.Hour
	mustIncr(t, st, "n", short, 1)
	if ok, err := st.Expire(ctx, "n", long); err != nil || !ok {
		t.Fatalf("Expire = %v, %v; want true", ok, err)
	}
	s.wantTTL(t, st, "n", long)
	mustSet(t, st, "p", "v", short)
	if ok, err := st.Expire(ctx, "p", 0); err != nil || !ok {
		t.Fatalf("Expire(p, 0) = %v, %v; want true", ok, err)
	}
	s.wantTTL(t, st, "p", 0)
	wantValue(t, st, "n", "1")
	if s.advance == nil {
		return
	}
	s.advance(long - time.Millisecond)
	wantValue(t, st, "n", "1")
	wantValue(t, st, "p", "v")
	s.advance(time.Millisecond)
	wantAbsent(t, st, "n")
	// An expired key is absent for Expire too.
	if ok, err := st.Expire(ctx, "n", long); err != nil || ok {
		t.Fatalf("Expire of an expired key = %v, %v; want false", ok, err)
	}
}

func (s *suite) testIsolation(t *testing.T) {
	a, b := s.newStore(t), s.newStore(t)
	mustSet(t, a, "k", "a", 0)
	wantAbsent(t, b, "k")
	mustSet(t, b, "k", "b", 0)
	wantValue(t, a, "k", "a")
}

func (s *suite) testPing(t *testing.T) {
	st := s.newStore(t)
	if err := st.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func ptr(s string) *string { return &s }

func vals(ss ...string) []*string {
	out := make([]*string, len(ss))
	for i := range ss {
		out[i] = ptr(ss[i])
	}
	return out
}
