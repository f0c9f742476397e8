package memstate_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/memstate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t testing.TB, p memstate.Params, now func() time.Time) *memstate.Store {
	t.Helper()
	st, err := memstate.New(p, now)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestNewRefusesBadInput(t *testing.T) {
	t.Parallel()
	if _, err := memstate.New(memstate.Params{}, nil); err == nil {
		t.Error("nil clock: no error")
	}
	if _, err := memstate.New(memstate.Params{SweepEvery: -time.Second}, time.Now); err == nil {
		t.Error("negative sweep interval: no error")
	}
	if _, err := memstate.New(memstate.Params{MaxKeys: -1}, time.Now); err == nil {
		t.Error("negative key cap: no error")
	}
}

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestStateSuite(t *testing.T) {
	clock := clocktest.New(epoch)
	statetest.RunStateSuite(t,
		func(t *testing.T) auth.StateStore { return newStore(t, memstate.Params{}, clock.Now) },
		clock.Advance,
	)
}

func TestSweep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clocktest.New(epoch)
	st := newStore(t, memstate.Params{}, clock.Now)
	for i := range 100 {
		ttl := time.Duration(i%4) * time.Minute // a quarter never expire
		if err := st.Set(ctx, strconv.Itoa(i), []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		advance     time.Duration
		wantRemoved int
		wantLen     int
	}{
		{0, 0, 100},
		{time.Minute, 25, 75},
		{time.Minute, 25, 50},
		{time.Hour, 25, 25},
		{time.Hour, 0, 25},
	}
	for i, tt := range tests {
		clock.Advance(tt.advance)
		if got := st.Sweep(); got != tt.wantRemoved {
			t.Errorf("step %d: Sweep removed %d, want %d", i, got, tt.wantRemoved)
		}
		if got := st.Len(); got != tt.wantLen {
			t.Errorf("step %d: Len = %d, want %d", i, got, tt.wantLen)
		}
	}
}

func TestRunSweepsAndStops(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(epoch)
	st := newStore(t, memstate.Params{SweepEvery: time.Millisecond}, clock.Now)
	if err := st.Set(t.Context(), "k", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()

	// Wait for the sweeper goroutine (not for a clock: the entry is already
	// expired), polling with a pause and a bound.
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	deadline := time.After(10 * time.Second)
	for st.Len() != 0 {
		select {
		case <-poll.C:
		case <-deadline:
			t.Fatal("Run did not sweep the expired entry")
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestExpiredEntryInvisibleBeforeSweep(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(epoch)
	st := newStore(t, memstate.Params{}, clock.Now)
	if err := st.Set(t.Context(), "k", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if st.Len() != 1 {
		t.Fatalf("Len = %d before sweep, want 1", st.Len())
	}
	if ok, err := st.SetNX(t.Context(), "k", []byte("w"), 0); err != nil || !ok {
		t.Fatalf("SetNX over an expired, unswept entry = %v, %v; want true", ok, err)
	}
}

func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	for _, keys := range []int{1, 1_000, 1_000_000} {
		st := newStore(b, memstate.Params{}, time.Now)
		names, counters := make([]string, keys), make([]string, keys)
		for i := range names {
			names[i], counters[i] = fmt.Sprintf("rl:%d", i), fmt.Sprintf("n:%d", i)
			if err := st.Set(ctx, names[i], []byte("value"), time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("op=Get/keys=%d", keys), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := st.Get(ctx, names[i%keys]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
		b.Run(fmt.Sprintf("op=Incr/keys=%d", keys), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := st.Incr(ctx, counters[i%keys], time.Hour); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}

// TestMaxKeys: at the cap new keys are refused, never made room for by
// dropping a held one; held keys keep working; room comes back by Delete
// and by expiry once swept.
func TestMaxKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clocktest.New(epoch)
	const max = 10
	st := newStore(t, memstate.Params{MaxKeys: max}, clock.Now)
	for i := range max {
		ttl := time.Duration(0)
		if i == 0 {
			ttl = time.Minute
		}
		if err := st.Set(ctx, fmt.Sprint("k", i), []byte("1"), ttl); err != nil {
			t.Fatal(err)
		}
	}
	wantFull := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, auth.ErrOverloaded) || !errors.Is(err, memstate.ErrFull) {
			t.Errorf("%s at the cap: %v; want ErrFull (ErrOverloaded)", what, err)
		}
	}
	wantFull("Set", st.Set(ctx, "new", []byte("v"), 0))
	_, err := st.SetNX(ctx, "new", []byte("v"), 0)
	wantFull("SetNX", err)
	_, err = st.Incr(ctx, "new", time.Hour)
	wantFull("Incr", err)
	if st.Len() != max {
		t.Fatalf("Len = %d, want %d", st.Len(), max)
	}
	// Held keys: read, updated, counted, given back.
	for i := range max {
		k := fmt.Sprint("k", i)
		if n, err := st.Incr(ctx, k, 0); err != nil || n != 2 {
			t.Fatalf("Incr(%s) at the cap = %d, %v; want 2", k, n, err)
		}
	}
	if err := st.Delete(ctx, "k5"); err != nil {
		t.Fatal(err)
	}
	if err := st.Set(ctx, "new", []byte("v"), 0); err != nil {
		t.Fatalf("Set after a Delete made room: %v", err)
	}
	_, err = st.SetNX(ctx, "new2", []byte("v"), 0)
	wantFull("SetNX", err)
	// An expired key still takes room until swept.
	clock.Advance(time.Minute)
	_, err = st.SetNX(ctx, "new2", []byte("v"), 0)
	wantFull("SetNX before the sweep", err)
	if n := st.Sweep(); n != 1 {
		t.Fatalf("Sweep removed %d, want 1", n)
	}
	if ok, err := st.SetNX(ctx, "new2", []byte("v"), 0); err != nil || !ok {
		t.Fatalf("SetNX after the sweep = %v, %v", ok, err)
	}
	// DeleteIfEqual gives room back too.
	if ok, err := st.DeleteIfEqual(ctx, "new2", []byte("v")); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := st.Set(ctx, "new3", []byte("v"), 0); err != nil {
		t.Fatalf("Set after DeleteIfEqual made room: %v", err)
	}
}
