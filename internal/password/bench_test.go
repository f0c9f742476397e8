package password

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/authd/authd/internal/hashpool"
)

// The Forge benchmarks, at DefaultParams. Run them side by side:
//
//	go test -run '^$' -bench 'Argon2Single|RawArgon2|PoolHash' -benchtime 5s -count 3 ./internal/password/
//
// BenchmarkRawArgon2 is the machine's raw capacity (GOMAXPROCS goroutines
// calling IDKey in a loop); BenchmarkPoolHash is the same work submitted by
// 16×GOMAXPROCS goroutines through Hasher.Hash on a pool of GOMAXPROCS
// workers. Their hashes/s ratio is the pool's efficiency.
//
// On a shared machine the load of other processes changes between those two
// benchmarks; BenchmarkPoolVsRaw alternates the two within each iteration so
// both see the same conditions, and reports the ratio itself:
//
//	go test -run '^$' -bench PoolVsRaw -benchtime 20x -count 3 ./internal/password/

func BenchmarkArgon2Single(b *testing.B) {
	p := DefaultParams()
	salt, pw := randomBytes(p.SaltLen), []byte("correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		argon2.IDKey(pw, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/hash")
}

func BenchmarkRawArgon2(b *testing.B) {
	p := DefaultParams()
	salt, pw := randomBytes(p.SaltLen), []byte("correct horse battery staple")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			argon2.IDKey(pw, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

func BenchmarkPoolHash(b *testing.B) {
	workers := runtime.GOMAXPROCS(0)
	pool := newTestPool(b, hashpool.Params{Workers: workers, Queue: 16 * workers})
	h := newHasherOn(b, pool, DefaultParams())
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16) // 16×GOMAXPROCS submitters: the queue holds them all
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

func BenchmarkPoolVsRaw(b *testing.B) {
	const perWorker = 16 // hashes per worker per phase
	p := DefaultParams()
	workers := runtime.GOMAXPROCS(0)
	n := workers * perWorker
	pool := newTestPool(b, hashpool.Params{Workers: workers, Queue: 16 * workers})
	h := newHasherOn(b, pool, p)
	ctx := context.Background()
	salt, pw := randomBytes(p.SaltLen), []byte("correct horse battery staple")

	// Both phases share out their n hashes dynamically, so a goroutine
	// slowed by another process is made up for in both alike.
	raw := func() (wall, cpu time.Duration) {
		start, cpu0 := time.Now(), cpuTime()
		var wg sync.WaitGroup
		var next atomic.Int64
		for range workers {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					argon2.IDKey(pw, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
				}
			})
		}
		wg.Wait()
		return time.Since(start), cpuTime() - cpu0
	}
	pooled := func() (wall, cpu time.Duration) {
		start, cpu0 := time.Now(), cpuTime()
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 16 * workers {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start), cpuTime() - cpu0
	}

	// Wall time gives the throughput; CPU time per hash shows the pool's
	// own cost even when other processes take the cores away now and then.
	var rawT, poolT, rawCPU, poolCPU time.Duration
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		for k := range 2 {
			if (i+k)%2 == 0 {
				w, c := raw()
				rawT, rawCPU = rawT+w, rawCPU+c
			} else {
				w, c := pooled()
				poolT, poolCPU = poolT+w, poolCPU+c
			}
		}
		i++
	}
	hashes := float64(i * n)
	rawRate, poolRate := hashes/rawT.Seconds(), hashes/poolT.Seconds()
	b.ReportMetric(rawRate, "raw-hashes/s")
	b.ReportMetric(poolRate, "pool-hashes/s")
	b.ReportMetric(poolRate/rawRate, "pool/raw")
	if rawCPU > 0 && poolCPU > 0 {
		b.ReportMetric(float64(rawCPU.Milliseconds())/hashes, "raw-cpu-ms/hash")
		b.ReportMetric(float64(poolCPU.Milliseconds())/hashes, "pool-cpu-ms/hash")
		// Cores kept busy: near GOMAXPROCS when the phase had the machine
		// to itself; lower when other processes took CPU from it.
		b.ReportMetric(rawCPU.Seconds()/rawT.Seconds(), "raw-cores")
		b.ReportMetric(poolCPU.Seconds()/poolT.Seconds(), "pool-cores")
	}
}
