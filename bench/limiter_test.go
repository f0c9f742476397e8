package bench

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd/authd/internal/limiter"
	"github.com/go-chi/httprate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sethvargo/go-limiter/memorystore"
	"github.com/throttled/throttled/v2"
	"github.com/throttled/throttled/v2/store/memstore"
	ulule "github.com/ulule/limiter/v3"
	ululemem "github.com/ulule/limiter/v3/drivers/store/memory"
	"golang.org/x/time/rate"
)

// Every limiter is configured so that nothing is ever refused: these
// benchmarks measure the allow path, where a limiter spends its life.
const (
	hugeRPS   = 1e9
	hugeBurst = 1 << 30
)

type keySet struct {
	prefixes []netip.Prefix // what authd's limiter takes (clientip.Key)
	strs     []string       // what the string-keyed libraries take
	// order is a fixed random permutation of the key indexes: requests
	// from real clients arrive in no particular order, and walking keys in
	// insertion order would flatter every design that allocates a bucket
	// per key (neighbouring keys' buckets share cache lines).
	order []int32
}

// makeKeys returns n distinct clients, half IPv4 /32s and half IPv6 /64s.
func makeKeys(n int) keySet {
	ks := keySet{prefixes: make([]netip.Prefix, n), strs: make([]string, n), order: make([]int32, n)}
	for i, j := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		ks.order[i] = int32(j)
	}
	for i := range n {
		var p netip.Prefix
		if i%2 == 0 {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		} else {
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), 64)
		}
		ks.prefixes[i] = p
		ks.strs[i] = p.String()
	}
	return ks
}

// impl is one contender: build makes a limiter over the keys' universe and
// returns its allow function (called with a key index) and a closer.
type impl struct {
	name  string
	build func(ks keySet) (allow func(i int) bool, close func())
}

// strKey clones a key string as a request-derived key would be a fresh
// allocation that the library then retains; it makes the B/key figures of
// the string-keyed libraries include their keys, as authd's include its own.
func strKey(s string) string { return strings.Clone(s) }

var impls = []impl{
	{"authd-sharded", func(ks keySet) (func(int) bool, func()) {
		l, err := limiter.NewLocal(limiter.Params{RPS: hugeRPS, Burst: hugeBurst, MaxKeys: 2 * len(ks.prefixes)}, time.Now, prometheus.NewRegistry())
		if err != nil {
			panic(err)
		}
		return func(i int) bool { return l.Allow(context.Background(), ks.prefixes[i]).Allowed }, func() {}
	}},
	{"authd-sharded-gomap", func(ks keySet) (func(int) bool, func()) {
		l := NewShardedMapLocal(hugeRPS, hugeBurst)
		return func(i int) bool { return l.Allow(ks.prefixes[i]) }, func() {}
	}},
	{"authd-seed-syncmap", func(ks keySet) (func(int) bool, func()) {
		l := NewSeedLocal(hugeRPS, hugeBurst, time.Now)
		return func(i int) bool { return l.Allow(ks.prefixes[i]) }, func() {}
	}},
	{"syncmap-xtime-rate", func(ks keySet) (func(int) bool, func()) {
		var m sync.Map
		return func(i int) bool {
			v, ok := m.Load(ks.strs[i])
			if !ok {
				v, _ = m.LoadOrStore(strKey(ks.strs[i]), rate.NewLimiter(hugeRPS, hugeBurst))
			}
			return v.(*rate.Limiter).Allow()
		}, func() {}
	}},
	{"httprate", func(ks keySet) (func(int) bool, func()) {
		// httprate decides only through OnLimit, which also writes its
		// headers: give it a ResponseWriter whose header map is reused.
		rl := httprate.NewRateLimiter(hugeBurst, time.Hour)
		r, _ := http.NewRequest(http.MethodPost, "/v1/login", nil)
		var pool sync.Pool
		pool.New = func() any { return &headerWriter{h: make(http.Header, 4)} }
		return func(i int) bool {
			w := pool.Get().(*headerWriter)
			limited := rl.OnLimit(w, r, ks.strs[i])
			pool.Put(w)
			return !limited
		}, func() {}
	}},
	{"ulule-memory", func(ks keySet) (func(int) bool, func()) {
		store := ululemem.NewStoreWithOptions(ulule.StoreOptions{Prefix: "rl", CleanUpInterval: time.Hour})
		l := ulule.New(store, ulule.Rate{Period: time.Hour, Limit: hugeBurst})
		ctx := context.Background()
		return func(i int) bool {
			c, err := l.Get(ctx, ks.strs[i])
			return err == nil && !c.Reached
		}, func() {}
	}},
	{"sethvargo-memory", func(ks keySet) (func(int) bool, func()) {
		store, err := memorystore.New(&memorystore.Config{Tokens: hugeBurst, Interval: time.Hour, SweepInterval: time.Hour, SweepMinTTL: time.Hour})
		if err != nil {
			panic(err)
		}
		ctx := context.Background()
		return func(i int) bool {
				_, _, _, ok, err := store.Take(ctx, ks.strs[i])
				return err == nil && ok
			}, func() {
				_ = store.Close(ctx)
			}
	}},
	{"throttled-gcra", func(ks keySet) (func(int) bool, func()) {
		store, err := memstore.NewCtx(0) // unbounded map: its fastest, smallest store
		if err != nil {
			panic(err)
		}
		rl, err := throttled.NewGCRARateLimiterCtx(store, throttled.RateQuota{MaxRate: throttled.PerSec(hugeRPS), MaxBurst: hugeBurst})
		if err != nil {
			panic(err)
		}
		ctx := context.Background()
		return func(i int) bool {
			limited, _, err := rl.RateLimitCtx(ctx, ks.strs[i], 1)
			return err == nil && !limited
		}, func() {}
	}},
}

// headerWriter is the least a ResponseWriter can be.
type headerWriter struct{ h http.Header }

func (w *headerWriter) Header() http.Header         { return w.h }
func (w *headerWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *headerWriter) WriteHeader(int)             {}

var sizes = []struct {
	name string
	n    int
}{{"keys=1e4", 10_000}, {"keys=1e6", 1_000_000}}

// BenchmarkAllow runs every contender's allow path from parallel goroutines
// over 10 k and 1 M tracked keys (all inserted before timing), each goroutine
// walking one random order of the keys from its own starting point, and
// reports the heap each holds per tracked key after a GC ("B/key").
func BenchmarkAllow(b *testing.B) {
	for _, size := range sizes {
		b.Run(size.name, func(b *testing.B) {
			ks := makeKeys(size.n)
			for _, im := range impls {
				var (
					allow    func(int) bool
					closeFn  func()
					bytesKey float64
				)
				b.Run(im.name, func(b *testing.B) {
					if allow == nil { // built once, reused as the framework grows b.N
						allow, closeFn, bytesKey = buildAndMeasure(im, ks)
					}
					var seq atomic.Uint64
					b.ReportAllocs()
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						i := int(seq.Add(1)*7919+uint64(rand.IntN(size.n))) % size.n
						for pb.Next() {
							if !allow(int(ks.order[i])) {
								b.Error("refused on the allow path")
								return
							}
							if i++; i == size.n {
								i = 0
							}
						}
					})
					b.StopTimer()
					b.ReportMetric(bytesKey, "B/key")
				})
				if closeFn != nil {
					closeFn()
				}
				allow = nil
				runtime.GC()
			}
		})
	}
}

// buildAndMeasure builds im over ks, inserts every key once, and returns the
// heap growth per key after GC.
func buildAndMeasure(im impl, ks keySet) (func(int) bool, func(), float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	allow, closeFn := im.build(ks)
	for i := range ks.prefixes {
		if !allow(i) {
			panic(im.name + ": refused while filling")
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return allow, closeFn, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(ks.prefixes))
}
