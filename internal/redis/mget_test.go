package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/redis"
	"github.com/authd/authd/internal/redis/redistest"
)

// TestMGetConcurrent has many goroutines read their own keys at once: each
// must get exactly its own values, in its own order, nil where absent.
func TestMGetConcurrent(t *testing.T) {
	t.Parallel()
	const workers, rounds = 64, 200
	st := newTestStore(t)
	ctx := t.Context()
	for w := range workers {
		if err := st.Set(ctx, fmt.Sprintf("w%d:a", w), []byte("a"+strconv.Itoa(w)), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := st.Set(ctx, fmt.Sprintf("w%d:c", w), []byte("c"+strconv.Itoa(w)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			a, b, c := fmt.Sprintf("w%d:a", w), fmt.Sprintf("w%d:b", w), fmt.Sprintf("w%d:c", w)
			for r := range rounds {
				// Vary the number and order of keys between rounds.
				keys := []string{a, b, c}
				want := []string{"a" + strconv.Itoa(w), "", "c" + strconv.Itoa(w)}
				if r%3 == 1 {
					keys, want = []string{c, a}, []string{want[2], want[0]}
				}
				vals, err := st.MGet(ctx, keys...)
				if err != nil {
					t.Errorf("worker %d round %d: MGet: %v", w, r, err)
					return
				}
				if !sameValues(vals, want) {
					t.Errorf("worker %d round %d: MGet(%q) = %q; want %q", w, r, keys, vals, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// sameValues compares MGet's reply with want, where "" stands for absent.
func sameValues(vals [][]byte, want []string) bool {
	if len(vals) != len(want) {
		return false
	}
	for i, v := range vals {
		if (v == nil) != (want[i] == "") || string(v) != want[i] {
			return false
		}
	}
	return true
}

// TestMGetCancellationStorm mixes callers whose contexts are already
// cancelled, expire within microseconds, or are cancelled mid-call with
// patient ones. Nobody may hang, the patient ones must all succeed, and
// anybody who gets values must get their own.
func TestMGetCancellationStorm(t *testing.T) {
	t.Parallel()
	const workers, rounds = 64, 100
	st := newTestStore(t)
	ctx := t.Context()
	for w := range workers {
		if err := st.Set(ctx, fmt.Sprintf("w%d", w), []byte(strconv.Itoa(w)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	var patientOK atomic.Int64
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				key, want := fmt.Sprintf("w%d", w), []string{strconv.Itoa(w), ""}
				for r := range rounds {
					patient := w%2 == 0
					var (
						cctx   context.Context
						cancel context.CancelFunc
					)
					switch {
					case patient:
						cctx, cancel = context.WithCancel(ctx)
					case r%3 == 0: // cancelled before the call
						cctx, cancel = context.WithCancel(ctx)
						cancel()
					case r%3 == 1: // a deadline of 0 to 6µs
						cctx, cancel = context.WithTimeout(ctx, time.Duration(r%7)*time.Microsecond)
					default: // cancelled during the call, or about then
						cctx, cancel = context.WithCancel(ctx)
						time.AfterFunc(time.Duration(r%5)*10*time.Microsecond, cancel)
					}
					vals, err := st.MGet(cctx, key, "absent")
					cancel()
					switch {
					case err == nil:
						if !sameValues(vals, want) {
							t.Errorf("worker %d round %d: MGet = %q; want %q", w, r, vals, want)
						}
						if patient {
							patientOK.Add(1)
						}
					case patient:
						t.Errorf("worker %d round %d: MGet with a live context: %v", w, r, err)
					case !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
						t.Errorf("worker %d round %d: MGet = %v; want a context error", w, r, err)
					}
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("MGet callers still blocked after 60s")
	}
	if got, want := patientOK.Load(), int64(workers/2*rounds); got != want {
		t.Errorf("%d patient calls succeeded; want %d", got, want)
	}
}

// TestMGetConcurrentUnavailable has many concurrent callers read from a
// dead address: every one of them must get ErrUnavailable, quickly.
func TestMGetConcurrentUnavailable(t *testing.T) {
	t.Parallel()
	c, err := redis.NewClient("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := redis.NewStore(c, "authdtest:")
	assertAllUnavailable(t, st, 64)
}

// assertAllUnavailable runs MGet from callers goroutines at once and
// checks that every one gets ErrUnavailable, all within 3s.
func assertAllUnavailable(t *testing.T, st *redis.Store, callers int) {
	t.Helper()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range callers {
		wg.Go(func() {
			_, err := st.MGet(t.Context(), "a", "b", strconv.Itoa(i))
			if !errors.Is(err, auth.ErrUnavailable) {
				t.Errorf("caller %d: MGet = %v; want ErrUnavailable", i, err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("%d concurrent MGets took %v to fail; want under 3s", callers, d)
	} else {
		t.Logf("%d concurrent MGets failed in %v", callers, d.Round(time.Millisecond))
	}
}

// TestMGetOutageMidStream cuts Redis off (the proxy) while goroutines are
// busy reading: each call fails with ErrUnavailable or succeeds with its
// own values, none hangs, and reads work again once Redis is back.
func TestMGetOutageMidStream(t *testing.T) {
	t.Parallel()
	st, p := proxiedStore(t)
	ctx := t.Context()
	const workers = 32
	for w := range workers {
		if err := st.Set(ctx, fmt.Sprintf("w%d", w), []byte(strconv.Itoa(w)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var (
		wg       sync.WaitGroup
		ok, fail atomic.Int64
	)
	stopWorkers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWorkers() // also on t.Fatal
	for w := range workers {
		wg.Go(func() {
			key, want := fmt.Sprintf("w%d", w), []string{strconv.Itoa(w)}
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				vals, err := st.MGet(ctx, key)
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("worker %d: MGet took %v", w, d)
				}
				switch {
				case err == nil:
					ok.Add(1)
					if !sameValues(vals, want) {
						t.Errorf("worker %d: MGet = %q; want %q", w, vals, want)
					}
				case errors.Is(err, auth.ErrUnavailable):
					fail.Add(1)
				default:
					t.Errorf("worker %d: MGet = %v; want ErrUnavailable", w, err)
				}
			}
		})
	}
	// waitFor polls cond, which watches real I/O, for up to 10s.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		poll := time.NewTicker(5 * time.Millisecond)
		defer poll.Stop()
		deadline := time.After(10 * time.Second)
		for !cond() {
			select {
			case <-poll.C:
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("successful reads", func() bool { return ok.Load() > 500 })
	p.Stop()
	waitFor("failures while Redis is away", func() bool { return fail.Load() > 100 })
	okBefore := ok.Load()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor("reads to recover", func() bool { return ok.Load() > okBefore+500 })
	stopWorkers()
	t.Logf("%d reads succeeded, %d failed", ok.Load(), fail.Load())

	// The proxy down again, now with callers waiting all at once.
	p.Stop()
	assertAllUnavailable(t, st, 64)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor("a read after the second outage", func() bool {
		vals, err := st.MGet(ctx, "w0")
		return err == nil && sameValues(vals, []string{"0"})
	})
}

// BenchmarkMGetParallel is the revocation check's shape: concurrent MGETs
// of 3 keys, one present.
func BenchmarkMGetParallel(b *testing.B) {
	c, err := redis.NewClient(redistest.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	st := redis.NewStore(c, redistest.Prefix(b, c))
	ctx := context.Background()
	if err := st.Set(ctx, "k", []byte("value"), time.Hour); err != nil {
		b.Fatal(err)
	}
	// goroutines=GOMAXPROCS, and 16 per P: many requests waiting on Redis
	// at once, as under HTTP load.
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("par=%d", par), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := st.MGet(ctx, "k", "a", "b"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
