package limiter

import (
	"context"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// benchKeys returns n distinct client keys, half IPv4 /32s, half IPv6 /64s.
func benchKeys(n int) []netip.Prefix {
	keys := make([]netip.Prefix, n)
	for i := range keys {
		if i%2 == 0 {
			keys[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		} else {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
			keys[i] = netip.PrefixFrom(a, 64)
		}
	}
	return keys
}

var benchSizes = []struct {
	name string
	n    int
}{{"keys=1e4", 10_000}, {"keys=1e6", 1_000_000}}

// BenchmarkLocalAllow measures the hit path (every key already tracked,
// every request allowed) from parallel goroutines, each walking the key set
// from its own offset.
func BenchmarkLocalAllow(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			keys := benchKeys(size.n)
			l := mustLocal(b, Params{RPS: 1e9, Burst: 1 << 30, MaxKeys: 2 * size.n}, time.Now, prometheus.NewRegistry())
			for _, k := range keys {
				l.Allow(context.Background(), k)
			}
			var worker atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(worker.Add(1) * 7919)
				for pb.Next() {
					if !l.Allow(context.Background(), keys[i%len(keys)]).Allowed {
						b.Fatal("rejected")
					}
					i++
				}
			})
		})
	}
}

// BenchmarkLocalBytesPerKey reports the heap held per tracked key after GC.
func BenchmarkLocalBytesPerKey(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			keys := benchKeys(size.n)
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				l := mustLocal(b, Params{RPS: 1, Burst: 10, MaxKeys: 2 * size.n}, time.Now, prometheus.NewRegistry())
				for _, k := range keys {
					l.Allow(context.Background(), k)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(size.n), "B/key")
				runtime.KeepAlive(l)
			}
		})
	}
}
