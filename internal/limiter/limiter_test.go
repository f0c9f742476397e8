package limiter

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/clocktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
}

var (
	v4a = netip.MustParsePrefix("192.0.2.1/32")
	v4b = netip.MustParsePrefix("192.0.2.2/32")
)

func newTestLocal(t testing.TB, p Params) (*Local, *clocktest.Clock, *prometheus.Registry) {
	t.Helper()
	clk := newFakeClock()
	reg := prometheus.NewRegistry()
	return mustLocal(t, p, clk.Now, reg), clk, reg
}

func mustLocal(t testing.TB, p Params, now func() time.Time, reg prometheus.Registerer) *Local {
	t.Helper()
	l, err := NewLocal(p, now, reg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustRedis(t testing.TB, c goredis.UniversalClient, fallback *Local, prefix string, p Params, logger *slog.Logger) *Redis {
	t.Helper()
	r, err := NewRedis(c, fallback, prefix, p, logger)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewRefusesBadInput(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	for _, tc := range []struct {
		name string
		p    Params
		now  func() time.Time
		reg  prometheus.Registerer
	}{
		{"zero rps", Params{Burst: 1}, time.Now, reg},
		{"zero burst", Params{RPS: 1}, time.Now, reg},
		{"nil clock", Params{RPS: 1, Burst: 1}, nil, reg},
		{"nil registerer", Params{RPS: 1, Burst: 1}, time.Now, nil},
	} {
		if _, err := NewLocal(tc.p, tc.now, tc.reg); err == nil {
			t.Errorf("NewLocal %s: no error", tc.name)
		}
	}
	local := mustLocal(t, Params{RPS: 1, Burst: 1}, time.Now, reg)
	if _, err := NewRedis(nil, local, "p:", Params{RPS: 1, Burst: 1}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewRedis without a client: no error")
	}
}

func TestBurstThenReject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rps       float64
		burst     int
		wantRetry time.Duration
	}{
		{rps: 1, burst: 1, wantRetry: time.Second},
		{rps: 2, burst: 5, wantRetry: 500 * time.Millisecond},
		{rps: 0.1, burst: 3, wantRetry: 10 * time.Second},
		{rps: 1000, burst: 100, wantRetry: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rps=%v,burst=%d", tt.rps, tt.burst), func(t *testing.T) {
			t.Parallel()
			l, _, reg := newTestLocal(t, Params{RPS: tt.rps, Burst: tt.burst})
			interval := time.Duration(float64(time.Second) / tt.rps)
			for i := range tt.burst {
				d := l.Allow(context.Background(), v4a)
				want := Decision{Allowed: true, Limit: tt.burst, Remaining: tt.burst - 1 - i, Reset: time.Duration(i+1) * interval}
				if d != want {
					t.Fatalf("request %d: %+v, want %+v", i, d, want)
				}
			}
			for range 3 {
				d := l.Allow(context.Background(), v4a)
				want := Decision{Limit: tt.burst, Reset: tt.wantRetry, RetryAfter: tt.wantRetry}
				if d != want {
					t.Fatalf("over burst: %+v, want %+v", d, want)
				}
			}
			if d := l.Allow(context.Background(), v4b); !d.Allowed || d.Remaining != tt.burst-1 {
				t.Fatalf("other key affected: %+v", d)
			}
			if got := testutil.ToFloat64(l.m.rejectedIP); got != 3 {
				t.Errorf("rejections{scope=ip} = %v, want 3", got)
			}
			if got := testutil.ToFloat64(l.m.tracked); got != 2 {
				t.Errorf("tracked keys gauge = %v, want 2", got)
			}
			_ = reg
		})
	}
}

func TestRefill(t *testing.T) {
	t.Parallel()
	l, clk, _ := newTestLocal(t, Params{RPS: 2, Burst: 4}) // a token every 500 ms
	for range 4 {
		l.Allow(context.Background(), v4a)
	}
	steps := []struct {
		advance       time.Duration
		wantAllowed   bool
		wantRemaining int
		wantRetry     time.Duration
	}{
		{0, false, 0, 500 * time.Millisecond},
		{499 * time.Millisecond, false, 0, time.Millisecond},
		{time.Millisecond, true, 0, 0},                               // exactly one token back
		{1500 * time.Millisecond, true, 2, 0},                        // three more back, one taken
		{time.Hour, true, 3, 0},                                      // never more than the burst
		{0, true, 2, 0},                                              // and counting down again
		{250 * time.Millisecond, true, 1, 0},                         // half a token does not show
		{0, true, 0, 0},                                              // the last whole token
		{0, false, 0, 250 * time.Millisecond},                        // the half token is waiting
		{250 * time.Millisecond, true, 0, 0},                         // and arrives
		{-time.Minute, false, 0, time.Minute + 500*time.Millisecond}, // clock going back never refills
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		d := l.Allow(context.Background(), v4a)
		if d.Allowed != s.wantAllowed || d.Remaining != s.wantRemaining || d.RetryAfter != s.wantRetry {
			t.Fatalf("step %d (+%v): %+v, want allowed=%v remaining=%d retry=%v", i, s.advance, d, s.wantAllowed, s.wantRemaining, s.wantRetry)
		}
		if !d.Allowed && d.Reset != d.RetryAfter {
			t.Fatalf("step %d: rejected with Reset %v != RetryAfter %v", i, d.Reset, d.RetryAfter)
		}
	}
}

func TestKeyOf(t *testing.T) {
	t.Parallel()
	same := [][2]string{
		{"2001:db8:1:2::1/128", "2001:db8:1:2:ffff::/64"},
		{"2001:db8:1:2::1/64", "2001:db8:1:2::/64"},
		{"192.0.2.1/24", "192.0.2.200/24"},
		{"0.0.0.0/0", "255.255.255.255/0"},
		{"::/0", "ffff::/0"},
		{"::ffff:192.0.2.1/128", "::/64"}, // IPv6 longer than /64 is its /64; clientip unmaps first
	}
	for _, p := range same {
		if a, b := keyOf(netip.MustParsePrefix(p[0])), keyOf(netip.MustParsePrefix(p[1])); a != b {
			t.Errorf("%s and %s have different keys %v %v", p[0], p[1], a, b)
		}
	}
	distinct := []string{
		"192.0.2.1/32", "192.0.2.2/32", "192.0.2.0/24", "0.0.0.0/0", "::/0", "::/64",
		"2001:db8:1:2::/64", "2001:db8:1:3::/64", "2001:db8:1::/48",
	}
	seen := map[key]string{keyOf(netip.Prefix{}): "zero"}
	for _, s := range distinct {
		k := keyOf(netip.MustParsePrefix(s))
		if prev, ok := seen[k]; ok {
			t.Errorf("%s collides with %s", s, prev)
		}
		seen[k] = s
	}
}

func TestGCRATokens(t *testing.T) {
	t.Parallel()
	for _, p := range []Params{{RPS: 3, Burst: 7}, {RPS: 1e9, Burst: 1 << 30}, {RPS: 1e-9, Burst: 4_000_000}, {RPS: 7919, Burst: 1}} {
		g := newGCRA(p)
		for _, tt := range []int64{0, 1, g.interval - 1, g.interval, g.interval + 1, g.capacity - 1, g.capacity, g.capacity / 3, g.capacity/3 + 1} {
			if tt < 0 || tt > g.capacity {
				continue
			}
			if got, want := g.tokens(tt), tt/g.interval; got != want {
				t.Errorf("%+v: tokens(%d) = %d, want %d", p, tt, got, want)
			}
		}
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	bad := []Params{
		{RPS: 0, Burst: 1}, {RPS: -1, Burst: 1}, {RPS: 2e9, Burst: 1}, {RPS: 1, Burst: 0},
		{RPS: 1, Burst: 1, MaxKeys: -1}, {RPS: 1, Burst: 1, SweepEvery: -1}, {RPS: 1e-9, Burst: 1 << 30},
	}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
	if err := (Params{RPS: 5, Burst: 20}).Validate(); err != nil {
		t.Errorf("good params: %v", err)
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	l, clk, _ := newTestLocal(t, Params{RPS: 1, Burst: 10})
	l.Allow(context.Background(), v4a) // full again after 1 s
	for range 5 {
		l.Allow(context.Background(), v4b) // full again after 5 s
	}
	if n := l.Sweep(); n != 0 || l.Tracked() != 2 {
		t.Fatalf("fresh sweep dropped %d, tracked %d", n, l.Tracked())
	}
	clk.Advance(time.Second)
	if n := l.Sweep(); n != 1 || l.Tracked() != 1 {
		t.Fatalf("after 1s dropped %d, tracked %d; want 1, 1", n, l.Tracked())
	}
	if d := l.Allow(context.Background(), v4b); d.Remaining != 5 { // its state survived the sweep
		t.Fatalf("v4b after sweep: %+v", d)
	}
	clk.Advance(time.Minute)
	if n := l.Sweep(); n != 1 || l.Tracked() != 0 {
		t.Fatalf("after a minute dropped %d, tracked %d; want 1, 0", n, l.Tracked())
	}
	if got := testutil.ToFloat64(l.m.tracked); got != 0 {
		t.Errorf("tracked gauge = %v, want 0", got)
	}
}

// TestRunSweepsAndStops runs the sweeper in a synctest bubble, whose clock
// moves only when every goroutine in it waits: it drops idle buckets on each
// tick and returns nil once its context ends (goleak in TestMain checks
// nothing is left behind).
func TestRunSweepsAndStops(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l, clk, _ := newTestLocal(t, Params{RPS: 1, Burst: 1, SweepEvery: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()

		for i := range 100 {
			l.Allow(context.Background(), netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32))
		}
		time.Sleep(time.Minute + time.Millisecond) // one tick of the bubble's clock
		synctest.Wait()
		if n := l.Tracked(); n != 100 {
			t.Fatalf("first sweep left %d of 100 busy buckets", n)
		}
		clk.Advance(time.Second) // the limiter's clock: every bucket is full again
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := l.Tracked(); n != 0 {
			t.Fatalf("second sweep left %d idle buckets, want 0", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	})
}

func TestRunRealTicker(t *testing.T) {
	t.Parallel()
	l, _, _ := newTestLocal(t, Params{RPS: 1, Burst: 1, SweepEvery: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}

// TestKeyCapUnderSpray sprays 2 M distinct client keys at a limiter capped at
// 100 k: tracked keys never exceed the cap, memory stays bounded, the spray
// as a whole gets one client's budget, and clients tracked before the spray
// keep their own buckets.
func TestKeyCapUnderSpray(t *testing.T) {
	const maxKeys, spray = 100_000, 2_000_000
	l, clk, _ := newTestLocal(t, Params{RPS: 1, Burst: 5, MaxKeys: maxKeys})
	l.Allow(context.Background(), v4a)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	var wg sync.WaitGroup
	var allowed atomic.Int64
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < spray; i += workers {
				a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
				if l.Allow(context.Background(), netip.PrefixFrom(a, 64)).Allowed {
					allowed.Add(1)
				}
				if i%1000 == 0 {
					if n := l.Tracked(); n > maxKeys {
						t.Errorf("tracked %d > cap %d", n, maxKeys)
					}
				}
			}
		})
	}
	wg.Wait()

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)

	if n := l.Tracked(); n != maxKeys {
		t.Errorf("tracked %d, want exactly the cap %d", n, maxKeys)
	}
	if got, want := allowed.Load(), int64(maxKeys-1+5); got != want {
		t.Errorf("spray got %d requests through, want %d (one per tracked key + one overflow burst)", got, want)
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if limit := int64(maxKeys) * 200; grown > limit {
		t.Errorf("heap grew %d B for %d keys, more than %d", grown, maxKeys, limit)
	}
	if d := l.Allow(context.Background(), v4a); !d.Allowed || d.Remaining != 3 {
		t.Errorf("client tracked before the spray: %+v, want its own bucket with 3 left", d)
	}

	clk.Advance(time.Hour)
	if n := l.Sweep(); n != maxKeys {
		t.Errorf("sweep dropped %d, want %d", n, maxKeys)
	}
	slots := 0
	for i := range l.shards {
		slots += len(l.shards[i].t.Load().slots)
	}
	if slots != numShards*minSlots {
		t.Errorf("after sweeping every bucket the tables hold %d slots, want them shrunk to %d", slots, numShards*minSlots)
	}
	if d := l.Allow(context.Background(), v4b); !d.Allowed || l.Tracked() != 1 {
		t.Errorf("after sweep a new client gets its own bucket: %+v, tracked %d", d, l.Tracked())
	}
}

func TestMetricsPreCreated(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	clk := newFakeClock()
	l := mustLocal(t, Params{RPS: 1, Burst: 1}, clk.Now, reg)
	_ = mustLocal(t, Params{RPS: 9, Burst: 9}, clk.Now, reg) // a second limiter shares the series
	l.Allow(context.Background(), v4a)
	l.Allow(context.Background(), v4a) // refused: burst 1
	const want = `
# HELP authd_ratelimit_backend_errors_total Redis rate-limit calls that failed or timed out; each such request was limited in process instead.
# TYPE authd_ratelimit_backend_errors_total counter
authd_ratelimit_backend_errors_total 0
# HELP authd_ratelimit_rejections_total Requests refused by a rate limit, by scope: ip (per client address) or account (per-account login throttle).
# TYPE authd_ratelimit_rejections_total counter
authd_ratelimit_rejections_total{scope="ip"} 1
# HELP authd_ratelimit_tracked_keys Client keys with a bucket held in process (the Redis limiter's in-process fallback included).
# TYPE authd_ratelimit_tracked_keys gauge
authd_ratelimit_tracked_keys 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestAllowHitPathAllocs(t *testing.T) {
	l, _, _ := newTestLocal(t, Params{RPS: 1, Burst: 1})
	l.Allow(context.Background(), v4a)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(context.Background(), v4a) }); n != 0 {
		t.Errorf("Allow on a tracked key allocates %v times, want 0", n)
	}
}

func TestConcurrentAllowIsExact(t *testing.T) {
	t.Parallel()
	l, _, _ := newTestLocal(t, Params{RPS: 1, Burst: 1000})
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 500 {
				if l.Allow(context.Background(), v4a).Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 1000 {
		t.Fatalf("allowed %d of 4000 concurrent requests, want exactly the burst 1000", got)
	}
}

func TestShardsOwnCacheLines(t *testing.T) {
	t.Parallel()
	l, _, _ := newTestLocal(t, Params{RPS: 1, Burst: 1})
	if size := unsafe.Sizeof(shard{}); size != 64 {
		t.Errorf("shard is %d bytes, want one 64-byte cache line", size)
	}
	line := func(p unsafe.Pointer) uintptr { return uintptr(p) / 64 }
	seen := map[uintptr]int{}
	for i := range l.shards {
		s := &l.shards[i]
		first, last := line(unsafe.Pointer(&s.mu)), line(unsafe.Pointer(uintptr(unsafe.Pointer(&s.t))+7))
		if first != last {
			t.Fatalf("shard %d's fields straddle cache lines %#x and %#x", i, first, last)
		}
		if j, ok := seen[first]; ok {
			t.Fatalf("shards %d and %d share cache line %#x", j, i, first)
		}
		seen[first] = i
	}
}

// TestConcurrentReplaceLosesNoTokens hammers many keys from several
// goroutines while tables grow and are replaced underneath them: with the
// clock stopped every key must be allowed exactly Burst times, no matter
// which table its requests met.
func TestConcurrentReplaceLosesNoTokens(t *testing.T) {
	t.Parallel()
	const nkeys, workers, rounds, burst = 4000, 4, 4, 3
	l, _, _ := newTestLocal(t, Params{RPS: 1, Burst: burst})
	keys := make([]netip.Prefix, nkeys)
	for i := range keys {
		keys[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32)
	}
	allowed := make([]atomic.Int32, nkeys)

	stop := make(chan struct{})
	var replacer sync.WaitGroup
	replacer.Go(func() {
		keepAll := func(int64) bool { return true }
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range l.shards {
				s := &l.shards[i]
				s.mu.Lock()
				s.replace(&l.seed, len(s.t.Load().slots), keepAll)
				s.mu.Unlock()
			}
			l.Sweep() // nothing is idle with the clock stopped: drops nothing
		}
	})

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				for i := range keys {
					j := (i*7 + w*nkeys/workers) % nkeys
					if l.Allow(context.Background(), keys[j]).Allowed {
						allowed[j].Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	replacer.Wait()

	for i := range allowed {
		if n := allowed[i].Load(); n != burst {
			t.Fatalf("key %d allowed %d times, want exactly %d", i, n, burst)
		}
	}
	if n := l.Tracked(); n != nkeys {
		t.Errorf("tracked %d, want %d", n, nkeys)
	}
	if got, want := testutil.ToFloat64(l.m.rejectedIP), float64(nkeys*(workers*rounds-burst)); got != want {
		t.Errorf("rejections %v, want %v", got, want)
	}
}
