package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/redis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis's own dial probe, started by a pool after repeated dial
		// failures: it checks once a second whether the pool was closed or
		// Redis is back, so it can outlive Close by up to a second.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

const redisURLEnv = "AUTHD_TEST_REDIS_URL"

// testURL returns the Redis URL for integration tests or skips the test.
func testURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(redisURLEnv)
	if u == "" {
		t.Skipf("%s is not set; skipping Redis integration test", redisURLEnv)
	}
	return u
}

// newTestStore returns a Store on the test Redis under a random prefix; its
// keys are deleted and its client closed when the test ends.
func newTestStore(t *testing.T) *redis.Store {
	t.Helper()
	c, err := redis.NewClient(testURL(t))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	prefix := randomPrefix(t)
	t.Cleanup(func() {
		deletePrefix(t, c, prefix)
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return redis.NewStore(c, prefix)
}

func randomPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "authdtest:" + hex.EncodeToString(b) + ":"
}

// deletePrefix removes this test's keys and nothing else: the server is
// shared with other tests.
func deletePrefix(t *testing.T, c *goredis.Client, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 10*time.Second)
	defer cancel()
	it := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Errorf("cleanup: scan %s*: %v", prefix, err)
		return
	}
	if len(keys) > 0 {
		if err := c.Unlink(ctx, keys...).Err(); err != nil {
			t.Errorf("cleanup: unlink %d keys: %v", len(keys), err)
		}
	}
}

func TestStateSuite(t *testing.T) {
	testURL(t)
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
	rawURL := testURL(t)
	c, err := redis.NewClient(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := randomPrefix(t)
	defer deletePrefix(t, c, prefix)
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
	rawURL := testURL(t)
	c, err := redis.NewClient(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := randomPrefix(t)
	defer deletePrefix(t, c, prefix)
	st := redis.NewStore(c, prefix)
	ctx := t.Context()
	if err := c.RPush(ctx, prefix+"list", "a").Err(); err != nil {
		t.Fatal(err)
	}
	_, err = st.Get(ctx, "list")
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
	assertUnavailable(t, redis.NewStore(c, "authdtest:"))
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
	rawURL := testURL(t)
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, "127.0.0.1:0", opts.Addr)
	t.Cleanup(p.stop)
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.addr
	c, err := redis.NewClient(u.String())
	if err != nil {
		t.Fatal(err)
	}
	prefix := randomPrefix(t)
	t.Cleanup(func() {
		c.Close()
		direct, err := redis.NewClient(rawURL)
		if err != nil {
			t.Error(err)
			return
		}
		deletePrefix(t, direct, prefix)
		direct.Close()
	})
	st := redis.NewStore(c, prefix)
	ctx := t.Context()

	if err := st.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatalf("Set through the proxy: %v", err)
	}

	p.stop()
	assertUnavailable(t, st)
	// Keep failing until the pool gives up dialing on every call and hands
	// reconnection to its background probe; that path must recover too.
	for range 50 {
		if _, err := st.Get(ctx, "k"); !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("Get while Redis is away = %v; want ErrUnavailable", err)
		}
	}

	p.restart(t)
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

// proxy forwards TCP connections to a target; stop cuts every connection
// and stops listening, restart listens again on the same address.
type proxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener          // mu guards ln and conns
	conns map[net.Conn]struct{} // open client and upstream connections
	wg    sync.WaitGroup        // accept loop and copiers
}

func startProxy(t *testing.T, addr, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, conns: make(map[net.Conn]struct{})}
	p.listen(t, addr)
	return p
}

func (p *proxy) restart(t *testing.T) {
	t.Helper()
	p.listen(t, p.addr)
}

func (p *proxy) listen(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("proxy listen %s: %v", addr, err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return // listener closed by stop
			}
			up, err := net.DialTimeout("tcp", p.target, time.Second)
			if err != nil {
				down.Close()
				continue
			}
			if !p.track(down, up) {
				return
			}
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			p.wg.Go(func() { pipe(up, down) })
			p.wg.Go(func() { pipe(down, up) })
		}
	})
}

// track records the pair unless the proxy was stopped meanwhile.
func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func BenchmarkStore(b *testing.B) {
	rawURL := os.Getenv(redisURLEnv)
	if rawURL == "" {
		b.Skipf("%s is not set", redisURLEnv)
	}
	c, err := redis.NewClient(rawURL)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	prefix := "authdbench:" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "") + ":"
	defer func() {
		ctx := context.Background()
		it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			c.Unlink(ctx, it.Val())
		}
	}()
	st := redis.NewStore(c, prefix)
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
