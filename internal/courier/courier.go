// Package courier delivers what authd tells its users (verification and
// reset emails, codes by SMS) off the request path, through an auth.Sender
// per channel.
//
// Two ways in:
//
//   - Durable: a message written to the outbox (auth.Tx.Enqueue) in the
//     same transaction as the change that causes it. Wake tells the Courier
//     there is work; a poll loop finds it otherwise. Rows are claimed under
//     a lease (several instances share one outbox), marked sent only after
//     the provider accepted them, retried with backoff after a failure, and
//     given up after MaxAttempts. A message claimed by an instance that dies
//     is claimed again when its lease ends: delivery is at least once, and
//     once in every case but that one.
//   - In memory: Send, for short-lived codes that are worthless after a
//     restart. A bounded queue; when it is full Send refuses at once with
//     auth.ErrOverloaded.
//
// A fixed number of workers make the attempts, each under
// context.WithTimeout(Timeout): a flood of messages never starts more
// goroutines, and a provider that never answers frees its worker at the
// deadline. The poll loop claims at most once per MinPollGap and only as
// many rows as there are idle workers, so a provider that is down makes the
// Courier wait, not spin. Every attempt is logged (template, channel,
// message id, attempt, outcome, error class: never the recipient's data,
// which holds links and codes) and counted.
package courier

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
)

// Params tunes the Courier. Zero fields take the defaults of DefaultParams.
type Params struct {
	// Timeout bounds every attempt (AUTHD_NOTIFY_TIMEOUT).
	Timeout time.Duration
	// Workers is how many attempts run at once.
	Workers int
	// Queue is how many in-memory messages may wait or be retried at once.
	Queue int
	// MaxAttempts is how many attempts an outbox message gets; MemoryAttempts
	// how many an in-memory one gets (its code soon expires anyway).
	MaxAttempts, MemoryAttempts int
	// BaseBackoff is the delay before the second attempt; each further
	// delay doubles, up to MaxBackoff, with jitter (half of it random).
	BaseBackoff, MaxBackoff time.Duration
	// PollInterval is how often the outbox is looked at without a Wake;
	// MinPollGap the least time between two looks, however often woken.
	PollInterval, MinPollGap time.Duration
	// Retention is how long sent and abandoned rows are kept (and so their
	// idempotency keys remembered) before they are deleted.
	Retention time.Duration
}

// DefaultParams are the settings of a Courier whose Params are zero.
func DefaultParams() Params {
	return Params{
		Timeout:        10 * time.Second,
		Workers:        8,
		Queue:          1024,
		MaxAttempts:    12,
		MemoryAttempts: 3,
		BaseBackoff:    5 * time.Second,
		MaxBackoff:     30 * time.Minute,
		PollInterval:   2 * time.Second,
		MinPollGap:     50 * time.Millisecond,
		Retention:      7 * 24 * time.Hour,
	}
}

func (p Params) withDefaults() Params {
	d := DefaultParams()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	seti := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&p.Timeout, d.Timeout)
	seti(&p.Workers, d.Workers)
	seti(&p.Queue, d.Queue)
	seti(&p.MaxAttempts, d.MaxAttempts)
	seti(&p.MemoryAttempts, d.MemoryAttempts)
	set(&p.BaseBackoff, d.BaseBackoff)
	set(&p.MaxBackoff, d.MaxBackoff)
	set(&p.PollInterval, d.PollInterval)
	set(&p.MinPollGap, d.MinPollGap)
	set(&p.Retention, d.Retention)
	return p
}

func (p Params) validate() error {
	if p.Timeout < 0 || p.Workers < 0 || p.Queue < 0 || p.MaxAttempts < 0 || p.MemoryAttempts < 0 ||
		p.BaseBackoff < 0 || p.MaxBackoff < 0 || p.PollInterval < 0 || p.MinPollGap < 0 || p.Retention < 0 {
		return errors.New("courier: params must not be negative")
	}
	return nil
}

// Senders are the providers, one per channel.
type Senders struct {
	Email auth.Sender
	SMS   auth.Sender
}

// Outcomes of an attempt, the outcome label of authd_notify_deliveries_total.
const (
	OutcomeSent    = "sent"
	OutcomeFailed  = "failed"
	OutcomeTimeout = "timeout"
)

// storeTimeout bounds the Courier's own outbox writes after an attempt (a
// mark or a reschedule), also while it stops.
const storeTimeout = 5 * time.Second

// pruneEvery is how often finished outbox rows are deleted.
const pruneEvery = time.Hour

// Courier delivers messages; see the package comment. Run it (app.Part) and
// Close it to stop. Send and Wake are safe for concurrent use.
type Courier struct {
	p       Params
	outbox  auth.OutboxStore
	senders map[auth.Channel]auth.Sender
	now     func() time.Time
	logger  *slog.Logger
	owner   string // this instance's name on the leases it takes
	lease   time.Duration

	mu     sync.RWMutex // guards closed against Send
	closed bool

	slots   chan struct{} // one per in-memory message not yet finished
	memq    chan *job     // in-memory messages, first attempts
	retries chan *job     // in-memory messages to retry, from the workers to the poller
	work    chan *job     // outbox rows and due retries, from the poller to idle workers
	wake    chan struct{} // cap 1: there may be due outbox rows
	idle    atomic.Int64  // workers waiting for a job
	memSeq  atomic.Uint64

	stop     chan struct{} // closed by Close (or Run's end): take no more work
	stopOnce sync.Once
	base     context.Context // parent of every attempt; cancelled when the stop budget is spent
	abort    context.CancelFunc
	started  atomic.Bool
	finished chan struct{} // closed when Run's goroutines have returned

	deliveries *prometheus.CounterVec
	byOutcome  map[auth.Channel]map[string]prometheus.Counter
	inflight   prometheus.Gauge
	seconds    prometheus.Histogram
	pending    prometheus.Gauge
}

// job is one message on its way: an outbox row (row set) or an in-memory message.
type job struct {
	id      string // the outbox row's id, or m<seq> in memory
	m       auth.Message
	attempt int       // the number of the attempt about to be made
	due     time.Time // in-memory retries only
	durable bool
}

// New returns a Courier that drains outbox and delivers through senders
// (every channel needs one). Its metrics are registered on reg:
// authd_notify_deliveries_total{channel,outcome}, authd_notify_inflight,
// authd_notify_delivery_seconds and authd_notify_outbox_pending.
func New(p Params, outbox auth.OutboxStore, senders Senders, now func() time.Time, logger *slog.Logger, reg prometheus.Registerer) (*Courier, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	if outbox == nil || senders.Email == nil || senders.SMS == nil {
		return nil, errors.New("courier: an outbox and a sender for each channel are required")
	}
	if now == nil || logger == nil || reg == nil {
		return nil, errors.New("courier: clock, logger and registerer are required")
	}
	base, abort := context.WithCancel(context.Background())
	c := &Courier{
		p: p, outbox: outbox, now: now, logger: logger.With("component", "courier"),
		senders: map[auth.Channel]auth.Sender{auth.ChannelEmail: senders.Email, auth.ChannelSMS: senders.SMS},
		owner:   uuid.NewString(),
		// A claimed row waits at most one attempt for a worker, then takes
		// at most one attempt; the lease outlives both with a margin.
		lease:    2*p.Timeout + 30*time.Second,
		slots:    make(chan struct{}, p.Queue),
		memq:     make(chan *job, p.Queue),
		retries:  make(chan *job, p.Queue),
		work:     make(chan *job),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		base:     base,
		abort:    abort,
		finished: make(chan struct{}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_notify_deliveries_total",
			Help: "Delivery attempts by channel and outcome (sent, failed, timeout).",
		}, []string{"channel", "outcome"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authd_notify_inflight", Help: "Delivery attempts in progress.",
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "authd_notify_delivery_seconds", Help: "Duration of delivery attempts, whatever their outcome.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authd_notify_outbox_pending", Help: "Outbox messages neither sent nor given up, as last counted.",
		}),
	}
	c.byOutcome = map[auth.Channel]map[string]prometheus.Counter{}
	for _, ch := range []auth.Channel{auth.ChannelEmail, auth.ChannelSMS} {
		c.byOutcome[ch] = map[string]prometheus.Counter{}
		for _, o := range []string{OutcomeSent, OutcomeFailed, OutcomeTimeout} {
			c.byOutcome[ch][o] = c.deliveries.WithLabelValues(string(ch), o)
		}
	}
	for _, col := range []prometheus.Collector{c.deliveries, c.inflight, c.seconds, c.pending} {
		if err := reg.Register(col); err != nil {
			abort()
			return nil, fmt.Errorf("courier: register metrics: %w", err)
		}
	}
	return c, nil
}

// Send queues m for delivery in memory and returns at once: nil when it is
// accepted, an error wrapping auth.ErrOverloaded when the queue is full, one
// wrapping auth.ErrUnavailable once the Courier is stopping. It is the path
// of short-lived codes; a message that must survive a restart goes through
// the outbox (auth.Tx.Enqueue, then Wake). m.IdempotencyKey is not used.
func (c *Courier) Send(ctx context.Context, m auth.Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return fmt.Errorf("courier: stopping: %w", auth.ErrUnavailable)
	}
	select {
	case c.slots <- struct{}{}:
	default:
		return fmt.Errorf("courier: %d messages queued: %w", c.p.Queue, auth.ErrOverloaded)
	}
	c.memq <- &job{id: "m" + strconv.FormatUint(c.memSeq.Add(1), 10), m: m, attempt: 1}
	return nil
}

func checkMessage(m auth.Message) error {
	if m.Channel != auth.ChannelEmail && m.Channel != auth.ChannelSMS {
		return fmt.Errorf("courier: unknown channel %q", m.Channel)
	}
	if m.To == "" || m.Template == "" {
		return errors.New("courier: a message needs a recipient and a template")
	}
	return nil
}

// Wake tells the Courier that the outbox holds new work (a transaction that
// enqueued has committed). It never blocks.
func (c *Courier) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run starts the workers and the poll loop and returns when they have
// stopped: after Close, or when ctx ends (then attempts in progress are
// cancelled). It returns nil; it must be called once.
func (c *Courier) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("courier: Run called twice")
	}
	defer close(c.finished)
	var wg sync.WaitGroup
	for range c.p.Workers {
		wg.Go(c.worker)
	}
	wg.Go(c.poll)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.halt()
		c.abort()
		<-done
	}
	c.abort()
	return nil
}

// Close stops the Courier: Send refuses, no more rows are claimed, and the
// attempts in progress (and the in-memory messages queued) are finished
// within ctx's deadline; then the attempts still going are cancelled and
// Close returns ctx's error. Outbox rows not delivered stay for the next
// start (or another instance).
func (c *Courier) Close(ctx context.Context) error {
	c.halt()
	if !c.started.Load() {
		c.abort()
		return nil
	}
	select {
	case <-c.finished:
		return nil
	case <-ctx.Done():
		c.abort()
		return fmt.Errorf("courier: stop: %w", ctx.Err())
	}
}

func (c *Courier) halt() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
	})
}

// worker makes attempts until the Courier stops; then it finishes the
// in-memory messages queued (cancelled at once if the budget is spent).
func (c *Courier) worker() {
	for !c.stopping() {
		c.idle.Add(1)
		var j *job
		select {
		case j = <-c.memq:
		case j = <-c.work:
		case <-c.stop:
		}
		c.idle.Add(-1)
		if j != nil {
			c.attempt(j)
		}
	}
	for {
		select {
		case j := <-c.memq:
			c.attempt(j)
		default:
			return
		}
	}
}

// attempt makes one attempt at j and records its outcome.
func (c *Courier) attempt(j *job) {
	if c.base.Err() != nil { // the stop budget is spent: no attempt
		c.finish(j, "", classCancelled)
		return
	}
	sender := c.senders[j.m.Channel]
	c.inflight.Inc()
	start := c.now()
	ctx, cancel := context.WithTimeout(c.base, c.p.Timeout)
	err := sender.Deliver(ctx, j.m)
	timedOut := err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	c.seconds.Observe(c.now().Sub(start).Seconds())
	c.inflight.Dec()

	switch {
	case err == nil:
		c.finish(j, OutcomeSent, "")
	case timedOut:
		c.finish(j, OutcomeTimeout, "timeout")
	case errors.Is(err, auth.ErrUndeliverable):
		c.finish(j, OutcomeFailed, classUndeliverable)
	case c.base.Err() != nil:
		c.finish(j, OutcomeFailed, classCancelled)
	default:
		c.finish(j, OutcomeFailed, "error")
	}
}

// Error classes that decide what follows a failed attempt; the others
// ("timeout", "error") are retried.
const (
	classUndeliverable = "undeliverable"     // refused for good by the provider
	classCancelled     = "cancelled"         // cut short by the stop: due again at once
	classTooMany       = "too_many_attempts" // claimed again after its last attempt
)

// finish counts and logs an attempt's outcome (none when no attempt was
// made) and settles what follows: done, another attempt after a backoff,
// or giving up. An outbox row's fate is written to the outbox.
func (c *Courier) finish(j *job, outcome, class string) {
	if outcome != "" {
		c.byOutcome[j.m.Channel][outcome].Inc()
	}
	limit := c.p.MemoryAttempts
	if j.durable {
		limit = c.p.MaxAttempts
	}
	now := c.now()
	attrs := []any{
		slog.String("message_id", j.id), slog.String("channel", string(j.m.Channel)),
		slog.String("template", j.m.Template), slog.Int("attempt", j.attempt),
	}
	if outcome != "" {
		attrs = append(attrs, slog.String("outcome", outcome))
	}
	if class != "" {
		attrs = append(attrs, slog.String("error_class", class))
	}
	var next time.Time // zero: done (sent, or given up)
	switch {
	case outcome == OutcomeSent:
		c.logger.Info("courier: delivered", attrs...)
	case class == classCancelled:
		next = now
		if j.durable {
			c.logger.Warn("courier: attempt cancelled by the stop; the message stays in the outbox", attrs...)
		} else {
			c.logger.Warn("courier: attempt cancelled by the stop; the in-memory message is dropped", attrs...)
		}
	case class == classUndeliverable || class == classTooMany || j.attempt >= limit:
		c.logger.Error("courier: gave up", attrs...)
	default:
		next = now.Add(c.backoff(j.attempt))
		c.logger.Warn("courier: attempt failed, will retry", append(attrs, slog.Time("next_attempt_at", next))...)
	}

	if !j.durable {
		if !next.IsZero() && class != classCancelled && !c.stopping() {
			j.attempt++
			j.due = next
			c.retries <- j // never blocks: the job holds one of Queue slots
			return
		}
		<-c.slots
		return
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.base), storeTimeout)
	defer cancel()
	var err error
	switch {
	case outcome == OutcomeSent:
		err = c.outbox.MarkSent(ctx, j.id, c.owner, now)
	case !next.IsZero():
		err = c.outbox.RetryLater(ctx, j.id, c.owner, next, class)
	default:
		err = c.outbox.GiveUp(ctx, j.id, c.owner, now, class)
	}
	if err != nil {
		// The row stays claimed until its lease ends, then is tried
		// again: a message the provider accepted may go out twice.
		c.logger.Error("courier: outbox not updated", append(attrs, slog.Any("err", err))...)
		return
	}
	c.Wake() // a worker is free: look for more
}

func (c *Courier) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// backoff is the delay after the attempt-th failed attempt: BaseBackoff
// doubled attempt-1 times, capped at MaxBackoff, its second half random.
func (c *Courier) backoff(attempt int) time.Duration {
	d := c.p.MaxBackoff
	if shift := attempt - 1; shift < 30 {
		d = min(c.p.BaseBackoff<<shift, c.p.MaxBackoff)
	}
	half := d / 2
	return half + rand.N(half+1)
}

// poll claims due outbox rows for idle workers and hands out due in-memory
// retries, when woken or every PollInterval, at most once per MinPollGap.
func (c *Courier) poll() {
	var (
		later     retryHeap
		lastLook  time.Time
		lastPrune time.Time
		timer     = time.NewTimer(0)
	)
	defer timer.Stop()
	defer func() { // in-memory retries not yet due are dropped
		for range later.Len() {
			<-c.slots
		}
	}()
	for {
		select {
		case <-c.stop:
			return
		case j := <-c.retries:
			heap.Push(&later, j)
		case <-c.wake:
		case <-timer.C:
		}
		if c.stopping() {
			return
		}
		if gap := c.p.MinPollGap - c.now().Sub(lastLook); gap > 0 && !lastLook.IsZero() {
			if !c.sleep(min(gap, c.p.MinPollGap)) {
				return
			}
		}
		now := c.now()
		lastLook = now

		// In-memory retries that are due.
		for later.Len() > 0 && !later[0].due.After(now) {
			j := heap.Pop(&later).(*job)
			select {
			case c.work <- j:
			case <-c.stop:
				<-c.slots
				return
			}
		}

		full := c.claim(now)
		c.countPending() // every look: at most once per MinPollGap
		if now.Sub(lastPrune) >= pruneEvery {
			c.prune(now)
			lastPrune = now
		}

		wait := c.p.PollInterval
		if full {
			wait = c.p.MinPollGap
		}
		if later.Len() > 0 {
			wait = max(0, min(wait, later[0].due.Sub(now)))
		}
		timer.Reset(wait)
	}
}

// sleep waits d unless the Courier stops first; it reports whether it did not.
func (c *Courier) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.stop:
		return false
	case <-t.C:
		return true
	}
}

// claim leases as many due rows as workers are idle and hands them out. It
// reports whether it got all it asked for (there may be more).
func (c *Courier) claim(now time.Time) bool {
	n := int(c.idle.Load())
	if n <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(c.base, storeTimeout)
	msgs, err := c.outbox.ClaimMessages(ctx, c.owner, now, c.lease, n)
	cancel()
	if err != nil {
		c.logger.Warn("courier: claim outbox messages", slog.Any("err", err))
		return false
	}
	for i, m := range msgs {
		j := &job{id: m.ID, m: m.Message, attempt: m.Attempts, durable: true}
		if j.attempt > c.p.MaxAttempts { // its instance died during the last allowed attempt
			c.finish(j, "", classTooMany)
			continue
		}
		if _, ok := c.senders[j.m.Channel]; !ok { // a row from a later version
			c.finish(j, "", classUndeliverable)
			continue
		}
		select {
		case c.work <- j:
		case <-c.stop:
			c.release(msgs[i:])
			return false
		}
	}
	return len(msgs) == n
}

// release gives back rows claimed but not attempted, due at once.
func (c *Courier) release(msgs []auth.OutboxMessage) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.base), storeTimeout)
	defer cancel()
	now := c.now()
	for _, m := range msgs {
		if err := c.outbox.RetryLater(ctx, m.ID, c.owner, now, "shutdown"); err != nil {
			c.logger.Warn("courier: release outbox message", slog.String("message_id", m.ID), slog.Any("err", err))
		}
	}
}

func (c *Courier) countPending() {
	ctx, cancel := context.WithTimeout(c.base, storeTimeout)
	defer cancel()
	n, err := c.outbox.PendingMessages(ctx)
	if err != nil {
		c.logger.Warn("courier: count outbox messages", slog.Any("err", err))
		return
	}
	c.pending.Set(float64(n))
}

func (c *Courier) prune(now time.Time) {
	ctx, cancel := context.WithTimeout(c.base, storeTimeout)
	defer cancel()
	n, err := c.outbox.DeleteFinishedMessages(ctx, now.Add(-c.p.Retention), 1000)
	if err != nil {
		c.logger.Warn("courier: prune outbox", slog.Any("err", err))
		return
	}
	if n > 0 {
		c.logger.Info("courier: pruned outbox", slog.Int64("deleted", n))
	}
}

// retryHeap orders in-memory retries by due time.
type retryHeap []*job

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *retryHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	return j
}
