package redis_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/redis"
	"github.com/authd/authd/internal/redis/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis's own dial probe, started by a pool after repeated dial
		// failures: it checks once a second whether the pool was closed or
		// Redis is back, so it can outlive Close by up to a second.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

// newTestClient returns a client of the test Redis, closed when the test
// ends, and a key prefix of the test's own, whose keys are deleted first.
// proxiedStore returns a Store whose client reaches Redis through a proxy
// that the test can cut (p.Stop) and restore (p.Start). Its keys are deleted
// at the end through a direct client.
func proxiedStore(t *testing.T) (*redis.Store, *redistest.Proxy) {
	t.Helper()
	rawURL := redistest.URL(t)
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := redistest.NewProxy(t, opts.Addr)
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	c, err := redis.NewClient(u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, prefix := newTestClient(t)
	return redis.NewStore(c, prefix), p
}

func newTestClient(t *testing.T) (*goredis.Client, string) {
	t.Helper()
	c, err := redis.NewClient(redistest.URL(t))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return c, redistest.Prefix(t, c)
}

// newTestStore returns a Store on the test Redis under a random prefix; its
// keys are deleted and its client closed when the test ends.
func newTestStore(t *testing.T) *redis.Store {
	t.Helper()
	return redis.NewStore(newTestClient(t))
}

func TestStateSuite(t *testing.T) {
	redistest.URL(t)
	statetest.RunStateSuite(t,
		func(t *testing.T) auth.StateStore { return newTestStore(t) },
		nil, // Redis expires keys on its own clock: check the ttls instead
		statetest.WithTTLOf(func(ctx context.Context, st auth.StateStore, key string) (time.Duration, error) {
			return st.(*redis.Store).TTL(ctx, key)
		}),
	)
}

func TestKeysArePrefixed(t *testing.T) {
	t.Parallel()
	c, prefix := newTestClient(t)
	st := redis.NewStore(c, prefix)
	ctx := t.Context()

	if err := st.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Incr(ctx, "n", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetNX(ctx, "x", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k", "n", "x"} {
		if n, err := c.Exists(ctx, prefix+k).Result(); err != nil || n != 1 {
			t.Errorf("key %q not stored as %q (exists=%d, err=%v)", k, prefix+k, n, err)
		}
		if n, err := c.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("key %q stored without prefix (exists=%d, err=%v)", k, n, err)
		}
	}
}

func TestWrongTypeIsNotUnavailable(t *testing.T) {
	t.Parallel()
	c, prefix := newTestClient(t)
	st := redis.NewStore(c, prefix)
	ctx := t.Context()
	if err := c.RPush(ctx, prefix+"list", "a").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := st.Get(ctx, "list")
	if err == nil || errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("Get on a list = %v; want a plain WRONGTYPE error", err)
	}
	if !strings.Contains(err.Error(), "WRONGTYPE") || !strings.HasPrefix(err.Error(), "redis: get: ") {
		t.Fatalf("Get on a list = %q; want it to say what failed", err)
	}
}

func TestContextErrors(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)

	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := st.Get(expired, "k"); !errors.Is(err, auth.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get with an expired deadline = %v; want ErrUnavailable and DeadlineExceeded", err)
	}

	cancelled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	_, err := st.Get(cancelled, "k")
	if !errors.Is(err, context.Canceled) || errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Get with a cancelled context = %v; want Canceled, not ErrUnavailable", err)
	}
}

// TestUnavailable needs no Redis: nothing listens on port 1, and every
// method must say so quickly, as ErrUnavailable.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	c, err := redis.NewClient("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := redis.NewStore(c, "authdtest:")
	assertUnavailable(t, st)
}

// TestUnresponsive needs no Redis: the server accepts connections and never
// answers, the worst case for a client. Every method must still give up
// within 2s with ErrUnavailable.
func TestUnresponsive(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn // mu guards conns
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read or answered
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	c, err := redis.NewClient("redis://" + ln.Addr().String() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := redis.NewStore(c, "authdtest:")
	assertUnavailable(t, st)
	// Many callers at once: each holds a pooled connection until its read
	// times out, so they fail in waves of PoolSize (10 per CPU), 0.5s each.
	assertAllUnavailable(t, st, 32)
}

func assertUnavailable(t *testing.T, st *redis.Store) {
	t.Helper()
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := st.Get(ctx, "k"); return err }},
		{"MGet", func(ctx context.Context) error { _, err := st.MGet(ctx, "a", "b"); return err }},
		{"Set", func(ctx context.Context) error { return st.Set(ctx, "k", []byte("v"), time.Minute) }},
		{"SetNX", func(ctx context.Context) error { _, err := st.SetNX(ctx, "k", []byte("v"), time.Minute); return err }},
		{"Incr", func(ctx context.Context) error { _, err := st.Incr(ctx, "n", time.Minute); return err }},
		{"Delete", func(ctx context.Context) error { return st.Delete(ctx, "a", "b") }},
		{"Ping", func(ctx context.Context) error { return st.Ping(ctx) }},
		{"TTL", func(ctx context.Context) error { _, err := st.TTL(ctx, "k"); return err }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.call(t.Context())
			elapsed := time.Since(start)
			if !errors.Is(err, auth.ErrUnavailable) {
				t.Fatalf("%s = %v; want an error wrapping ErrUnavailable", tc.name, err)
			}
			t.Logf("%s failed in %v: %v", tc.name, elapsed.Round(time.Millisecond), err)
			if elapsed > 2*time.Second {
				t.Fatalf("%s took %v to fail; want under 2s", tc.name, elapsed)
			}
		})
	}
}

// TestReconnect puts a TCP proxy between the client and Redis, cuts it,
// and checks that calls fail fast while it is down and work again, on the
// same client, once it is back.
func TestReconnect(t *testing.T) {
	t.Parallel()
	st, p := proxiedStore(t)
	ctx := t.Context()

	if err := st.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatalf("Set through the proxy: %v", err)
	}

	p.Stop()
	assertUnavailable(t, st)
	// Keep failing until the pool gives up dialing on every call and hands
	// reconnection to its background probe; that path must recover too.
	for range 50 {
		if _, err := st.Get(ctx, "k"); !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("Get while Redis is away = %v; want ErrUnavailable", err)
		}
	}

	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	deadline := time.After(10 * time.Second)
	for {
		v, err := st.Get(ctx, "k")
		if err == nil {
			if string(v) != "v" {
				t.Fatalf("Get after reconnect = %q, want %q", v, "v")
			}
			t.Logf("recovered %v after Redis came back", time.Since(start).Round(time.Millisecond))
			return
		}
		if !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("Get while reconnecting = %v; want ErrUnavailable", err)
		}
		select {
		case <-poll.C:
		case <-deadline:
			t.Fatalf("client did not reconnect within 10s: %v", err)
		}
	}
}

func BenchmarkStore(b *testing.B) {
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
	b.Run("op=Get", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := st.Get(ctx, "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("op=Incr", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := st.Incr(ctx, "n", time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("op=MGet/keys=4", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := st.MGet(ctx, "k", "a", "b", "c"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
