// Package hashpool runs CPU- and memory-heavy jobs (password hashes) on a
// fixed number of workers fed by one bounded queue, so that no load can make
// the process run more of them at once than it was sized for.
//
// Submission never blocks: when the queue is full the caller is refused at
// once with an *OverloadedError carrying a Retry-After estimate, which the
// HTTP layer answers with 503. A job whose caller has gone (its context is
// done) before a worker takes it is dropped unrun. The pool knows nothing
// about passwords; internal/password builds on it.
package hashpool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
)

// Params sizes a Pool.
type Params struct {
	// Workers is the number of jobs that run at once (>= 1). Each is one
	// goroutine for the life of the pool.
	Workers int
	// Queue is the number of submitted jobs that may wait for a worker
	// (>= 0). Beyond it Do refuses at once. With 0 a job is accepted only
	// when a worker is idle and already waiting for one.
	Queue int
	// MaxWait, when positive, also refuses a job whose expected wait (the
	// jobs ahead of it at the measured job duration, shared by the
	// workers) exceeds it. Queue is sized for the usual hash time; when the
	// machine is contended every hash takes longer, and MaxWait keeps the
	// wait of an accepted job near its target instead of letting it grow
	// with the contention. 0 bounds the queue by length only.
	MaxWait time.Duration
}

// Validate reports whether c can build a Pool, with an error naming the bad field.
func (c Params) Validate() error {
	if c.Workers < 1 {
		return fmt.Errorf("hashpool: workers must be at least 1, got %d", c.Workers)
	}
	if c.Queue < 0 {
		return fmt.Errorf("hashpool: queue must be at least 0, got %d", c.Queue)
	}
	if c.MaxWait < 0 {
		return fmt.Errorf("hashpool: max wait must not be negative, got %v", c.MaxWait)
	}
	return nil
}

// ErrClosed is returned by Do once Close has begun, and to the callers of
// queued jobs that Close had to drop because its context ended first.
//
// It is an *OverloadedError (Retry-After 1s) and so matches auth.ErrOverloaded
// with errors.Is: while an instance shuts down its callers get the same
// retryable 503 "overloaded" as when it is full, and a load balancer sends the
// retry to another instance. Tell the two apart with errors.Is(err, ErrClosed).
var ErrClosed = &OverloadedError{retryAfter: time.Second, closed: true}

// OverloadedError is the refusal Do returns when the queue is full (or, as
// ErrClosed, when the pool is closing). It matches auth.ErrOverloaded.
type OverloadedError struct {
	retryAfter time.Duration
	closed     bool
}

// Error implements error.
func (e *OverloadedError) Error() string {
	if e.closed {
		return "hashpool: closed"
	}
	return "hashpool: queue full"
}

// RetryAfter is how long the caller should wait before trying again: whole
// seconds, at least one.
func (e *OverloadedError) RetryAfter() time.Duration { return e.retryAfter }

// Is makes errors.Is(err, auth.ErrOverloaded) true.
func (e *OverloadedError) Is(target error) bool { return target == auth.ErrOverloaded }

// PanicError is the error Do returns when the job panicked. The worker that
// ran it recovered and lives on.
type PanicError struct {
	Value any    // what the job panicked with
	Stack []byte // the job's goroutine stack at the panic, for the log
}

// Error implements error. It does not include the stack.
func (e *PanicError) Error() string { return fmt.Sprintf("hashpool: job panicked: %v", e.Value) }

// errSkipped tells Do that the worker dropped its job because the job's
// context was done; Do then returns ctx.Err().
var errSkipped = errors.New("hashpool: job skipped")

// task is one submitted job. Do owns it until the send on Pool.jobs, the
// worker from the receive until its send on done, and Do again after it
// received from done (it then recycles the task). A task whose Do returned
// early on ctx.Done is never recycled: the worker's late send lands in the
// one-slot buffer and the task becomes garbage.
type task struct {
	fn      func() error
	ctxDone <-chan struct{} // the submitter's ctx.Done(); nil if it can't be cancelled
	enq     time.Time
	done    chan error // buffer 1: a worker never blocks on an abandoned task
}

// Pool is a fixed set of worker goroutines reading one bounded job queue.
// All methods are safe for concurrent use. The owner must call Close to stop
// the workers.
type Pool struct {
	workers int
	maxWait time.Duration // 0: no bound on the expected wait
	now     func() time.Time
	jobs    chan *task
	tasks   sync.Pool // of *task

	mu     sync.RWMutex // guards closed against the close(jobs) in Close
	closed bool

	closeOnce sync.Once
	aborted   atomic.Bool   // Close's ctx ended: queued jobs are failed, not run
	live      atomic.Int32  // workers still running
	stopped   chan struct{} // closed when the last worker exits

	busy atomic.Int64  // workers running a job
	ewma atomic.Uint64 // float64 bits: smoothed job duration in nanoseconds

	m metrics
}

type metrics struct {
	done, rejected, cancelled, failed prometheus.Counter
	// orphaned counts jobs that ran to the end for a caller who had gone
	// meanwhile: the work the pool could not avoid wasting.
	orphaned       prometheus.Counter
	wait, duration prometheus.Histogram
}

// ewmaAlpha weights the newest job duration in the Retry-After estimate: the
// last ten or so jobs dominate, so a change of hash cost shows within a second.
const ewmaAlpha = 0.2

// maxRetryAfter caps the estimate; a client told to wait longer will not.
const maxRetryAfter = time.Hour

// New validates params, registers the Forge metrics on reg and starts
// params.Workers goroutines, which run until Close. now is the clock used to
// measure queue wait and job duration.
func New(params Params, now func() time.Time, reg prometheus.Registerer) (*Pool, error) {
	if err := params.Validate(); err != nil {
		return nil, err
	}
	if now == nil || reg == nil {
		return nil, errors.New("hashpool: a clock and a registerer are required")
	}
	p := &Pool{
		workers: params.Workers,
		maxWait: params.MaxWait,
		now:     now,
		jobs:    make(chan *task, params.Queue),
		stopped: make(chan struct{}),
	}
	p.tasks.New = func() any { return &task{done: make(chan error, 1)} }
	if err := p.register(reg, params); err != nil {
		return nil, err
	}
	p.live.Store(int32(params.Workers))
	for range params.Workers {
		go p.work()
	}
	return p, nil
}

func (p *Pool) register(reg prometheus.Registerer, cfg Params) error {
	jobs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authd_hash_jobs_total",
		Help: "Hash jobs by outcome: done (ran, returned nil), failed (ran, returned an error or panicked), rejected (queue full or pool closed), cancelled (caller gone before a worker took it, or dropped at shutdown).",
	}, []string{"outcome"})
	p.m.done = jobs.WithLabelValues("done")
	p.m.rejected = jobs.WithLabelValues("rejected")
	p.m.cancelled = jobs.WithLabelValues("cancelled")
	p.m.failed = jobs.WithLabelValues("failed")
	p.m.orphaned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "authd_hash_jobs_orphaned_total",
		Help: "Hash jobs that ran while their caller went away (client gone or deadline passed after a worker took the job): the hashing the pool could not skip.",
	})
	// 5ms .. 5.12s, doubling: a default-cost hash (~26ms) and a queue wait
	// up to the ~1s target both land mid-range.
	buckets := prometheus.ExponentialBuckets(0.005, 2, 11)
	p.m.wait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "authd_hash_queue_wait_seconds",
		Help:    "Time a hash job waited in the queue before a worker took it.",
		Buckets: buckets,
	})
	p.m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "authd_hash_duration_seconds",
		Help:    "Time a worker spent running a hash job.",
		Buckets: buckets,
	})
	cs := []prometheus.Collector{
		jobs, p.m.orphaned, p.m.wait, p.m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authd_hash_queue_depth",
			Help: "Hash jobs waiting for a worker.",
		}, func() float64 { return float64(len(p.jobs)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authd_hash_queue_capacity",
			Help: "Hash jobs that may wait before submissions are refused.",
		}, func() float64 { return float64(cfg.Queue) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authd_hash_workers",
			Help: "Hash workers (jobs that can run at once).",
		}, func() float64 { return float64(cfg.Workers) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authd_hash_workers_busy",
			Help: "Hash workers running a job now.",
		}, func() float64 { return float64(p.busy.Load()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("hashpool: register metrics: %w", err)
		}
	}
	return nil
}

// Do runs job on a worker and returns its error. It never waits for room in
// the queue: when the queue is full it returns at once an *OverloadedError,
// and after Close has begun it returns ErrClosed. Otherwise it blocks until
// the job has run or ctx is done, whichever comes first.
//
// When ctx is done Do returns ctx.Err() without waiting. If no worker had
// taken the job yet it is dropped unrun; if one had, the job still runs to
// completion in the background and its result is discarded, so job must not
// write anything the caller reads after Do returned an error. A panic in job
// is recovered and returned as a *PanicError. Safe for concurrent use.
func (p *Pool) Do(ctx context.Context, job func() error) error {
	if err := ctx.Err(); err != nil {
		p.m.cancelled.Inc()
		return err
	}
	t := p.tasks.Get().(*task)
	t.fn, t.ctxDone, t.enq = job, ctx.Done(), p.now()

	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.recycle(t)
		p.m.rejected.Inc()
		return ErrClosed
	}
	if p.waitTooLong() {
		p.mu.RUnlock()
		p.recycle(t)
		p.m.rejected.Inc()
		return &OverloadedError{retryAfter: p.RetryAfter()}
	}
	select {
	case p.jobs <- t:
		p.mu.RUnlock()
	default:
		p.mu.RUnlock()
		p.recycle(t)
		p.m.rejected.Inc()
		return &OverloadedError{retryAfter: p.RetryAfter()}
	}

	select {
	case err := <-t.done:
		p.recycle(t)
		if err == errSkipped {
			return ctx.Err()
		}
		return err
	case <-ctx.Done():
		// Abandon t: its worker sends into the buffered done and moves on.
		return ctx.Err()
	}
}

func (p *Pool) recycle(t *task) {
	t.fn, t.ctxDone = nil, nil
	p.tasks.Put(t)
}

// work is one worker: it owns the jobs it receives and exits when Close has
// closed the queue and the queue is empty.
func (p *Pool) work() {
	defer func() {
		if p.live.Add(-1) == 0 {
			close(p.stopped)
		}
	}()
	for t := range p.jobs {
		p.run(t)
	}
}

// run executes t and hands its result to Do. The send on t.done is the last
// touch of t: Do may recycle it right after.
func (p *Pool) run(t *task) {
	if p.aborted.Load() {
		p.m.cancelled.Inc()
		t.done <- ErrClosed
		return
	}
	select {
	case <-t.ctxDone:
		p.m.cancelled.Inc()
		t.done <- errSkipped
		return
	default:
	}
	fn, enq := t.fn, t.enq
	start := p.now()
	p.m.wait.Observe(start.Sub(enq).Seconds())
	p.busy.Add(1)
	err := call(fn)
	end := p.now()
	p.busy.Add(-1)
	d := end.Sub(start)
	p.m.duration.Observe(d.Seconds())
	p.observe(d)
	if err != nil {
		p.m.failed.Inc()
	} else {
		p.m.done.Inc()
	}
	select {
	case <-t.ctxDone:
		p.m.orphaned.Inc()
	default:
	}
	t.done <- err
}

// call runs fn, turning a panic into a *PanicError.
func call(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// observe folds d into the smoothed job duration.
func (p *Pool) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	for {
		old := p.ewma.Load()
		next := float64(d)
		if old != 0 {
			next = ewmaAlpha*next + (1-ewmaAlpha)*math.Float64frombits(old)
		}
		if next == 0 {
			next = 1 // keep "measured" distinct from "no sample yet"
		}
		if p.ewma.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// Admit returns the error Do would return if called now without a worker
// or queue slot freeing first: an *OverloadedError when the queue is full
// (with Queue 0: when every worker is busy), ErrClosed once Close has begun,
// nil otherwise. It reserves nothing, so a Do right after may still be
// refused. It lets a caller refuse a request before doing any other work for
// it; a refusal counts as a rejected job. Safe for concurrent use.
func (p *Pool) Admit() error {
	p.mu.RLock()
	closed := p.closed
	p.mu.RUnlock()
	if closed {
		p.m.rejected.Inc()
		return ErrClosed
	}
	full := len(p.jobs) >= cap(p.jobs)
	if cap(p.jobs) == 0 {
		full = p.busy.Load() >= int64(p.workers)
	}
	if full || p.waitTooLong() {
		p.m.rejected.Inc()
		return &OverloadedError{retryAfter: p.RetryAfter()}
	}
	return nil
}

// waitTooLong reports whether a job queued now would wait longer than
// MaxWait: the jobs already queued, at the smoothed job duration, shared by
// the workers. Before any job has been measured it says no.
func (p *Pool) waitTooLong() bool {
	bits := p.ewma.Load()
	if p.maxWait <= 0 || bits == 0 || len(p.jobs) == 0 {
		return false
	}
	wait := float64(len(p.jobs)) * math.Float64frombits(bits) / float64(p.workers)
	return wait > float64(p.maxWait)
}

// RetryAfter estimates how long until the work now queued and running is
// done: (queued + busy) jobs at the measured rate of Workers / smoothed job
// duration, rounded up to whole seconds, at least 1s (also before any job has
// been measured) and at most an hour. Safe for concurrent use.
func (p *Pool) RetryAfter() time.Duration {
	bits := p.ewma.Load()
	if bits == 0 {
		return time.Second
	}
	pending := float64(len(p.jobs)) + float64(p.busy.Load())
	// The epsilon keeps float noise in the average from adding a second.
	secs := math.Ceil(pending*math.Float64frombits(bits)/float64(p.workers)/float64(time.Second) - 1e-6)
	switch {
	case secs < 1 || math.IsNaN(secs):
		return time.Second
	case secs > maxRetryAfter.Seconds():
		return maxRetryAfter
	}
	return time.Duration(secs) * time.Second
}

// Close stops accepting jobs (Do returns ErrClosed from now on), lets the
// workers finish every queued job, and returns nil once all workers have
// exited.
//
// If ctx ends first, the jobs still queued are not run: their callers get
// ErrClosed. Close then waits for the jobs already running (a running job
// cannot be interrupted; a hash is bounded) and returns ctx's error. Either
// way no worker goroutine outlives Close. Close may be called more than once
// and concurrently; every call waits as above.
func (p *Pool) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.jobs)
		p.mu.Unlock()
	})
	select {
	case <-p.stopped:
		return nil
	case <-ctx.Done():
	}
	p.aborted.Store(true)
	// Fail what is still queued now rather than after the running jobs;
	// the workers do the same with whatever they receive from here on.
	for t := range p.jobs {
		p.m.cancelled.Inc()
		t.done <- ErrClosed
	}
	<-p.stopped
	return fmt.Errorf("hashpool: close: %w", ctx.Err())
}
