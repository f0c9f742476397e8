package session

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/sqlite"
)

// BenchmarkAuthenticate compares the cost of a protected request's token
// check: Verify alone (a cache hit), and Authenticate (the same plus one
// MGET of the revocation keys) on memstate and on Redis.
func BenchmarkAuthenticate(b *testing.B) {
	db, err := sqlite.Open(context.Background(), ":memory:", time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	clock := clocktest.New(time.Now())
	cases := []struct {
		name  string
		state func(b *testing.B) auth.StateStore
	}{
		{"memstate", func(b *testing.B) auth.StateStore { return statetest.Memory(b, clock.Now) }},
		{"redis", func(b *testing.B) auth.StateStore { return openRedis(b) }},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, db, bc.state(b), clock)
			p, err := e.m.Start(context.Background(), e.user(b), []string{"pwd"})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.Run("verify", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.ver.Verify(ctx, p.AccessToken); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("authenticate", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.m.Authenticate(ctx, p.AccessToken); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("authenticate/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(8) // 16 goroutines on 2 CPUs: Redis latency overlaps
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := e.m.Authenticate(ctx, p.AccessToken); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}
