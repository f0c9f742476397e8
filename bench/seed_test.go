package bench

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd/authd/internal/limiter"
	"github.com/prometheus/client_golang/prometheus"
)

// TestSeedMatchesLocal checks that the seed design measured here makes the
// same decisions as the shipped limiter, so the comparison is like for like.
func TestSeedMatchesLocal(t *testing.T) {
	var ns atomic.Int64
	ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, ns.Load()) }
	local, err := limiter.NewLocal(limiter.Params{RPS: 3, Burst: 4}, now, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	seed := NewSeedLocal(3, 4, now)
	_ = NewShardedMapLocal(3, 4) // real clock only; checked by TestContendersAllow
	keys := []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::/64")}
	steps := []time.Duration{0, 0, 0, 0, 0, 100 * time.Millisecond, 250 * time.Millisecond, 0, time.Second, 0, 0, 0, 0, 0}
	for i, d := range steps {
		ns.Add(int64(d))
		for _, k := range keys {
			if a, b := local.Allow(context.Background(), k).Allowed, seed.Allow(k); a != b {
				t.Fatalf("step %d key %v: Local %v, seed %v", i, k, a, b)
			}
		}
	}
}

// TestContendersAllow checks every contender is set up so that the
// benchmark's allow path never refuses.
func TestContendersAllow(t *testing.T) {
	ks := makeKeys(1000)
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			allow, closeFn := im.build(ks)
			defer closeFn()
			for round := range 3 {
				for i := range ks.prefixes {
					if !allow(i) {
						t.Fatalf("round %d key %d refused", round, i)
					}
				}
			}
		})
	}
}
