package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// argon2Params are the Argon2id cost settings shared by the capacity probe
// and the naive server.
type argon2Params struct {
	memoryKiB   uint
	iterations  uint
	parallelism uint
}

func (p *argon2Params) bind(fs *flag.FlagSet) {
	fs.UintVar(&p.memoryKiB, "memory-kib", 19456, "Argon2id memory in KiB (authd's AUTHD_ARGON2_MEMORY_KIB)")
	fs.UintVar(&p.iterations, "iterations", 2, "Argon2id iterations (AUTHD_ARGON2_ITERATIONS)")
	fs.UintVar(&p.parallelism, "parallelism", 1, "Argon2id parallelism (AUTHD_ARGON2_PARALLELISM)")
}

func (p *argon2Params) check() error {
	switch {
	case p.memoryKiB < 8 || p.memoryKiB > 4<<20:
		return usagef("-memory-kib must be in [8, 4194304]")
	case p.iterations < 1 || p.iterations > 1000:
		return usagef("-iterations must be in [1, 1000]")
	case p.parallelism < 1 || p.parallelism > 255:
		return usagef("-parallelism must be in [1, 255]")
	}
	return nil
}

func (p *argon2Params) hash(password, salt []byte) []byte {
	return argon2.IDKey(password, salt, uint32(p.iterations), uint32(p.memoryKiB), uint8(p.parallelism), 32)
}

// capacityReport is the raw Argon2id capacity of this machine: the ceiling
// any login throughput is compared with.
type capacityReport struct {
	Goroutines  int     `json:"goroutines"`
	MemoryKiB   uint    `json:"memory_kib"`
	Iterations  uint    `json:"iterations"`
	Parallelism uint    `json:"parallelism"`
	Hashes      int64   `json:"hashes"`
	Elapsed     float64 `json:"elapsed_seconds"`
	PerSecond   float64 `json:"hashes_per_second"`
	MeanMS      float64 `json:"mean_hash_ms"`
}

// measureCapacity runs goroutines that call IDKey back to back until d has
// passed (or ctx is done), and blocks until the last hash started has
// finished; the rate is hashes over that whole time.
func measureCapacity(ctx context.Context, p argon2Params, goroutines int, d time.Duration) capacityReport {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	counts := make([]int64, goroutines)
	busy := make([]time.Duration, goroutines)
	start := time.Now()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			salt := []byte("authbench-salt-16")[:16]
			pw := []byte(defaultPassword)
			for ctx.Err() == nil {
				t0 := time.Now()
				p.hash(pw, salt)
				busy[g] += time.Since(t0)
				counts[g]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := capacityReport{Goroutines: goroutines, MemoryKiB: p.memoryKiB, Iterations: p.iterations, Parallelism: p.parallelism, Elapsed: elapsed.Seconds()}
	var total time.Duration
	for g := range goroutines {
		r.Hashes += counts[g]
		total += busy[g]
	}
	if r.Hashes > 0 {
		r.PerSecond = float64(r.Hashes) / elapsed.Seconds()
		r.MeanMS = ms(total / time.Duration(r.Hashes))
	}
	return r
}

func argon2Command(_ *environment) *command {
	fs := flag.NewFlagSet("argon2", flag.ContinueOnError)
	var p argon2Params
	p.bind(fs)
	goroutines := fs.Int("goroutines", runtime.NumCPU(), "goroutines calling argon2.IDKey in a loop")
	duration := fs.Duration("duration", 10*time.Second, "how long to hash")
	jsonOut := fs.Bool("json", false, "print JSON instead of text")
	c := &command{name: "argon2", flags: fs, summary: "measure the raw Argon2id capacity of this machine (NumCPU goroutines hashing in a loop), the ceiling for logins/s"}
	c.exec = func(ctx context.Context, stdout, stderr io.Writer) error {
		if err := p.check(); err != nil {
			return err
		}
		if *goroutines < 1 || *duration <= 0 {
			return usagef("-goroutines and -duration must be positive")
		}
		r := measureCapacity(ctx, p, *goroutines, *duration)
		if *jsonOut {
			return writeJSON(stdout, r)
		}
		_, err := fmt.Fprintf(stdout, "argon2id m=%d KiB t=%d p=%d, %d goroutines: %d hashes in %.2fs = %.1f hashes/s (mean %.1f ms per hash)\n",
			r.MemoryKiB, r.Iterations, r.Parallelism, r.Goroutines, r.Hashes, r.Elapsed, r.PerSecond, r.MeanMS)
		return err
	}
	return c
}
