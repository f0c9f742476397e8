package throttle_test

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/redis"
	"github.com/authd/authd/internal/redis/redistest"
	"github.com/authd/authd/internal/throttle"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis's dial probe after repeated dial failures (TestStoreDown);
		// it notices the closed pool within a second.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// backend makes a fresh, empty store for one test.
type backend struct {
	name     string
	newStore func(t *testing.T) auth.StateStore
}

// backends returns memstate, and Redis when AUTHD_TEST_REDIS_URL is set.
// Both run on the test's injected clock: the throttle compares stored
// window ends with it, so Redis's real-time ttls never matter here.
func backends(t *testing.T) []backend {
	t.Helper()
	bs := []backend{{name: "memstate"}} // newEnv builds it on the test's clock
	if os.Getenv(redistest.EnvVar) != "" {
		bs = append(bs, backend{"redis", func(t *testing.T) auth.StateStore { return newRedisStore(t) }})
	} else {
		t.Logf("%s is not set; running against memstate only", redistest.EnvVar)
	}
	return bs
}

// newRedisStore returns a store on the test Redis under a prefix of its
// own, whose keys are deleted when the test ends.
func newRedisStore(t testing.TB) *redis.Store {
	t.Helper()
	c, err := redis.NewClient(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return redis.NewStore(c, redistest.Prefix(t, c))
}

// env is one throttle under test with its clock and store.
type env struct {
	th    *throttle.Throttle
	clock *clocktest.Clock
	st    auth.StateStore
}

func newEnv(t *testing.T, b backend, p throttle.Params) *env {
	t.Helper()
	clock := clocktest.New(epoch)
	var st auth.StateStore
	if b.name == "memstate" {
		st = statetest.Memory(t, clock.Now)
	} else {
		st = b.newStore(t)
	}
	return &env{th: newThrottle(t, st, p, clock.Now), clock: clock, st: st}
}

func newThrottle(t testing.TB, st auth.StateStore, p throttle.Params, now func() time.Time) *throttle.Throttle {
	t.Helper()
	th, err := throttle.New(st, p, now)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// forEachBackend runs fn as a parallel subtest per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// try runs Check without a device; the caller ends an admitted attempt.
func (e *env) try(t *testing.T, email, client string) (*throttle.Attempt, time.Duration) {
	t.Helper()
	return e.tryDevice(t, email, client, "")
}

func (e *env) tryDevice(t *testing.T, email, client, device string) (*throttle.Attempt, time.Duration) {
	t.Helper()
	a, wait, err := e.th.Check(t.Context(), email, client, device)
	if err != nil {
		t.Fatalf("Check(%q, %q, %q): %v", email, client, device, err)
	}
	if (a == nil) == (wait == 0) {
		t.Fatalf("Check(%q, %q, %q) = %v, %v: want an attempt or a wait", email, client, device, a, wait)
	}
	return a, wait
}

// check returns Check's wait, releasing an admitted attempt at once.
func (e *env) check(t *testing.T, email, client string) time.Duration {
	t.Helper()
	a, wait := e.try(t, email, client)
	release(t, a)
	return wait
}

func (e *env) wantCheck(t *testing.T, email, client string, want time.Duration) {
	t.Helper()
	if got := e.check(t, email, client); got != want {
		t.Fatalf("Check(%q, %q) = %v, want %v", email, client, got, want)
	}
}

func release(t *testing.T, a *throttle.Attempt) {
	t.Helper()
	if err := a.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func fail(t *testing.T, a *throttle.Attempt) {
	t.Helper()
	if err := a.Failure(t.Context()); err != nil {
		t.Fatalf("Failure: %v", err)
	}
}

func succeed(t *testing.T, a *throttle.Attempt) {
	t.Helper()
	if err := a.Success(t.Context()); err != nil {
		t.Fatalf("Success: %v", err)
	}
}

// admit runs Check and fails the test unless it admits the attempt.
func (e *env) admit(t *testing.T, email, client, device string) *throttle.Attempt {
	t.Helper()
	a, wait := e.tryDevice(t, email, client, device)
	if a == nil {
		t.Fatalf("Check(%q, %q, %q) = wait %v, want admitted", email, client, device, wait)
	}
	return a
}

// attempt is one admitted, failed login: Check must admit it.
func (e *env) attempt(t *testing.T, email, client string) {
	t.Helper()
	fail(t, e.admit(t, email, client, ""))
}

// succeed is one admitted, good login.
func (e *env) succeed(t *testing.T, email, client string) {
	t.Helper()
	succeed(t, e.admit(t, email, client, ""))
}

const (
	alice    = "alice@example.com"
	clientA  = "203.0.113.7"
	attacker = "198.51.100.66"
)

func TestEscalation(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		for range throttle.DefaultFreeFailures {
			e.attempt(t, alice, clientA)
		}
		want := []time.Duration{
			1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
			32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second, 512 * time.Second,
			15 * time.Minute, 15 * time.Minute, 15 * time.Minute,
		}
		for i, d := range want {
			e.attempt(t, alice, clientA)
			// Inside the window, Check says exactly how long is left ...
			e.wantCheck(t, alice, clientA, d)
			e.clock.Advance(d / 4)
			e.wantCheck(t, alice, clientA, d-d/4)
			e.clock.Advance(d - d/4 - time.Nanosecond)
			e.wantCheck(t, alice, clientA, time.Nanosecond)
			// ... and the window ends on time.
			e.clock.Advance(time.Nanosecond)
			if i == len(want)-1 {
				e.wantCheck(t, alice, clientA, 0)
			}
		}
	})
}

func TestSuccessResets(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		for range 8 {
			e.attempt(t, alice, clientA)
			e.clock.Advance(time.Hour) // past any window
		}
		e.succeed(t, alice, clientA)
		// Five free failures again, then the first window is the shortest.
		for range throttle.DefaultFreeFailures + 1 {
			e.attempt(t, alice, clientA)
		}
		e.wantCheck(t, alice, clientA, time.Second)
	})
}

func TestEmailNormalised(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		spellings := []string{"alice@example.com", "Alice@Example.com", " ALICE@EXAMPLE.COM", "alice@example.COM\t", "aLiCe@example.com", "alice@example.com "}
		for _, s := range spellings {
			e.attempt(t, s, clientA)
		}
		e.wantCheck(t, alice, clientA, time.Second)
		// Another account is unaffected.
		e.wantCheck(t, "bob@example.com", clientA, 0)
	})
}

func TestManyClientsOneAccount(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		admitted := 0
		for i := range 20 {
			client := "192.0.2." + string(rune('a'+i))
			if a, _ := e.try(t, alice, client); a != nil {
				admitted++
				fail(t, a)
			}
		}
		if admitted != throttle.DefaultFreeFailures+1 {
			t.Errorf("%d of 20 attempts from 20 clients admitted, want %d", admitted, throttle.DefaultFreeFailures+1)
		}
		if got := e.check(t, alice, "192.0.2.250"); got <= 0 {
			t.Errorf("Check from a new client after 20 = %v, want a delay", got)
		}
	})
}

// TestPairSurvivesOwnerSuccess: the owner's login clears the account, not the
// attacker's client, which stays at its escalated delay while the owner's
// client goes free.
func TestPairSurvivesOwnerSuccess(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		for range 10 { // failures 6..10 open windows of 1..16s
			e.attempt(t, alice, attacker)
			e.clock.Advance(time.Minute) // past each window
		}
		e.succeed(t, alice, clientA)

		e.attempt(t, alice, attacker) // 11th failure of the pair: 32s
		e.wantCheck(t, alice, attacker, 32*time.Second)
		// The owner is not held by the attacker's window ...
		e.succeed(t, alice, clientA)
		// ... and the attacker is still held after the owner's success.
		e.wantCheck(t, alice, attacker, 32*time.Second)
	})
}

// TestConcurrentChecks: a burst of simultaneous attempts cannot all be
// admitted before the first failures are recorded.
func TestConcurrentChecks(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		const n = 40
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			admitted []*throttle.Attempt
			errs     []error
		)
		for range n {
			wg.Go(func() {
				a, _, err := e.th.Check(t.Context(), alice, attacker, "")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if a != nil {
					admitted = append(admitted, a)
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatal(errors.Join(errs...))
		}
		if len(admitted) != throttle.DefaultFreeFailures+1 {
			t.Fatalf("%d of %d concurrent attempts admitted, want %d (the free ones and one claim)",
				len(admitted), n, throttle.DefaultFreeFailures+1)
		}
		for _, a := range admitted {
			fail(t, a)
		}
		e.wantCheck(t, alice, attacker, time.Second)
	})
}

// TestOneAttemptAtATimeWhenDelayed: past the free failures, a second attempt
// waits while one is in flight, and the claim is freed by the outcome.
func TestOneAttemptAtATimeWhenDelayed(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		for range throttle.DefaultFreeFailures {
			e.attempt(t, alice, attacker)
		}
		a := e.admit(t, alice, attacker, "")        // in flight
		e.wantCheck(t, alice, clientA, time.Second) // waits for it
		succeed(t, a)
		e.wantCheck(t, alice, clientA, 0)
	})
}

func TestAbandonedAttemptLapses(t *testing.T) {
	t.Parallel()
	b := backend{name: "memstate"} // the claim's lapse follows the store's clock
	e := newEnv(t, b, throttle.Params{AttemptTimeout: 30 * time.Second})
	for range throttle.DefaultFreeFailures {
		e.attempt(t, alice, clientA)
	}
	e.admit(t, alice, clientA, "") // admitted, then neither Success nor Failure nor Release
	e.wantCheck(t, alice, clientA, time.Second)
	e.clock.Advance(30 * time.Second)
	e.wantCheck(t, alice, clientA, 0)
}

func TestCountsForgotten(t *testing.T) {
	t.Parallel()
	b := backend{name: "memstate"} // counts expire on the store's clock
	t.Run("few failures, Window after the first", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, b, throttle.Params{Window: time.Hour})
		for range 4 {
			e.attempt(t, alice, clientA)
		}
		e.clock.Advance(time.Hour)
		for range throttle.DefaultFreeFailures + 1 {
			e.attempt(t, alice, clientA)
		}
		e.wantCheck(t, alice, clientA, time.Second)
	})
	t.Run("delayed account, Window after the last", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, b, throttle.Params{Window: time.Hour})
		for range throttle.DefaultFreeFailures + 1 {
			e.attempt(t, alice, clientA)
		}
		e.clock.Advance(50 * time.Minute)
		e.attempt(t, alice, clientA) // 7th: 2s
		e.clock.Advance(50 * time.Minute)
		// An hour after the first failure, but not the last: still counted.
		e.attempt(t, alice, clientA)
		e.wantCheck(t, alice, clientA, 4*time.Second)
		e.clock.Advance(time.Hour)
		for range throttle.DefaultFreeFailures + 1 {
			e.attempt(t, alice, clientA)
		}
		e.wantCheck(t, alice, clientA, time.Second)
	})
}

// TestAttackerBudget plays a patient attacker for two days against the
// defaults and counts the guesses it gets.
func TestAttackerBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend{name: "memstate"}, throttle.Params{})
	var at []time.Time
	end := epoch.Add(48 * time.Hour)
	for e.clock.Now().Before(end) {
		a, wait := e.try(t, alice, attacker)
		if wait > 0 {
			e.clock.Advance(wait)
			continue
		}
		at = append(at, e.clock.Now())
		fail(t, a)
	}
	maxIn := func(d time.Duration) int {
		best, j := 0, 0
		for i := range at {
			for at[i].Sub(at[j]) >= d {
				j++
			}
			best = max(best, i-j+1)
		}
		return best
	}
	hour, day := maxIn(time.Hour), maxIn(24*time.Hour)
	t.Logf("failures: %d in 48h, at most %d in any hour, %d in any 24h", len(at), hour, day)
	if hour > 20 {
		t.Errorf("%d failures in one hour, want at most 20", hour)
	}
	if day > 115 {
		t.Errorf("%d failures in 24h, want at most 115", day)
	}
}

var keyPattern = regexp.MustCompile(`^throttle:\{[0-9a-f]{32}\}:(f|w|s[0-9]+|[cd]:[0-9a-f]{32}:(f|w|s[0-9]+))$`)

func TestKeysHideEmailAndClient(t *testing.T) {
	t.Parallel()
	run := func(p throttle.Params) map[string]bool {
		clock := clocktest.New(epoch)
		rec := &recordingStore{StateStore: statetest.Memory(t, clock.Now), keys: make(map[string]bool)}
		th := newThrottle(t, rec, p, clock.Now)
		ctx := t.Context()
		for i := range 8 {
			device := ""
			if i%2 == 1 {
				device = "device-" + alice
			}
			a, _, err := th.Check(ctx, alice, clientA, device)
			if err != nil {
				t.Fatal(err)
			}
			if a == nil {
				continue
			}
			if err := a.Failure(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if a, _, err := th.Check(ctx, alice, clientA, "device-"+alice); err != nil || a == nil {
			t.Fatal(a, err)
		} else if err := a.Success(ctx); err != nil {
			t.Fatal(err)
		}
		return rec.keys
	}
	plain := run(throttle.Params{})
	keyed := run(throttle.Params{HashKey: []byte("0123456789abcdef0123456789abcdef")})
	if len(plain) == 0 {
		t.Fatal("no keys recorded")
	}
	for k := range plain {
		if !keyPattern.MatchString(k) {
			t.Errorf("key %q does not look like throttle:{hash}:...", k)
		}
		for _, secret := range []string{"alice", "example", clientA, "203", "device"} {
			if strings.Contains(k, secret) {
				t.Errorf("key %q contains %q", k, secret)
			}
		}
		if keyed[k] {
			t.Errorf("key %q is the same with and without HashKey", k)
		}
	}
}

// recordingStore notes every key the throttle touches, on a real store.
type recordingStore struct {
	auth.StateStore
	mu   sync.Mutex
	keys map[string]bool // mu guards keys
}

func (r *recordingStore) note(keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		r.keys[k] = true
	}
}

func (r *recordingStore) Get(ctx context.Context, key string) ([]byte, error) {
	r.note(key)
	return r.StateStore.Get(ctx, key)
}

func (r *recordingStore) MGet(ctx context.Context, keys ...string) ([][]byte, error) {
	r.note(keys...)
	return r.StateStore.MGet(ctx, keys...)
}

func (r *recordingStore) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	r.note(key)
	return r.StateStore.Set(ctx, key, v, ttl)
}

func (r *recordingStore) SetNX(ctx context.Context, key string, v []byte, ttl time.Duration) (bool, error) {
	r.note(key)
	return r.StateStore.SetNX(ctx, key, v, ttl)
}

func (r *recordingStore) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	r.note(key)
	return r.StateStore.Incr(ctx, key, ttl)
}

func (r *recordingStore) Delete(ctx context.Context, keys ...string) error {
	r.note(keys...)
	return r.StateStore.Delete(ctx, keys...)
}

// TestStoreDown needs no Redis: nothing listens on port 1.
func TestStoreDown(t *testing.T) {
	t.Parallel()
	c, err := redis.NewClient("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	th := newThrottle(t, redis.NewStore(c, "authdtest:"), throttle.Params{}, time.Now)
	ctx := t.Context()
	if a, wait, err := th.Check(ctx, alice, clientA, ""); !errors.Is(err, auth.ErrUnavailable) || wait != 0 || a != nil {
		t.Errorf("Check = %v, %v, %v; want nil, 0, ErrUnavailable", a, wait, err)
	}
}

// BenchmarkLogin is the throttle's cost on a good login: Check then Success.
func BenchmarkLogin(b *testing.B) {
	ctx := context.Background()
	stores := []struct {
		name string
		st   func(b *testing.B) auth.StateStore
	}{
		{"memstate", func(b *testing.B) auth.StateStore { return statetest.Memory(b, time.Now) }},
	}
	if os.Getenv(redistest.EnvVar) != "" {
		stores = append(stores, struct {
			name string
			st   func(b *testing.B) auth.StateStore
		}{"redis", func(b *testing.B) auth.StateStore { return newRedisStore(b) }})
	}
	for _, s := range stores {
		b.Run("store="+s.name, func(b *testing.B) {
			th := newThrottle(b, s.st(b), throttle.Params{}, time.Now)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				email := "user" + string(rune('a'+i%26)) + "@example.com"
				a, _, err := th.Check(ctx, email, clientA, "")
				if err != nil || a == nil {
					b.Fatal(a, err)
				}
				if err := a.Success(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
