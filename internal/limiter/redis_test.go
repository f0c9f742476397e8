package limiter

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"

	"github.com/authd/authd/internal/redis/redistest"
)

// testRedis returns a client for AUTHD_TEST_REDIS_URL and a key prefix of
// the test's own, whose keys are deleted at cleanup. It skips when the
// variable is unset.
func testRedis(t *testing.T) (*goredis.Client, string) {
	t.Helper()
	c := testClient(t)
	return c, redistest.Prefix(t, c)
}

// testClient returns a client for AUTHD_TEST_REDIS_URL, closed at cleanup.
func testClient(t *testing.T) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", redistest.EnvVar, err)
	}
	opt.ContextTimeoutEnabled = true
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestRedisBurstThenReject(t *testing.T) {
	t.Parallel()
	c, prefix := testRedis(t)
	p := Params{RPS: 1, Burst: 3}
	local, _, _ := newTestLocal(t, p)
	r := mustRedis(t, c, local, prefix, p, discardLogger())
	ctx := t.Context()
	for i := range 3 {
		d := r.Allow(ctx, v4a)
		if !d.Allowed || d.Remaining != 2-i || d.Limit != 3 {
			t.Fatalf("request %d: %+v", i, d)
		}
		if d.Reset <= time.Duration(i)*time.Second || d.Reset > time.Duration(i+1)*time.Second {
			t.Fatalf("request %d: reset %v", i, d.Reset)
		}
	}
	d := r.Allow(ctx, v4a)
	if d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > time.Second || d.Reset != d.RetryAfter {
		t.Fatalf("over burst: %+v", d)
	}
	if d := r.Allow(ctx, v4b); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("other key: %+v", d)
	}
	ttl, err := c.PTTL(ctx, prefix+"192.0.2.1/32").Result()
	if err != nil || ttl <= 2*time.Second || ttl > 3*time.Second {
		t.Fatalf("bucket key TTL %v (%v), want (2s, 3s]: it must expire when full again", ttl, err)
	}
	if got := testutil.ToFloat64(local.m.rejectedIP); got != 1 {
		t.Errorf("rejections = %v, want 1", got)
	}
	if local.Tracked() != 0 {
		t.Errorf("Redis decisions tracked %d keys locally", local.Tracked())
	}
}

// TestRedisSharedBudget: two instances (two limiters, two clients, one
// prefix) enforce one budget between them.
func TestRedisSharedBudget(t *testing.T) {
	t.Parallel()
	c1, prefix := testRedis(t)
	c2 := testClient(t)
	p := Params{RPS: 0.5, Burst: 10}
	l1, _, _ := newTestLocal(t, p)
	l2, _, _ := newTestLocal(t, p)
	instances := []*Redis{mustRedis(t, c1, l1, prefix, p, discardLogger()), mustRedis(t, c2, l2, prefix, p, discardLogger())}

	key := netip.MustParsePrefix("2001:db8:7::/64")
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if instances[i%2].Allow(t.Context(), key).Allowed {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 10 {
		t.Fatalf("%d of 30 requests over two instances allowed, want the one budget of 10", allowed)
	}
}

func TestRedisFallbackWhenDown(t *testing.T) {
	t.Parallel()
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	p := Params{RPS: 1, Burst: 2}
	local, clk, _ := newTestLocal(t, p)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	r := mustRedis(t, c, local, "authd-test:down:", p, logger)

	var got []bool
	for range 4 {
		got = append(got, r.Allow(t.Context(), v4a).Allowed)
	}
	if want := []bool{true, true, false, false}; !equalBools(got, want) {
		t.Fatalf("decisions %v, want local limiting %v", got, want)
	}
	if n := testutil.ToFloat64(local.m.backendErrors); n != 4 {
		t.Errorf("backend errors = %v, want 4", n)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("%d log lines for 4 failures within %v, want 1:\n%s", n, LogEvery, logs.String())
	}
	clk.Advance(LogEvery)
	r.Allow(t.Context(), v4a)
	if n := strings.Count(logs.String(), "\n"); n != 2 {
		t.Errorf("%d log lines after %v, want 2", n, LogEvery)
	}
	if strings.Contains(logs.String(), "192.0.2.1") {
		t.Errorf("log names the client key:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "failures=4") { // 1 failure + 3 bypassed
		t.Errorf("second warning does not count the suppressed failures:\n%s", logs.String())
	}

	// A request whose client has gone is limited locally without counting
	// as a Redis failure.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r.Allow(ctx, v4b)
	if n := testutil.ToFloat64(local.m.backendErrors); n != 5 {
		t.Errorf("backend errors after a cancelled request = %v, want 5", n)
	}
}

// TestRedisTimeout points the limiter at a server that accepts connections
// and never answers: each call gives up at the deadline and falls back.
func TestRedisTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	conns.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, conn)
			mu.Unlock()
		}
	})
	c := goredis.NewClient(&goredis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1, Protocol: 2})
	t.Cleanup(func() {
		_ = c.Close()
		_ = ln.Close()
		conns.Wait()
		mu.Lock()
		for _, conn := range open {
			_ = conn.Close()
		}
		mu.Unlock()
	})
	p := Params{RPS: 1, Burst: 1, Timeout: 50 * time.Millisecond}
	local, _, _ := newTestLocal(t, p)
	r := mustRedis(t, c, local, "authd-test:hung:", p, discardLogger())
	start := time.Now()
	d := r.Allow(t.Context(), v4a)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Allow took %v with a 50ms deadline", took)
	}
	if !d.Allowed || testutil.ToFloat64(local.m.backendErrors) != 1 || local.Tracked() != 1 {
		t.Errorf("hung Redis: %+v, errors %v, tracked %d; want a local decision", d, testutil.ToFloat64(local.m.backendErrors), local.Tracked())
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
