package courier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/authd/authd/internal/courier"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/postgres/pgtest"
	"github.com/authd/authd/internal/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC)

// sender is a fake provider: it records what it accepted, and can be slow
// (block until released), hanging (until ctx ends) or failing.
type sender struct {
	calls     atomic.Int64
	hang      bool
	release   chan struct{}                          // when set, each call waits for a value or ctx
	fail      func(call int64, m auth.Message) error // when set, its error is the call's
	mu        sync.Mutex
	got       map[string]int // idempotency key (or To) -> deliveries
	delivered chan auth.Message
}

func newSender() *sender {
	return &sender{got: map[string]int{}, delivered: make(chan auth.Message, 1000)}
}

func (s *sender) Deliver(ctx context.Context, m auth.Message) error {
	n := s.calls.Add(1)
	if s.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.release != nil {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.fail != nil {
		if err := s.fail(n, m); err != nil {
			return err
		}
	}
	key := m.IdempotencyKey
	if key == "" {
		key = m.To
	}
	s.mu.Lock()
	s.got[key]++
	s.mu.Unlock()
	s.delivered <- m
	return nil
}

func (s *sender) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[key]
}

// wait returns the next delivered message, failing the test after 10 s.
func (s *sender) wait(t *testing.T) auth.Message {
	t.Helper()
	select {
	case m := <-s.delivered:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no delivery within 10s (%d calls)", s.calls.Load())
		return auth.Message{}
	}
}

// eventually polls cond, with a pause between polls, for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openSQLite(t *testing.T, now func() time.Time) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), ":memory:", now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type fixture struct {
	c   *courier.Courier
	reg *prometheus.Registry
	log *lockedBuffer
}

// start builds a Courier on outbox with s for both channels, runs it, and
// closes it at the end of the test.
func start(t *testing.T, p courier.Params, outbox auth.OutboxStore, s auth.Sender, now func() time.Time) *fixture {
	t.Helper()
	f := newCourier(t, p, outbox, s, now)
	done := make(chan error, 1)
	go func() { done <- f.c.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

func newCourier(t *testing.T, p courier.Params, outbox auth.OutboxStore, s auth.Sender, now func() time.Time) *fixture {
	t.Helper()
	return newCourierWith(t, p, outbox, courier.Senders{Email: s, SMS: s}, now)
}

func newCourierWith(t *testing.T, p courier.Params, outbox auth.OutboxStore, senders courier.Senders, now func() time.Time) *fixture {
	t.Helper()
	if p.PollInterval == 0 {
		p.PollInterval = 20 * time.Millisecond
	}
	if p.MinPollGap == 0 {
		p.MinPollGap = time.Millisecond
	}
	buf := &lockedBuffer{}
	f := &fixture{reg: prometheus.NewRegistry(), log: buf}
	logger := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := courier.New(p, outbox, senders, now, logger, f.reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.c = c
	return f
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func verifyMsg(key string) auth.Message {
	return auth.Message{
		Channel: auth.ChannelEmail, To: key + "@example.com", Template: auth.TemplateVerifyEmail,
		Data:           map[string]string{"link": "https://auth.example.com/verify?token=SECRET-" + key},
		IdempotencyKey: key,
	}
}

func enqueue(t *testing.T, st auth.Transactor, now time.Time, keys ...string) {
	t.Helper()
	err := st.InTx(t.Context(), func(tx auth.Tx) error {
		for _, k := range keys {
			if err := tx.Enqueue(t.Context(), verifyMsg(k), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

func pending(t *testing.T, st auth.OutboxStore) int64 {
	t.Helper()
	n, err := st.PendingMessages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func deliveries(f *fixture, ch auth.Channel, outcome string) float64 {
	mfs, _ := f.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "authd_notify_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var c, o string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "channel":
					c = l.GetValue()
				case "outcome":
					o = l.GetValue()
				}
			}
			if c == string(ch) && o == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func gauge(f *fixture, name string) float64 {
	mfs, _ := f.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func TestOutboxMessageIsDeliveredAndMarkedSent(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	st := openSQLite(t, clock.Now)
	s := newSender()
	f := start(t, courier.Params{}, st, s, clock.Now)
	enqueue(t, st, t0, "k1")
	f.c.Wake()
	if m := s.wait(t); m.IdempotencyKey != "k1" || !strings.Contains(m.Data["link"], "SECRET-k1") {
		t.Fatalf("delivered %+v", m)
	}
	eventually(t, "outbox drained", func() bool { return pending(t, st) == 0 })
	if got := deliveries(f, auth.ChannelEmail, courier.OutcomeSent); got != 1 {
		t.Errorf("sent count = %v, want 1", got)
	}
	if strings.Contains(f.log.String(), "SECRET") {
		t.Errorf("the log holds the message's data:\n%s", f.log)
	}
}

func TestMetricsArePreCreated(t *testing.T) {
	t.Parallel()
	st := openSQLite(t, time.Now)
	f := newCourier(t, courier.Params{}, st, newSender(), time.Now)
	for _, ch := range []auth.Channel{auth.ChannelEmail, auth.ChannelSMS} {
		for _, o := range []string{courier.OutcomeSent, courier.OutcomeFailed, courier.OutcomeTimeout} {
			if got := deliveries(f, ch, o); got != 0 {
				t.Errorf("deliveries{%s,%s} = %v, want a 0 series", ch, o, got)
			}
		}
	}
	n, err := testutil.GatherAndCount(f.reg, "authd_notify_inflight", "authd_notify_delivery_seconds", "authd_notify_outbox_pending")
	if err != nil || n != 3 {
		t.Errorf("other series = %d, %v; want 3", n, err)
	}
	if err := f.c.Close(t.Context()); err != nil {
		t.Errorf("Close without Run: %v", err)
	}
}

// A flood fills the in-memory queue: Send refuses at once, and no more
// goroutines are started than the workers.
func TestSendRefusesWhenTheQueueIsFull(t *testing.T) {
	t.Parallel()
	st := openSQLite(t, time.Now)
	s := newSender()
	s.release = make(chan struct{})
	f := start(t, courier.Params{Workers: 2, Queue: 4, Timeout: time.Minute}, st, s, time.Now)
	sms := func(i int) auth.Message {
		return auth.Message{Channel: auth.ChannelSMS, To: fmt.Sprintf("+1415555%04d", i), Template: auth.TemplateMFACode, Data: map[string]string{"code": "123456"}}
	}
	for i := range 4 {
		if err := f.c.Send(t.Context(), sms(i)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	begin := time.Now()
	for i := 4; i < 1000; i++ {
		if err := f.c.Send(t.Context(), sms(i)); !errors.Is(err, auth.ErrOverloaded) {
			t.Fatalf("Send %d into a full queue: %v, want ErrOverloaded", i, err)
		}
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("996 refusals took %v", d)
	}
	eventually(t, "two attempts in progress", func() bool { return s.calls.Load() == 2 })
	close(s.release)
	for range 4 {
		s.wait(t)
	}
	// The slots are free again.
	if err := f.c.Send(t.Context(), sms(5)); err != nil {
		t.Fatalf("Send after the queue drained: %v", err)
	}
	s.wait(t)
}

// A provider that never answers frees its worker at the deadline; the
// attempt is counted as a timeout and retried up to the limit.
func TestHangingProviderTimesOut(t *testing.T) {
	t.Parallel()
	st := openSQLite(t, time.Now)
	s := newSender()
	s.hang = true
	f := start(t, courier.Params{Workers: 1, Timeout: 30 * time.Millisecond, MemoryAttempts: 2, BaseBackoff: time.Millisecond}, st, s, time.Now)
	begin := time.Now()
	if err := f.c.Send(t.Context(), auth.Message{Channel: auth.ChannelSMS, To: "+14155550100", Template: auth.TemplateMFACode}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 50*time.Millisecond {
		t.Errorf("Send took %v with a hanging provider", d)
	}
	eventually(t, "two timeouts", func() bool { return deliveries(f, auth.ChannelSMS, courier.OutcomeTimeout) == 2 })
	eventually(t, "gave up", func() bool { return strings.Contains(f.log.String(), "courier: gave up") })
	if n := s.calls.Load(); n != 2 {
		t.Errorf("%d attempts, want 2 (MemoryAttempts)", n)
	}
}

// A failed attempt is retried after its backoff, not before: with the
// clock standing still the Courier makes no second attempt however often
// it polls, and delivers once the clock has moved past the backoff.
func TestFailedOutboxMessageBacksOff(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	st := openSQLite(t, clock.Now)
	s := newSender()
	s.fail = func(call int64, _ auth.Message) error {
		if call <= 2 {
			return errors.New("connection refused")
		}
		return nil
	}
	// A lease longer than every jump of the clock: a row is due again only
	// once its attempt's outcome is written, never because the jump ended
	// the lease of an attempt still finishing.
	p := courier.Params{BaseBackoff: time.Minute, MaxBackoff: time.Hour, PollInterval: time.Millisecond, Timeout: 2 * time.Hour}
	f := start(t, p, st, s, clock.Now)
	enqueue(t, st, t0, "k")
	f.c.Wake()
	eventually(t, "first attempt", func() bool { return deliveries(f, auth.ChannelEmail, courier.OutcomeFailed) == 1 })
	// Some hundred polls with the clock still: no hot loop.
	for range 100 {
		f.c.Wake()
		time.Sleep(time.Millisecond)
	}
	if n := s.calls.Load(); n != 1 {
		t.Fatalf("%d attempts before the backoff elapsed, want 1", n)
	}
	eventually(t, "pending gauge at 1", func() bool { return gauge(f, "authd_notify_outbox_pending") == 1 })
	clock.Advance(29 * time.Second) // under the least backoff (half of a minute)
	f.c.Wake()
	time.Sleep(20 * time.Millisecond)
	if n := s.calls.Load(); n != 1 {
		t.Fatalf("%d attempts 29s after the failure, want 1", n)
	}
	clock.Advance(31 * time.Second)
	eventually(t, "second attempt", func() bool { return s.calls.Load() == 2 })
	clock.Advance(2 * time.Minute)
	s.wait(t)
	eventually(t, "outbox drained", func() bool { return pending(t, st) == 0 })
	f.c.Wake()
	eventually(t, "pending gauge at 0", func() bool { return gauge(f, "authd_notify_outbox_pending") == 0 })
	if s.calls.Load() != 3 || s.count("k") != 1 {
		t.Errorf("calls %d, deliveries %d: want 3 and 1", s.calls.Load(), s.count("k"))
	}
}

func TestUndeliverableIsNotRetried(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	st := openSQLite(t, clock.Now)
	s := newSender()
	s.fail = func(int64, auth.Message) error { return fmt.Errorf("550 no such user: %w", auth.ErrUndeliverable) }
	f := start(t, courier.Params{}, st, s, clock.Now)
	enqueue(t, st, t0, "k")
	f.c.Wake()
	eventually(t, "given up", func() bool { return pending(t, st) == 0 })
	clock.Advance(24 * time.Hour)
	f.c.Wake()
	time.Sleep(20 * time.Millisecond)
	if n := s.calls.Load(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	if !strings.Contains(f.log.String(), `"error_class":"undeliverable"`) {
		t.Errorf("log does not say why:\n%s", f.log)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	st := openSQLite(t, clock.Now)
	s := newSender()
	s.fail = func(int64, auth.Message) error { return errors.New("503") }
	// The lease outlasts each jump of the clock (see TestFailedOutboxMessageBacksOff).
	f := start(t, courier.Params{MaxAttempts: 3, BaseBackoff: time.Second, MaxBackoff: time.Second, Timeout: 2 * time.Hour}, st, s, clock.Now)
	enqueue(t, st, t0, "k")
	f.c.Wake()
	for i := int64(1); i <= 3; i++ {
		eventually(t, fmt.Sprintf("attempt %d", i), func() bool { return s.calls.Load() == i })
		eventually(t, "rescheduled", func() bool { return deliveries(f, auth.ChannelEmail, courier.OutcomeFailed) == float64(i) })
		clock.Advance(time.Hour)
		f.c.Wake()
	}
	eventually(t, "given up", func() bool { return pending(t, st) == 0 })
	time.Sleep(20 * time.Millisecond)
	if n := s.calls.Load(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

// Close lets an attempt in progress finish, and takes no more work.
func TestCloseLetsInFlightAttemptsFinish(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	st := openSQLite(t, clock.Now)
	s := newSender()
	s.release = make(chan struct{})
	sms := newSender() // healthy: the probes of the refusal below go there
	f := newCourierWith(t, courier.Params{Workers: 1}, st, courier.Senders{Email: s, SMS: sms}, clock.Now)
	done := make(chan error, 1)
	go func() { done <- f.c.Run(context.Background()) }()
	enqueue(t, st, t0, "a", "b")
	f.c.Wake()
	eventually(t, "attempt in progress", func() bool { return s.calls.Load() == 1 })
	closed := make(chan error, 1)
	go func() { closed <- f.c.Close(context.Background()) }()
	eventually(t, "refusing", func() bool {
		return errors.Is(f.c.Send(t.Context(), auth.Message{Channel: auth.ChannelSMS, To: "+14155550100", Template: auth.TemplateMFACode}), auth.ErrUnavailable)
	})
	s.release <- struct{}{}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.calls.Load() != 1 || pending(t, st) != 1 {
		t.Errorf("calls %d, pending %d: want the one in flight sent, the other left\n%s", s.calls.Load(), pending(t, st), f.log)
	}
}

// When the stop budget runs out the attempt is cancelled and its row stays
// in the outbox, due at once: the next start delivers it.
func TestCloseBudgetSpentLeavesTheRow(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	st := openSQLite(t, clock.Now)
	s := newSender()
	s.hang = true
	f := newCourier(t, courier.Params{Workers: 1, Timeout: time.Hour}, st, s, clock.Now)
	done := make(chan error, 1)
	go func() { done <- f.c.Run(context.Background()) }()
	enqueue(t, st, t0, "a")
	f.c.Wake()
	eventually(t, "attempt in progress", func() bool { return s.calls.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := f.c.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the budget's deadline", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	healthy := newSender()
	start(t, courier.Params{}, st, healthy, clock.Now).c.Wake()
	if m := healthy.wait(t); m.IdempotencyKey != "a" {
		t.Fatalf("delivered %q", m.IdempotencyKey)
	}
}

// The log sender logs that a message would go out, never its data.
func TestLogSenderKeepsSecrets(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	ls := courier.NewLogSender(slog.New(slog.NewJSONHandler(&buf, nil)))
	if err := ls.Deliver(t.Context(), verifyMsg("k")); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "SECRET") || !strings.Contains(out, `"template":"verify_email"`) || !strings.Contains(out, `"link"`) {
		t.Errorf("log = %s: want the template and the data's names, not its values", out)
	}
}

func openPostgres(t *testing.T, url string, now func() time.Time) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), url, now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// kill -9 after the commit: the instance that wrote the row is abandoned
// before it delivered it (here, before its Courier ran), or while its
// attempt was in progress (a claim by an owner that never finishes). The
// next instance delivers each message once.
func TestRestartDeliversWhatAKilledInstanceLeft(t *testing.T) {
	t.Parallel()
	url := pgtest.SchemaURL(t)
	clock := clocktest.New(t0)
	killed := openPostgres(t, url, clock.Now)
	enqueue(t, killed, t0, "written", "claimed")
	// The killed instance had claimed "claimed" (and died during the attempt).
	msgs, err := killed.ClaimMessages(t.Context(), "killed-instance", t0, time.Minute, 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("claim: %v, %v", msgs, err)
	}
	claimedKey := msgs[0].Message.IdempotencyKey

	st := openPostgres(t, url, clock.Now)
	s := newSender()
	f := start(t, courier.Params{Timeout: 10 * time.Second}, st, s, clock.Now)
	f.c.Wake()
	s.wait(t)
	// The first delivery is marked sent before the clock jumps past its
	// lease: otherwise the jump makes it due again, legitimately.
	eventually(t, "the first delivery marked sent", func() bool { return pending(t, st) == 1 })
	time.Sleep(30 * time.Millisecond)
	if s.calls.Load() != 1 || s.count(claimedKey) != 0 {
		t.Fatalf("before the dead lease ends: %d calls, %d of the claimed one; want 1 and 0", s.calls.Load(), s.count(claimedKey))
	}
	clock.Advance(time.Minute)
	f.c.Wake()
	s.wait(t)
	eventually(t, "outbox drained", func() bool { return pending(t, st) == 0 })
	clock.Advance(time.Hour)
	f.c.Wake()
	time.Sleep(30 * time.Millisecond)
	if s.count("written") != 1 || s.count("claimed") != 1 || s.calls.Load() != 2 {
		t.Errorf("deliveries %v in %d calls: want each message once", s.got, s.calls.Load())
	}
}

// Two instances on one PostgreSQL outbox deliver each message once.
func TestTwoInstancesDeliverEachMessageOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.SchemaURL(t)
	a, b := openPostgres(t, url, time.Now), openPostgres(t, url, time.Now)
	s := newSender()
	const n = 200
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("m%03d", i)
	}
	ca := start(t, courier.Params{Workers: 4}, a, s, time.Now)
	cb := start(t, courier.Params{Workers: 4}, b, s, time.Now)
	for i := 0; i < n; i += 20 {
		enqueue(t, a, time.Now(), keys[i:i+20]...)
		ca.c.Wake()
		cb.c.Wake()
	}
	for range n {
		s.wait(t)
	}
	eventually(t, "outbox drained", func() bool { return pending(t, a) == 0 })
	for _, k := range keys {
		if c := s.count(k); c != 1 {
			t.Errorf("%s delivered %d times", k, c)
		}
	}
	ra, rb := deliveries(ca, auth.ChannelEmail, courier.OutcomeSent), deliveries(cb, auth.ChannelEmail, courier.OutcomeSent)
	if ra+rb != n {
		t.Errorf("instances sent %v + %v, want %d", ra, rb, n)
	}
	t.Logf("instance a sent %v, b %v", ra, rb)
}
