package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/memstate"
	"github.com/authd/authd/internal/throttle"
)

// first is the bound on wrong passwords checked before the first window:
// the free failures and the one that opens it.
const first = throttle.DefaultFreeFailures + 1

// TestSlotBound: however the attempts of a guesser overlap, at most
// FreeFailures+1 passwords are checked before the first window. Staggered
// arrivals are played as a script: attempt k arrives, and the attempt that
// arrived `overlap` arrivals earlier finishes (its hash took that long).
// Before owned slots, a free attempt's Failure freed the claim of the one in
// flight, and 200 staggered guesses got 11 checks.
func TestSlotBound(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, overlap := range []int{1, 2, 3, 5, 6, 7, 10, 50} {
			t.Run(fmt.Sprint("staggered/overlap=", overlap), func(t *testing.T) {
				e := newEnv(t, b, throttle.Params{})
				var inFlight []*throttle.Attempt
				checked := 0
				for k := range 200 {
					if a, _ := e.try(t, alice, fmt.Sprint("192.0.2.", k%250)); a != nil {
						checked++
						inFlight = append(inFlight, a)
					}
					if len(inFlight) > 0 && k%overlap == overlap-1 {
						fail(t, inFlight[0])
						inFlight = inFlight[1:]
					}
				}
				for _, a := range inFlight {
					fail(t, a)
				}
				if checked != first {
					t.Errorf("200 staggered guesses got %d password checks, want %d", checked, first)
				}
			})
		}
		t.Run("simultaneous", func(t *testing.T) {
			e := newEnv(t, b, throttle.Params{})
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				checked int
				errs    []error
			)
			for k := range 200 {
				wg.Go(func() {
					a, _, err := e.th.Check(t.Context(), alice, fmt.Sprint("192.0.2.", k%250), "")
					if err == nil && a != nil {
						err = a.Failure(t.Context())
						mu.Lock()
						checked++
						mu.Unlock()
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatal(errors.Join(errs...))
			}
			if checked < 1 || checked > first {
				t.Errorf("200 simultaneous guesses got %d password checks, want 1..%d", checked, first)
			}
			// Attempts that raced may all have backed off; guesses that follow
			// get the rest of the budget, no more.
			for {
				a, _ := e.try(t, alice, attacker)
				if a == nil {
					break
				}
				fail(t, a)
				checked++
			}
			if checked != first {
				t.Errorf("%d password checks before the first window, want %d", checked, first)
			}
			e.wantCheck(t, alice, attacker, time.Second)
		})
	})
}

// TestReleaseGivesBack: an attempt the hash pool refused, or whose client
// left, gives its slot back at once and counts nothing, so under overload
// the owner is answered by the pool (503), never by the throttle (429).
// Before, the claim lapsed only after AttemptTimeout.
func TestReleaseGivesBack(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, tc := range []struct {
			name   string
			failed int // failures before: fresh, or delayed (one at a time)
		}{{"fresh", 0}, {"delayed", throttle.DefaultFreeFailures}} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, b, throttle.Params{})
				for range tc.failed {
					e.attempt(t, alice, attacker)
				}
				// 100 refusals in a row, each as many at once as may run.
				for range 100 {
					var held []*throttle.Attempt
					for {
						a, _ := e.try(t, alice, clientA)
						if a == nil {
							break
						}
						held = append(held, a)
					}
					if want := max(1, first-tc.failed); len(held) != want {
						t.Fatalf("%d attempts at once, want %d", len(held), want)
					}
					for _, a := range held {
						release(t, a)
					}
				}
				// Nothing was counted: the owner logs in at once.
				e.succeed(t, alice, clientA)
			})
		}
		t.Run("cancelled", func(t *testing.T) {
			e := newEnv(t, b, throttle.Params{})
			for range throttle.DefaultFreeFailures {
				e.attempt(t, alice, attacker)
			}
			for _, end := range []func(a *throttle.Attempt, ctx context.Context) error{
				(*throttle.Attempt).Release, (*throttle.Attempt).Failure, (*throttle.Attempt).Success,
			} {
				ctx, cancel := context.WithCancel(t.Context())
				a, _, err := e.th.Check(ctx, alice, clientA, "")
				if err != nil || a == nil {
					t.Fatalf("Check = %v, %v; want admitted", a, err)
				}
				cancel() // the client left while its password was hashed
				if err := end(a, ctx); err != nil {
					t.Fatalf("ending an attempt after its client left: %v", err)
				}
				e.clock.Advance(time.Hour) // past a window the failure opened
				if a, _ := e.try(t, alice, clientA); a == nil {
					t.Fatal("the slot of a cancelled attempt was not given back")
				} else {
					release(t, a)
				}
			}
		})
	})
}

// TestAttemptEndsOnce: after the first of Success, Failure and Release,
// the others do nothing: a deferred Release after Failure neither frees a
// slot taken since nor counts again.
func TestAttemptEndsOnce(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		for range throttle.DefaultFreeFailures - 1 {
			e.attempt(t, alice, attacker)
		}
		a := e.admit(t, alice, attacker, "")
		fail(t, a) // the 5th failure: one at a time from now on
		next := e.admit(t, alice, clientA, "")
		fail(t, a)
		release(t, a)
		succeed(t, a)
		// next still holds the account: a was counted once, and its late
		// calls did not free next's slot.
		e.wantCheck(t, alice, attacker, time.Second)
		fail(t, next) // the 6th failure opens the first window
		e.wantCheck(t, alice, attacker, time.Second)
	})
}

// TestDeviceExempt is the lockout lever and its answer: an attack from
// many addresses that spends one guess at the end of every window keeps
// the account on 429, yet the owner's known device is admitted at once;
// guesses with another device are held by that device's own counts only.
func TestDeviceExempt(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		const owner, ownerDevice = "203.0.113.9", "device-of-alice"
		guesses := 0
		for k := 0; guesses < 200; k++ {
			a, wait := e.try(t, alice, fmt.Sprint("198.51.100.", k%250))
			if a == nil {
				e.clock.Advance(wait) // the next window end, public in Retry-After
				continue
			}
			fail(t, a)
			guesses++
		}
		// The account is held for MaxDelay; without a device, so is the owner.
		e.wantCheck(t, alice, owner, throttle.DefaultMaxDelay)
		for range 3 {
			a := e.admit(t, alice, owner, ownerDevice)
			if !a.Device() {
				t.Fatal("attempt with a device does not say so")
			}
			succeed(t, a)
			// The attacker's next guess at the window's end goes on ...
			e.clock.Advance(throttle.DefaultMaxDelay)
			fail(t, e.admit(t, alice, attacker, ""))
		}
		// ... and the owner's device logins gave it no fresh free failures.
		e.wantCheck(t, alice, attacker, throttle.DefaultMaxDelay)

		// An attacker holding some other device id is held by its own counts:
		// FreeFailures+1 guesses, then windows, and the account's windows
		// neither help nor hurt it; the owner's device stays free.
		const stolen = "device-of-mallory"
		for range first {
			fail(t, e.admit(t, alice, attacker, stolen))
		}
		if _, wait := e.tryDevice(t, alice, attacker, stolen); wait != time.Second {
			t.Fatalf("device after %d failures waits %v, want 1s", first, wait)
		}
		succeed(t, e.admit(t, alice, owner, ownerDevice))
		// The device's failures were not counted on the account.
		e.clock.Advance(throttle.DefaultMaxDelay)
		e.wantCheck(t, alice, attacker, 0)
	})
}

// TestSprayForgotten: failed logins on random emails leave two entries
// each, gone FirstWindow later.
func TestSprayForgotten(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(epoch)
	st := newMemstate(t, memstate.Params{}, clock.Now)
	th := newThrottle(t, st, throttle.Params{}, clock.Now)
	const n = 1000
	for i := range n {
		a, _, err := th.Check(t.Context(), fmt.Sprintf("user%d@example.com", i), attacker, "")
		if err != nil || a == nil {
			t.Fatal(a, err)
		}
		if err := a.Failure(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := st.Len(); got != 2*n {
		t.Fatalf("%d entries after %d failed logins on random emails, want %d", got, n, 2*n)
	}
	clock.Advance(throttle.DefaultFirstWindow - time.Nanosecond)
	if got := st.Sweep(); got != 0 {
		t.Fatalf("Sweep before FirstWindow removed %d", got)
	}
	clock.Advance(time.Nanosecond)
	if got := st.Sweep(); got != 2*n || st.Len() != 0 {
		t.Fatalf("Sweep at FirstWindow removed %d, %d left; want all", got, st.Len())
	}
}

// TestStoreFull: an in-process store at its cap refuses new attempts (503)
// and drops nothing; a failure without room for its count keeps its slot
// as long as the count would have lived, so no guess goes uncounted.
func TestStoreFull(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clocktest.New(epoch)
	const capKeys = 100
	st := newMemstate(t, memstate.Params{MaxKeys: capKeys}, clock.Now)
	th := newThrottle(t, st, throttle.Params{}, clock.Now)
	// Alice is tracked: one failure, two entries.
	a, _, err := th.Check(ctx, alice, clientA, "")
	if err != nil || a == nil {
		t.Fatal(a, err)
	}
	if err := a.Failure(ctx); err != nil {
		t.Fatal(err)
	}
	// Fill the rest, leaving room for one slot only.
	for i := st.Len(); i < capKeys-1; i++ {
		if err := st.Set(ctx, fmt.Sprint("other", i), []byte("x"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Mallory's attempt takes the last entry as its slot; its failure finds
	// no room for the counts and keeps the slot instead.
	m, _, err := th.Check(ctx, "mallory@example.com", attacker, "")
	if err != nil || m == nil {
		t.Fatal(m, err)
	}
	if err := m.Failure(ctx); err != nil {
		t.Fatalf("Failure at the cap: %v", err)
	}
	// Now full: any attempt that needs a new entry is refused with 503.
	for _, email := range []string{"mallory@example.com", "new@example.com", alice} {
		if _, _, err := th.Check(ctx, email, attacker, ""); !errors.Is(err, auth.ErrOverloaded) {
			t.Fatalf("Check(%s) at the cap: %v; want ErrOverloaded", email, err)
		}
	}
	if n := st.Len(); n != capKeys {
		t.Fatalf("%d entries at the cap, want %d", n, capKeys)
	}

	// Make room. Mallory's lost failure still holds one of his slots: five
	// attempts at once, not six.
	for i := range 30 {
		if err := st.Delete(ctx, fmt.Sprint("other", 10+i)); err != nil {
			t.Fatal(err)
		}
	}
	var held []*throttle.Attempt
	for {
		a, _, err := th.Check(ctx, "mallory@example.com", attacker, "")
		if err != nil {
			t.Fatal(err)
		}
		if a == nil {
			break
		}
		held = append(held, a)
	}
	if len(held) != first-1 {
		t.Errorf("mallory got %d attempts at once after a failure at the cap, want %d", len(held), first-1)
	}
	for _, a := range held {
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Alice's failure was kept: five more open the first window.
	for range throttle.DefaultFreeFailures {
		a, _, err := th.Check(ctx, alice, clientA, "")
		if err != nil || a == nil {
			t.Fatal(a, err)
		}
		if err := a.Failure(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, wait, err := th.Check(ctx, alice, clientA, ""); err != nil || wait != time.Second {
		t.Fatalf("Check after 1+5 failures = %v, %v; want the first window, 1s", wait, err)
	}
	// The held slot lapses with the count it stood for.
	clock.Advance(throttle.DefaultFirstWindow)
	a, _, err = th.Check(ctx, "mallory@example.com", attacker, "")
	if err != nil || a == nil {
		t.Fatal(a, err)
	}
	held = nil
	for {
		if a == nil {
			break
		}
		held = append(held, a)
		if a, _, err = th.Check(ctx, "mallory@example.com", attacker, ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(held) != first {
		t.Errorf("mallory got %d attempts at once once the held slot lapsed, want %d", len(held), first)
	}
}

func newMemstate(t testing.TB, p memstate.Params, now func() time.Time) *memstate.Store {
	t.Helper()
	st, err := memstate.New(p, now)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestForgetBudget plays a guesser who, instead of waiting for windows,
// spends k free failures and waits for them to be forgotten, for each k:
// none gets more than 96 guesses in any 24 hours, fewer than the 110 the
// delays allow (TestAttackerBudget).
func TestForgetBudget(t *testing.T) {
	t.Parallel()
	for k := 1; k <= throttle.DefaultFreeFailures; k++ {
		t.Run(fmt.Sprint("k=", k), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, backend{name: "memstate"}, throttle.Params{})
			// keep(k): FirstWindow doubled per failure past the first.
			forget := throttle.DefaultFirstWindow << (k - 1)
			var at []time.Time
			end := epoch.Add(48 * time.Hour)
			for e.clock.Now().Before(end) {
				for range k {
					at = append(at, e.clock.Now())
					e.attempt(t, alice, attacker)
				}
				e.clock.Advance(forget)
			}
			best, j := 0, 0
			for i := range at {
				for at[i].Sub(at[j]) >= 24*time.Hour {
					j++
				}
				best = max(best, i-j+1)
			}
			if best > 96 {
				t.Errorf("%d guesses in 24h spending %d and waiting %v, want at most 96", best, k, forget)
			}
		})
	}
}
