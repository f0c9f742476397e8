package password

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/hashpool"
)

// Peak memory of 64 concurrent hashes at DefaultParams, each mode in a fresh
// process (VmHWM is a per-process high-water mark):
//
//	AUTHD_FORGE_MEMORY=1 go test -run '^TestPeakMemory$' -v ./internal/password/
//
// raw:         64 goroutines calling IDKey at once (the naive handler)
// raw-limit:   the same with debug.SetMemoryLimit(2 × m + 64 MiB)
// pool2:       64 submitters through Hasher.Hash on a 2-worker pool
// pool2-limit: the same with debug.SetMemoryLimit(2 × m + 64 MiB)
// pool8, pool8-limit: an 8-worker pool (limit 8 × m + 64 MiB), to show
// how the heap grows with workers when nothing holds it.
//
// Each of the 64 goroutines hashes memRounds times.
const (
	memEnv      = "AUTHD_FORGE_MEMORY"
	memModeEnv  = "AUTHD_FORGE_MEMORY_MODE"
	memClients  = 64
	memRounds   = 4
	memOverhead = 64 << 20
)

func TestPeakMemory(t *testing.T) {
	if os.Getenv(memEnv) == "" {
		t.Skipf("set %s=1 to measure peak memory (spawns processes that use up to ~2.5 GiB)", memEnv)
	}
	for _, mode := range []string{"raw", "raw-limit", "pool2", "pool2-limit", "pool8", "pool8-limit"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPeakMemoryChild$", "-test.v")
		cmd.Env = append(os.Environ(), memModeEnv+"="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, out)
		}
		found := false
		for line := range strings.Lines(string(out)) {
			if _, res, ok := strings.Cut(line, "RESULT "); ok {
				t.Logf("%-11s %s", mode, strings.TrimSpace(res))
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: no RESULT line in\n%s", mode, out)
		}
	}
}

// TestPeakMemoryChild is one measurement of TestPeakMemory; it runs only in
// the child process.
func TestPeakMemoryChild(t *testing.T) {
	mode := os.Getenv(memModeEnv)
	if mode == "" {
		t.Skip("runs only as a child of TestPeakMemory")
	}
	p := DefaultParams()
	kind, limit := strings.CutSuffix(mode, "-limit")
	workers := 2 // the limit for raw is the one a 2-worker pool gets
	if n, ok := strings.CutPrefix(kind, "pool"); ok {
		var err error
		if workers, err = strconv.Atoi(n); err != nil {
			t.Fatalf("mode %q: %v", mode, err)
		}
		kind = "pool"
	}
	if limit {
		debug.SetMemoryLimit(int64(workers)*int64(p.Memory)*1024 + memOverhead)
	}
	base := procStatusKiB(t, "VmRSS")

	var hash func() error
	switch kind {
	case "raw":
		salt, pw := randomBytes(p.SaltLen), []byte("correct horse battery staple")
		hash = func() error {
			argon2.IDKey(pw, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
			return nil
		}
	case "pool":
		pool, err := hashpool.New(hashpool.Params{Workers: workers, Queue: memClients}, time.Now, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close(context.Background())
		h, err := NewHasher(pool, p)
		if err != nil {
			t.Fatal(err)
		}
		hash = func() error {
			_, err := h.Hash(context.Background(), "correct horse battery staple")
			return err
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}

	start := time.Now()
	var wg sync.WaitGroup
	for range memClients {
		wg.Go(func() {
			for range memRounds {
				if err := hash(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := memClients * memRounds
	fmt.Printf("RESULT peak_rss_mib=%d base_rss_mib=%d heap_sys_mib=%d num_gc=%d hashes=%d secs=%.2f hashes_per_s=%.1f\n",
		procStatusKiB(t, "VmHWM")/1024, base/1024, ms.HeapSys>>20, ms.NumGC, n, elapsed.Seconds(), float64(n)/elapsed.Seconds())
}

// procStatusKiB reads a "Name:  N kB" line of /proc/self/status.
func procStatusKiB(t *testing.T, name string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return kb
		}
	}
	t.Fatalf("%s not in /proc/self/status", name)
	return 0
}
