package main

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// worker is the state a request builder may use: it belongs to one worker
// goroutine, so nothing in it needs a lock.
type worker struct {
	id  int
	seq int // requests this worker has issued before the current one
	rng *rand.Rand
}

// requestFunc builds the next request of a worker. It is called only from
// that worker's goroutine, with a context the request must carry.
type requestFunc func(ctx context.Context, w *worker) (*http.Request, error)

// errKind classifies a request that got no complete response.
type errKind int

const (
	errTimeout    errKind = iota // the client gave up (-timeout) or a network timeout
	errConnection                // refused, reset, closed, short body
	errOther                     // the request could not be built
	numErrKinds
)

func (k errKind) String() string {
	return [...]string{"timeout", "connection", "other"}[k]
}

// load is one timed run: concurrency workers send requests built by next
// through client, back to back, from the start until duration has passed (or
// maxRequests have been issued, when positive). Requests still in flight at
// the end get grace to finish; whatever is still running then is cancelled
// and counted as aborted. A positive timeout bounds each request like a
// client that gives up. With retry.honour set, a worker answered 503 or 429
// pauses as its Retry-After asks before its next request.
type load struct {
	client      *http.Client
	concurrency int
	duration    time.Duration
	grace       time.Duration
	timeout     time.Duration
	maxRequests int64
	seed        uint64
	next        requestFunc
	now         func() time.Time
	retry       retryPolicy
}

// retryPolicy is what a worker does after a refusal (503 or 429).
type retryPolicy struct {
	// honour makes the worker behave like a well-behaved SDK: it sleeps
	// the Retry-After (1s when missing) stretched by a random factor in
	// [1, 1+jitter), then sends its next request. Without it the worker
	// sends its next request at once, as today's impatient clients do.
	honour bool
	jitter float64
	// wait pauses for d or until ctx is done, returning ctx's error; tests
	// replace it.
	wait func(ctx context.Context, d time.Duration) error
}

// pause is how long a worker honouring Retry-After sleeps after an answer
// with this status and Retry-After value; 0 when it does not sleep.
func (p retryPolicy) pause(status int, retryAfter string, now time.Time, rng *rand.Rand) time.Duration {
	if !p.honour || (status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests) {
		return 0
	}
	d := retryAfterDelay(retryAfter, now)
	return d + time.Duration(p.jitter*rng.Float64()*float64(d))
}

// recorder is the private tally of one worker; the workers' recorders are
// merged after they have all returned, so recording takes no lock.
type recorder struct {
	all        *histogram
	byCode     map[int]*histogram
	errs       [numErrKinds]int64
	errExample [numErrKinds]string
	retryAfter map[string]int64
	sent       int64
	completed  int64
	inWindow   int64         // completed no later than the end of the duration
	windowBy   map[int]int64 // inWindow by status code
	aborted    int64
	pauses     int64         // Retry-After sleeps begun (honouring workers)
	paused     time.Duration // their total length as planned
}

func newRecorder() *recorder {
	return &recorder{all: newHistogram(), byCode: map[int]*histogram{}, retryAfter: map[string]int64{}, windowBy: map[int]int64{}}
}

func (r *recorder) response(code int, retryAfter string, d time.Duration, inWindow bool) {
	r.completed++
	if inWindow {
		r.inWindow++
		r.windowBy[code]++
	}
	r.all.record(d)
	h := r.byCode[code]
	if h == nil {
		h = newHistogram()
		r.byCode[code] = h
	}
	h.record(d)
	if retryAfter != "" {
		r.retryAfter[retryAfter]++
	}
}

func (r *recorder) failure(k errKind, err error) {
	r.errs[k]++
	if r.errExample[k] == "" && err != nil {
		r.errExample[k] = err.Error()
	}
}

func (r *recorder) merge(o *recorder) {
	r.all.merge(o.all)
	for code, h := range o.byCode {
		if r.byCode[code] == nil {
			r.byCode[code] = newHistogram()
		}
		r.byCode[code].merge(h)
	}
	for k := range numErrKinds {
		r.errs[k] += o.errs[k]
		if r.errExample[k] == "" {
			r.errExample[k] = o.errExample[k]
		}
	}
	for c, n := range o.windowBy {
		r.windowBy[c] += n
	}
	for v, n := range o.retryAfter {
		r.retryAfter[v] += n
	}
	r.sent += o.sent
	r.completed += o.completed
	r.inWindow += o.inWindow
	r.aborted += o.aborted
	r.pauses += o.pauses
	r.paused += o.paused
}

// result is the merged outcome of a load.
type result struct {
	*recorder
	elapsed time.Duration // from the start until the last worker returned
	window  time.Duration // the span throughput is measured over
}

// throughput returns responses per second completed within the window.
func (r *result) throughput() float64 { return r.rate(r.inWindow) }

// rate returns n per second of the window.
func (r *result) rate(n int64) float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(n) / r.window.Seconds()
}

// run drives the load and blocks until every worker has returned: at most
// duration + grace, sooner when ctx is cancelled (in-flight requests are then
// cancelled and counted as aborted). It starts no goroutine that outlives it.
func (l *load) run(ctx context.Context) *result {
	conc := max(l.concurrency, 1)
	start := l.now()
	end := start.Add(l.duration)
	// issuing stops at soft; requests still in flight are cut at hard.
	soft, cancelSoft := context.WithTimeout(ctx, l.duration)
	defer cancelSoft()
	hard, cancelHard := context.WithTimeout(ctx, l.duration+l.grace)
	defer cancelHard()

	var issued atomic.Int64
	recs := make([]*recorder, conc)
	var wg sync.WaitGroup
	for i := range conc {
		rec := newRecorder()
		recs[i] = rec
		w := &worker{id: i, rng: rand.New(rand.NewPCG(l.seed, uint64(i)))}
		wg.Go(func() { l.work(soft, hard, w, rec, end, &issued) })
	}
	wg.Wait()
	elapsed := l.now().Sub(start)

	total := newRecorder()
	for _, r := range recs {
		total.merge(r)
	}
	return &result{recorder: total, elapsed: elapsed, window: min(elapsed, l.duration)}
}

func (l *load) work(soft, hard context.Context, w *worker, rec *recorder, end time.Time, issued *atomic.Int64) {
	for soft.Err() == nil {
		if l.maxRequests > 0 && issued.Add(1) > l.maxRequests {
			return
		}
		pause, ok := l.once(hard, w, rec, end)
		if !ok {
			return
		}
		w.seq++
		if pause > 0 {
			rec.pauses++
			rec.paused += pause
			// The sleep ends with the run: no request is sent after it.
			if l.retry.wait(soft, pause) != nil {
				return
			}
		}
	}
}

// once sends one request and records its outcome. It returns false when the
// worker should stop: the run was cut, or a request could not be built; and
// otherwise how long the worker pauses before its next request.
func (l *load) once(hard context.Context, w *worker, rec *recorder, end time.Time) (time.Duration, bool) {
	ctx, cancel := hard, context.CancelFunc(func() {})
	if l.timeout > 0 {
		ctx, cancel = context.WithTimeout(hard, l.timeout)
	}
	defer cancel()
	req, err := l.next(ctx, w)
	if err != nil {
		rec.failure(errOther, err)
		return 0, false
	}
	rec.sent++
	t0 := l.now()
	resp, err := l.client.Do(req)
	if err == nil {
		retryAfter := resp.Header.Get("Retry-After")
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err == nil {
			t1 := l.now()
			rec.response(resp.StatusCode, retryAfter, t1.Sub(t0), !t1.After(end))
			return l.retry.pause(resp.StatusCode, retryAfter, t1, w.rng), true
		}
	}
	if hard.Err() != nil {
		rec.aborted++
		return 0, false
	}
	rec.failure(classify(err), err)
	return 0, true
}

// classify tells a client-side timeout from a connection failure.
func classify(err error) errKind {
	if errors.Is(err, context.DeadlineExceeded) {
		return errTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errTimeout
	}
	return errConnection
}
