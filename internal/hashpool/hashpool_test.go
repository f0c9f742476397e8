package hashpool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/clocktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newPool builds a pool on its own registry and closes it at cleanup.
func newPool(t *testing.T, cfg Params, now func() time.Time) (*Pool, *prometheus.Registry) {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	reg := prometheus.NewRegistry()
	p, err := New(cfg, now, reg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p, reg
}

// blocker occupies one worker until release is called.
type blocker struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blocker) job() error {
	close(b.started)
	<-b.release
	return nil
}

func (b *blocker) Release() { b.once.Do(func() { close(b.release) }) }

// occupy submits a blocking job for each worker, waits until all of them run,
// and returns a func that releases them and waits for their Do to return.
func occupy(t *testing.T, p *Pool) (release func()) {
	t.Helper()
	var wg sync.WaitGroup
	bs := make([]*blocker, p.workers)
	for i := range bs {
		bs[i] = newBlocker()
		wg.Go(func() {
			for {
				err := p.Do(context.Background(), bs[i].job)
				// With Queue 0 a job is only accepted by a worker idle in
				// receive; a worker just starting is not yet.
				if errors.Is(err, auth.ErrOverloaded) && cap(p.jobs) == 0 {
					runtime.Gosched()
					continue
				}
				if err != nil {
					t.Errorf("blocking job: %v", err)
				}
				return
			}
		})
		<-bs[i].started
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, b := range bs {
				b.Release()
			}
			wg.Wait()
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued yields until n jobs sit in the queue. It waits for goroutines
// to reach the channel, not for a clock.
func waitQueued(t *testing.T, p *Pool, n int) {
	t.Helper()
	for len(p.jobs) != n {
		runtime.Gosched()
	}
}

// submitN starts n Do calls with ctx in the background; their errors arrive
// on the returned channel.
func submitN(p *Pool, ctx context.Context, n int, job func() error) <-chan error {
	errs := make(chan error, n)
	for range n {
		go func() { errs <- p.Do(ctx, job) }()
	}
	return errs
}

// metric returns the value of the series name{labels} on reg.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func outcome(t *testing.T, reg *prometheus.Registry, o string) float64 {
	t.Helper()
	return metric(t, reg, "authd_hash_jobs_total", "outcome", o)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Params
		now  func() time.Time
		ok   bool
	}{
		{"minimal", Params{Workers: 1, Queue: 0}, time.Now, true},
		{"no workers", Params{Workers: 0, Queue: 1}, time.Now, false},
		{"negative queue", Params{Workers: 1, Queue: -1}, time.Now, false},
		{"nil clock", Params{Workers: 1, Queue: 1}, nil, false},
		{"nil registry", Params{Workers: 1, Queue: 1}, time.Now, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var reg prometheus.Registerer = prometheus.NewRegistry()
			if tc.name == "nil registry" {
				reg = nil
			}
			p, err := New(tc.cfg, tc.now, reg)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%+v) error = %v, want ok=%v", tc.cfg, err, tc.ok)
			}
			if p != nil {
				if err := p.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestNewDuplicateRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p, err := New(Params{Workers: 1}, time.Now, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if _, err := New(Params{Workers: 1}, time.Now, reg); err == nil {
		t.Fatal("second New on the same registry: want an error")
	}
}

func TestDoReturnsJobResult(t *testing.T) {
	t.Parallel()
	p, reg := newPool(t, Params{Workers: 2, Queue: 4}, nil)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
	}{{"nil", nil}, {"error", boom}} {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			err := p.Do(context.Background(), func() error { ran = true; return tc.err })
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("Do = %v, want %v", err, tc.err)
			}
			if !ran {
				t.Fatal("job did not run")
			}
		})
	}
	if got := outcome(t, reg, "done"); got != 1 {
		t.Errorf("done = %v, want 1", got)
	}
	if got := outcome(t, reg, "failed"); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
}

func TestFullQueueRejectsAtOnce(t *testing.T) {
	t.Parallel()
	p, reg := newPool(t, Params{Workers: 2, Queue: 3}, nil)
	release := occupy(t, p)
	if err := p.Admit(); err != nil {
		t.Fatalf("Admit with room in the queue = %v", err)
	}
	queued := submitN(p, context.Background(), 3, func() error { return nil })
	waitQueued(t, p, 3)

	if err := p.Admit(); !errors.Is(err, auth.ErrOverloaded) {
		t.Errorf("Admit on a full queue = %v, want overloaded", err)
	}
	err := p.Do(context.Background(), func() error {
		t.Error("rejected job ran")
		return nil
	})
	var oe *OverloadedError
	if !errors.As(err, &oe) {
		t.Fatalf("Do on a full queue = %v, want *OverloadedError", err)
	}
	if !errors.Is(err, auth.ErrOverloaded) {
		t.Errorf("%v does not match auth.ErrOverloaded", err)
	}
	if errors.Is(err, ErrClosed) {
		t.Errorf("%v matches ErrClosed on an open pool", err)
	}
	if ra := oe.RetryAfter(); ra < time.Second || ra%time.Second != 0 {
		t.Errorf("RetryAfter = %v, want whole seconds >= 1s", ra)
	}
	if got := outcome(t, reg, "rejected"); got != 2 {
		t.Errorf("rejected = %v, want 2 (Admit and Do)", got)
	}
	if got := metric(t, reg, "authd_hash_queue_depth"); got != 3 {
		t.Errorf("queue depth = %v, want 3", got)
	}
	if got := metric(t, reg, "authd_hash_workers_busy"); got != 2 {
		t.Errorf("busy = %v, want 2", got)
	}

	release()
	for range 3 {
		if err := <-queued; err != nil {
			t.Errorf("queued job: %v", err)
		}
	}
	if got := outcome(t, reg, "done"); got != 5 {
		t.Errorf("done = %v, want 5", got)
	}
}

func TestZeroQueue(t *testing.T) {
	t.Parallel()
	p, _ := newPool(t, Params{Workers: 1, Queue: 0}, nil)
	release := occupy(t, p)
	if err := p.Admit(); !errors.Is(err, auth.ErrOverloaded) {
		t.Errorf("Admit with the only worker busy and no queue = %v, want overloaded", err)
	}
	defer func() {
		release()
		if err := p.Admit(); err != nil {
			t.Errorf("Admit with the worker idle = %v", err)
		}
	}()
	if err := p.Do(context.Background(), func() error { return nil }); !errors.Is(err, auth.ErrOverloaded) {
		t.Fatalf("Do with the only worker busy and no queue = %v, want overloaded", err)
	}
}

func TestCancelledJobsAreSkipped(t *testing.T) {
	t.Parallel()
	p, reg := newPool(t, Params{Workers: 1, Queue: 4}, nil)

	t.Run("done before submit", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := p.Do(ctx, func() error { t.Error("job ran"); return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Do = %v, want context.Canceled", err)
		}
	})

	t.Run("done while queued", func(t *testing.T) {
		release := occupy(t, p)
		ctx, cancel := context.WithCancel(context.Background())
		var ran atomic.Int32
		errs := submitN(p, ctx, 3, func() error { ran.Add(1); return nil })
		waitQueued(t, p, 3)
		cancel()
		for range 3 {
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Errorf("Do = %v, want context.Canceled", err)
			}
		}
		release()
		// The worker drains the three abandoned tasks before taking this one.
		if err := p.Do(context.Background(), func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if n := ran.Load(); n != 0 {
			t.Errorf("%d cancelled jobs ran", n)
		}
	})

	if got := outcome(t, reg, "cancelled"); got != 4 {
		t.Errorf("cancelled = %v, want 4", got)
	}
}

// TestCancelWhileRunning covers the race the other way round: the worker
// took the job, then the caller left. Do returns at once; the job finishes
// on its own and its result goes to the abandoned buffered channel.
func TestCancelWhileRunning(t *testing.T) {
	t.Parallel()
	p, reg := newPool(t, Params{Workers: 1, Queue: 1}, nil)
	b := newBlocker()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Do(ctx, b.job) }()
	<-b.started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	b.Release()
	// The worker is not stuck on the abandoned result: it takes the next job.
	if err := p.Do(context.Background(), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := outcome(t, reg, "done"); got != 2 {
		t.Errorf("done = %v, want 2 (the abandoned job ran)", got)
	}
	if got := testutil.ToFloat64(p.m.orphaned); got != 1 {
		t.Errorf("orphaned = %v, want 1 (the job whose caller left while it ran)", got)
	}
}

func TestPanicIsContained(t *testing.T) {
	t.Parallel()
	p, reg := newPool(t, Params{Workers: 1, Queue: 1}, nil)
	for i := range 3 {
		err := p.Do(context.Background(), func() error { panic(fmt.Sprintf("kaboom %d", i)) })
		var pe *PanicError
		if !errors.As(err, &pe) {
			t.Fatalf("Do = %v, want *PanicError", err)
		}
		if want := fmt.Sprintf("kaboom %d", i); pe.Value != want || !strings.Contains(err.Error(), want) {
			t.Errorf("panic value %v, error %q; want %q", pe.Value, err, want)
		}
		if len(pe.Stack) == 0 {
			t.Error("no stack")
		}
	}
	if err := p.Do(context.Background(), func() error { return nil }); err != nil {
		t.Fatalf("worker did not survive the panics: %v", err)
	}
	if got := outcome(t, reg, "failed"); got != 3 {
		t.Errorf("failed = %v, want 3", got)
	}
	if got := metric(t, reg, "authd_hash_workers_busy"); got != 0 {
		t.Errorf("busy = %v after panics, want 0", got)
	}
}

func TestCloseDrainsQueue(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p, err := New(Params{Workers: 2, Queue: 8}, time.Now, reg)
	if err != nil {
		t.Fatal(err)
	}
	release := occupy(t, p)
	var ran atomic.Int32
	errs := submitN(p, context.Background(), 8, func() error { ran.Add(1); return nil })
	waitQueued(t, p, 8)

	closed := make(chan error, 1)
	go func() { closed <- p.Close(context.Background()) }()
	// Close must refuse new work even before it has drained.
	for !isClosed(p) {
		runtime.Gosched()
	}
	if err := p.Do(context.Background(), func() error { return nil }); !errors.Is(err, ErrClosed) || !errors.Is(err, auth.ErrOverloaded) {
		t.Errorf("Do after Close = %v, want ErrClosed matching auth.ErrOverloaded", err)
	}
	if err := p.Admit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Admit after Close = %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("queued job: %v", err)
		}
	}
	if n := ran.Load(); n != 8 {
		t.Errorf("%d of 8 queued jobs ran", n)
	}
	if got := outcome(t, reg, "done"); got != 10 {
		t.Errorf("done = %v, want 10", got)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func isClosed(p *Pool) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

func TestCloseDeadlineFailsQueued(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p, err := New(Params{Workers: 1, Queue: 5}, time.Now, reg)
	if err != nil {
		t.Fatal(err)
	}
	b := newBlocker()
	running := make(chan error, 1)
	go func() { running <- p.Do(context.Background(), b.job) }()
	<-b.started
	var ran atomic.Int32
	errs := submitN(p, context.Background(), 5, func() error { ran.Add(1); return nil })
	waitQueued(t, p, 5)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(ctx) }()
	// Queued callers are failed while the running job still holds its worker.
	for range 5 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("queued job = %v, want ErrClosed", err)
		}
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a job was running", err)
	default:
	}
	b.Release()
	if err := <-closed; !errors.Is(err, context.Canceled) {
		t.Errorf("Close = %v, want context.Canceled", err)
	}
	if err := <-running; err != nil {
		t.Errorf("running job = %v, want nil (it completes)", err)
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("%d dropped jobs ran", n)
	}
	if got := outcome(t, reg, "cancelled"); got != 5 {
		t.Errorf("cancelled = %v, want 5", got)
	}
	// goleak in TestMain proves the worker exited.
}

func TestMetricsPreCreated(t *testing.T) {
	t.Parallel()
	_, reg := newPool(t, Params{Workers: 3, Queue: 7}, nil)
	for _, o := range []string{"done", "rejected", "cancelled", "failed"} {
		if got := outcome(t, reg, o); got != 0 {
			t.Errorf("outcome %s = %v, want 0", o, got)
		}
	}
	for name, want := range map[string]float64{
		"authd_hash_queue_depth":        0,
		"authd_hash_queue_capacity":     7,
		"authd_hash_workers":            3,
		"authd_hash_workers_busy":       0,
		"authd_hash_queue_wait_seconds": 0,
		"authd_hash_duration_seconds":   0,
	} {
		if got := metric(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n := testutil.CollectAndCount(reg, "authd_hash_jobs_total"); n != 4 {
		t.Errorf("authd_hash_jobs_total has %d series, want 4", n)
	}
}

func TestRetryAfterAndTimings(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(time.Unix(1_700_000_000, 0))
	p, reg := newPool(t, Params{Workers: 2, Queue: 6}, clk.Now)
	if got := p.RetryAfter(); got != time.Second {
		t.Errorf("RetryAfter before any job = %v, want 1s", got)
	}
	// Every job takes 3s of fake time.
	slow := func() error { clk.Advance(3 * time.Second); return nil }
	for range 4 {
		if err := p.Do(context.Background(), slow); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.RetryAfter(); got != time.Second {
		t.Errorf("RetryAfter on an idle pool = %v, want 1s", got)
	}
	release := occupy(t, p)
	queued := submitN(p, context.Background(), 6, slow)
	waitQueued(t, p, 6)
	// (6 queued + 2 busy) jobs × 3s / 2 workers = 12s.
	if got := p.RetryAfter(); got != 12*time.Second {
		t.Errorf("RetryAfter = %v, want 12s", got)
	}
	err := p.Do(context.Background(), slow)
	var oe *OverloadedError
	if !errors.As(err, &oe) {
		t.Errorf("Do = %v, want *OverloadedError", err)
	} else if got := oe.RetryAfter(); got != 12*time.Second {
		t.Errorf("OverloadedError.RetryAfter = %v, want 12s", got)
	}
	release()
	for range 6 {
		if err := <-queued; err != nil {
			t.Fatal(err)
		}
	}
	if got := metric(t, reg, "authd_hash_duration_seconds"); got != 12 {
		t.Errorf("duration samples = %v, want 12", got)
	}
	if got := metric(t, reg, "authd_hash_queue_wait_seconds"); got != 12 {
		t.Errorf("wait samples = %v, want 12", got)
	}
}

func TestConcurrentDo(t *testing.T) {
	t.Parallel()
	p, reg := newPool(t, Params{Workers: 4, Queue: 16}, nil)
	const n = 2000
	var ran atomic.Int64
	var done, rejected, cancelled atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx := context.Background()
			if i%10 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				if i%20 == 0 {
					cancel()
				}
			}
			err := p.Do(ctx, func() error { ran.Add(1); runtime.Gosched(); return nil })
			switch {
			case err == nil:
				done.Add(1)
			case errors.Is(err, auth.ErrOverloaded):
				rejected.Add(1)
			case errors.Is(err, context.Canceled):
				cancelled.Add(1)
			default:
				t.Errorf("Do = %v", err)
			}
		})
	}
	wg.Wait()
	if done.Load()+rejected.Load()+cancelled.Load() != n {
		t.Fatalf("done %d + rejected %d + cancelled %d != %d", done.Load(), rejected.Load(), cancelled.Load(), n)
	}
	if got := outcome(t, reg, "done"); int64(got) != ran.Load() {
		t.Errorf("done metric %v, jobs run %d", got, ran.Load())
	}
	if got := outcome(t, reg, "rejected"); int64(got) != rejected.Load() {
		t.Errorf("rejected metric %v, Do returned overload %d times", got, rejected.Load())
	}
	if got := outcome(t, reg, "cancelled"); int64(got) != cancelled.Load() {
		t.Errorf("cancelled metric %v, Do returned Canceled %d times", got, cancelled.Load())
	}
}

func TestCloseRacesDo(t *testing.T) {
	t.Parallel()
	p, err := New(Params{Workers: 2, Queue: 4}, time.Now, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			err := p.Do(context.Background(), func() error { return nil })
			if err != nil && !errors.Is(err, auth.ErrOverloaded) {
				t.Errorf("Do = %v", err)
			}
		})
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func BenchmarkDo(b *testing.B) {
	p, err := New(Params{Workers: runtime.GOMAXPROCS(0), Queue: 1024}, time.Now, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	job := func() error { return nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.Do(ctx, job); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestMaxWaitBoundsTheQueueByTime(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(time.Unix(1_700_000_000, 0))
	// The queue could hold 100 jobs, but each takes 3s of fake time on two
	// workers: with MaxWait 7s a job may only join while fewer than
	// 7s × 2 / 3s ≈ 4.7 jobs are ahead of it.
	p, _ := newPool(t, Params{Workers: 2, Queue: 100, MaxWait: 7 * time.Second}, clk.Now)
	slow := func() error { clk.Advance(3 * time.Second); return nil }
	if err := p.Do(context.Background(), slow); err != nil {
		t.Fatal(err)
	}
	release := occupy(t, p)
	queued := submitN(p, context.Background(), 5, slow)
	waitQueued(t, p, 5)
	if err := p.Admit(); !errors.Is(err, auth.ErrOverloaded) {
		t.Errorf("Admit with 5 queued (7.5s ahead) = %v, want overloaded", err)
	}
	err := p.Do(context.Background(), slow)
	var oe *OverloadedError
	if !errors.As(err, &oe) {
		t.Fatalf("Do with 7.5s of work queued = %v, want *OverloadedError", err)
	}
	release()
	for range 5 {
		if err := <-queued; err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Admit(); err != nil {
		t.Errorf("Admit on an idle pool = %v", err)
	}
}
