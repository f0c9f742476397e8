package throttle_test

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/memstate"
	"github.com/authd/authd/internal/redis"
	"github.com/authd/authd/internal/redis/redistest"
	"github.com/authd/authd/internal/throttle"
)

var sprayN = flag.Int("spray", 0, "TestSprayMemory: failed logins with random emails to play (0: skip)")

// TestSprayMemory measures what a spray of failed logins on random emails
// leaves in the state store: the figure in docs/benchmarks.md. It drives
// the throttle directly (Check, then Failure), as many logins at once as
// -spray-workers, and reports the entries held and the memory they take:
// the Go heap for memstate, Redis's used_memory for Redis. Run it with
//
//	go test -run TestSprayMemory -spray 1000000 ./internal/throttle/
func TestSprayMemory(t *testing.T) {
	if *sprayN == 0 {
		t.Skip("set -spray N to measure")
	}
	n := *sprayN
	t.Run("memstate", func(t *testing.T) {
		clock := clocktest.New(epoch)
		st := newMemstate(t, memstate.Params{}, clock.Now)
		before := heap()
		elapsed := spray(t, st, clock.Now, n)
		after := heap()
		t.Logf("memstate: %d failed logins in %v: %d entries, heap +%.1f MiB (%.0f B per login)",
			n, elapsed.Round(time.Millisecond), st.Len(), mib(after-before), float64(after-before)/float64(n))
		clock.Advance(throttle.DefaultFirstWindow)
		st.Sweep()
		t.Logf("memstate: %v later: %d entries, heap +%.1f MiB", throttle.DefaultFirstWindow, st.Len(), mib(heap()-before))
		runtime.KeepAlive(st)
	})
	t.Run("redis", func(t *testing.T) {
		c, err := redis.NewClient(redistest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		prefix := redistest.Prefix(t, c)
		t.Cleanup(func() { unlinkAll(t, c, prefix) }) // before Prefix's own, with room for millions
		st := redis.NewStore(c, prefix)
		before := usedMemory(t, c)
		elapsed := spray(t, st, time.Now, n)
		after := usedMemory(t, c)
		keys := countKeys(t, c, prefix)
		t.Logf("redis: %d failed logins in %v: %d keys, used_memory +%.1f MiB (%.0f B per login); key ttl %v",
			n, elapsed.Round(time.Millisecond), keys, mib(after-before), float64(after-before)/float64(n), throttle.DefaultFirstWindow)
	})
}

// spray plays n failed logins, each on its own random email, from 32
// goroutines, and returns how long they took.
func spray(t *testing.T, st auth.StateStore, now func() time.Time, n int) time.Duration {
	t.Helper()
	th := newThrottle(t, st, throttle.Params{HashKey: []byte("spray")}, now)
	const workers = 32
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			client := "198.51.100." + strconv.Itoa(w)
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				a, _, err := th.Check(ctx, fmt.Sprintf("spray-%d-%x@example.com", i, i*2654435761), client, "")
				if err == nil && a == nil {
					err = fmt.Errorf("a fresh email was not admitted")
				}
				if err == nil {
					err = a.Failure(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return time.Since(start)
}

func heap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func usedMemory(t *testing.T, c *goredis.Client) int64 {
	t.Helper()
	info, err := c.Info(t.Context(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("INFO memory has no used_memory")
	return 0
}

func countKeys(t *testing.T, c *goredis.Client, prefix string) int {
	t.Helper()
	n := 0
	it := c.Scan(t.Context(), 0, prefix+"*", 10000).Iterator()
	for it.Next(t.Context()) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func unlinkAll(t *testing.T, c *goredis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	it := c.Scan(ctx, 0, prefix+"*", 10000).Iterator()
	var batch []string
	for it.Next(ctx) {
		if batch = append(batch, it.Val()); len(batch) == 10000 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				t.Error(err)
				return
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if err := c.Unlink(ctx, batch...).Err(); err != nil {
			t.Error(err)
		}
	}
	if err := it.Err(); err != nil {
		t.Error(err)
	}
}
