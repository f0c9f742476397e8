package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is a mail server on loopback that accepts every message and throws it
// away, the way a healthy provider does, after delay (a slow provider), or
// never answers DATA at all (a hanging one): the providers the Courier must
// keep off the request path. At most maxConns sessions are open at once;
// more are refused with 421. Build it with newSink, then Run it.
type sink struct {
	srv      *smtp.Server
	ln       net.Listener
	delay    time.Duration
	hang     bool
	maxConns int
	// wait pauses for a slow provider's delay, or until ctx is done; tests
	// replace it.
	wait func(ctx context.Context, d time.Duration) error

	// stopped is done when Run returns: it ends every delay and hang.
	stopped context.Context
	stop    context.CancelFunc

	open     atomic.Int64 // sessions open now
	sessions atomic.Int64 // sessions accepted in all
	refused  atomic.Int64 // sessions refused beyond maxConns
	accepted atomic.Int64 // messages answered 250
	hung     atomic.Int64 // DATA commands left unanswered until the end
}

// sinkStats is what a sink saw, printed when it stops.
type sinkStats struct {
	Sessions int64 `json:"sessions"`
	Refused  int64 `json:"refused"`
	Accepted int64 `json:"accepted"`
	Hung     int64 `json:"hung"`
}

func (s *sinkStats) String() string {
	return fmt.Sprintf("sessions %d, refused %d, messages accepted %d, DATA left hanging %d", s.Sessions, s.Refused, s.Accepted, s.Hung)
}

// newSink listens on addr, which must be a loopback address (port 0 picks
// one; Addr tells which).
func newSink(addr string, delay time.Duration, hang bool, maxConns int, wait func(context.Context, time.Duration) error) (*sink, error) {
	if err := checkLoopbackAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	stopped, stop := context.WithCancel(context.Background())
	s := &sink{ln: ln, delay: delay, hang: hang, maxConns: maxConns, wait: wait, stopped: stopped, stop: stop}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "authbench.sink"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.MaxRecipients = 10
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.ErrorLog = discardLogger{}
	return s, nil
}

// Addr is the address the sink listens on.
func (s *sink) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is done, then releases every delayed or hanging
// session, closes every connection, and returns what it saw. It blocks until
// all of that is done.
func (s *sink) Run(ctx context.Context) (*sinkStats, error) {
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	s.stop()
	cerr := s.srv.Close()
	if err == nil {
		err = <-served
	}
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if err == nil && cerr != nil && !errors.Is(cerr, smtp.ErrServerClosed) {
		err = cerr
	}
	return &sinkStats{Sessions: s.sessions.Load(), Refused: s.refused.Load(), Accepted: s.accepted.Load(), Hung: s.hung.Load()}, err
}

func (s *sink) newSession(*smtp.Conn) (smtp.Session, error) {
	if s.open.Add(1) > int64(s.maxConns) {
		s.open.Add(-1)
		s.refused.Add(1)
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "too many connections"}
	}
	s.sessions.Add(1)
	return &sinkSession{s: s}, nil
}

type sinkSession struct {
	s      *sink
	closed bool
}

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *sinkSession) Reset()                               {}

func (ss *sinkSession) Logout() error {
	if !ss.closed {
		ss.closed = true
		ss.s.open.Add(-1)
	}
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	s := ss.s
	if s.hang {
		// Never answer: the client waits until its own deadline or until
		// the sink stops.
		s.hung.Add(1)
		<-s.stopped.Done()
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "sink stopping"}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	if s.delay > 0 {
		if err := s.wait(s.stopped, s.delay); err != nil {
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "sink stopping"}
		}
	}
	s.accepted.Add(1)
	return nil
}

// discardLogger drops go-smtp's connection errors (clients that give up
// mid-session are what the slow and hanging modes are for).
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

func smtpSinkCommand(env *environment) *command {
	fs := flag.NewFlagSet("smtp-sink", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:2525", "listen address (loopback only)")
	delay := fs.Duration("delay", 0, "a slow provider: answer each message's DATA this long after it arrived (e.g. 2s)")
	hang := fs.Bool("hang", false, "a hanging provider: never answer DATA (until the sink stops)")
	duration := fs.Duration("duration", 10*time.Minute, "stop after this long (the sink is for benchmark runs, not a mail server)")
	maxConns := fs.Int("max-conns", 256, "sessions open at once; more are refused with 421")
	c := &command{name: "smtp-sink", flags: fs, summary: "a mail server on loopback that accepts and drops every message: healthy, slow (-delay) or hanging (-hang)"}
	c.exec = func(ctx context.Context, stdout, stderr io.Writer) error {
		switch {
		case *delay < 0 || *delay > time.Hour:
			return usagef("-delay must be in [0, 1h]")
		case *hang && *delay > 0:
			return usagef("-delay and -hang exclude each other")
		case *duration <= 0 || *duration > 24*time.Hour:
			return usagef("-duration must be in (0, 24h]")
		case *maxConns < 1:
			return usagef("-max-conns must be at least 1")
		}
		if err := checkLoopbackAddr(*addr); err != nil {
			return usagef("-addr: %v", err)
		}
		s, err := newSink(*addr, *delay, *hang, *maxConns, env.wait)
		if err != nil {
			return err
		}
		mode := "healthy"
		switch {
		case *hang:
			mode = "hanging (never answers DATA)"
		case *delay > 0:
			mode = fmt.Sprintf("slow (%s per message)", *delay)
		}
		fmt.Fprintf(stderr, "authbench smtp-sink: %s on %s for %s\n", mode, s.Addr(), *duration)
		rctx, cancel := context.WithTimeout(ctx, *duration)
		defer cancel()
		st, err := s.Run(rctx)
		fmt.Fprintf(stdout, "smtp-sink %s: %s\n", s.Addr(), st)
		return err
	}
	return c
}
