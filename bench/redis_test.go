package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd/authd/internal/clientip"
	"github.com/authd/authd/internal/limiter"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
)

// BenchmarkRedisMiddleware sends requests from 10 k clients through
// limiter.Middleware backed by the Redis limiter, from BENCH_CONCURRENCY
// goroutines (default 50), and reports requests per second. redis-ratio.sh
// compares it with redis-benchmark's EVALSHA rate for the same script at the
// same concurrency. Each bucket is set to refill in 1 µs, as the
// redis-benchmark run's arguments do, so both do the same work per call (a
// GET of an expired key and a SET).
func BenchmarkRedisMiddleware(b *testing.B) {
	url := os.Getenv("AUTHD_TEST_REDIS_URL")
	if url == "" {
		b.Skip("AUTHD_TEST_REDIS_URL not set; skipping the Redis limiter benchmark")
	}
	conc := 50
	if s := os.Getenv("BENCH_CONCURRENCY"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_CONCURRENCY=%q: want a positive integer", s)
		}
		conc = n
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		b.Fatalf("parse AUTHD_TEST_REDIS_URL: %v", err)
	}
	opt.ContextTimeoutEnabled = true
	opt.PoolSize = conc
	c := goredis.NewClient(opt)
	defer c.Close()

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	prefix := "authd-bench:" + hex.EncodeToString(rnd[:]) + ":"
	p := limiter.Params{RPS: 1e6, Burst: 1e9}
	local, err := limiter.NewLocal(p, time.Now, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	rl, err := limiter.NewRedis(c, local, prefix, p, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	h := limiter.Middleware(rl, clientip.NewResolver(nil).Key, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))

	reqs := make([]*http.Request, 10_000)
	for i := range reqs {
		r, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "/v1/login", nil)
		r.RemoteAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), 40000).String()
		reqs[i] = r
	}
	h.ServeHTTP(&headerWriter{h: http.Header{}}, reqs[0]) // load the script

	b.SetParallelism((conc + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var seq atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &headerWriter{h: make(http.Header, 4)}
		i := int(seq.Add(1) * 7919)
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, reqs[i%len(reqs)])
			i++
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	if n := local.Tracked(); n > 0 {
		b.Fatalf("%d clients were limited in process: Redis calls failed during the run", n)
	}
}
