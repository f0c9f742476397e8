package password

import (
	"context"
	"runtime"
	"testing"

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
	pool := newTestPool(b, hashpool.Config{Workers: workers, Queue: 16 * workers})
	h := NewHasher(pool, DefaultParams())
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
