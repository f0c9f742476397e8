package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// startSink runs a sink on a free loopback port until the returned stop is
// called (or the test ends); stop returns what Run returned.
func startSink(t *testing.T, delay time.Duration, hang bool, maxConns int, w *waits) (*sink, func() (*sinkStats, error)) {
	t.Helper()
	s, err := newSink("127.0.0.1:0", delay, hang, maxConns, w.wait)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type out struct {
		st  *sinkStats
		err error
	}
	done := make(chan out, 1)
	go func() { st, err := s.Run(ctx); done <- out{st, err} }()
	var res *out
	stop := func() (*sinkStats, error) {
		if res == nil {
			cancel()
			o := <-done
			res = &o
		}
		return res.st, res.err
	}
	t.Cleanup(func() { stop() })
	return s, stop
}

func sendMail(addr, to string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail("authd@example.com", []string{to}, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		return err
	}
	return c.Quit()
}

func TestSinkHealthyAndSlow(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 2 * time.Second} {
		t.Run(fmt.Sprint("delay=", delay), func(t *testing.T) {
			t.Parallel()
			w := &waits{}
			s, stop := startSink(t, delay, false, 4, w)
			for i := range 3 {
				if err := sendMail(s.Addr(), fmt.Sprintf("u%d@example.com", i)); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			st, err := stop()
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if st.Accepted != 3 || st.Sessions != 3 || st.Hung != 0 || st.Refused != 0 {
				t.Fatalf("stats %+v, want 3 accepted in 3 sessions", st)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			want := 0
			if delay > 0 {
				want = 3
			}
			if len(w.d) != want {
				t.Fatalf("waits %v, want %d of %s", w.d, want, delay)
			}
			for _, d := range w.d {
				if d != delay {
					t.Fatalf("waited %s, want %s", d, delay)
				}
			}
		})
	}
}

// A hanging sink never answers DATA: the client is still waiting when the
// sink stops, and then gets a 421 (not a 250).
func TestSinkHang(t *testing.T) {
	t.Parallel()
	s, stop := startSink(t, 0, true, 4, &waits{})
	sent := make(chan error, 1)
	go func() { sent <- sendMail(s.Addr(), "u@example.com") }()
	for i := 0; s.hung.Load() == 0; i++ {
		if i == 500 {
			t.Fatal("DATA never reached the sink")
		}
		time.Sleep(10 * time.Millisecond) // polling the sink, not waiting for a clock
	}
	select {
	case err := <-sent:
		t.Fatalf("the message was answered while the sink hangs: %v", err)
	default:
	}
	st, err := stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Hung != 1 || st.Accepted != 0 {
		t.Fatalf("stats %+v, want 1 hung, 0 accepted", st)
	}
	if err := <-sent; err == nil {
		t.Fatal("the hung message was accepted when the sink stopped")
	}
}

func TestSinkMaxConns(t *testing.T) {
	t.Parallel()
	s, stop := startSink(t, 0, false, 1, &waits{})
	first, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.Hello("a.test"); err != nil {
		t.Fatal(err)
	}
	second, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	var se *smtp.SMTPError
	if err := second.Hello("b.test"); !errors.As(err, &se) || se.Code/100 != 4 {
		t.Fatalf("second session: %v, want a 4xx refusal", err)
	}
	if err := first.Quit(); err != nil {
		t.Fatal(err)
	}
	// The first session's slot is free again.
	if err := sendMail(s.Addr(), "u@example.com"); err != nil {
		t.Fatalf("after the first quit: %v", err)
	}
	st, _ := stop()
	if st.Refused != 1 || st.Accepted != 1 {
		t.Fatalf("stats %+v, want 1 refused, 1 accepted", st)
	}
}

func TestSmtpSinkCommandUsage(t *testing.T) {
	t.Parallel()
	tests := [][]string{
		{"-addr", "0.0.0.0:2525"},
		{"-addr", ":2525"},
		{"-addr", "192.0.2.1:2525"},
		{"-delay", "2s", "-hang"},
		{"-delay", "-1s"},
		{"-duration", "0s"},
		{"-max-conns", "0"},
	}
	for _, args := range tests {
		var stdout, stderr bytes.Buffer
		code := runWith(t.Context(), testEnv(&waits{}), append([]string{"smtp-sink"}, args...), &stdout, &stderr)
		if code != 2 {
			t.Errorf("smtp-sink %v: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}

// The command stops by itself after -duration and prints what it saw.
func TestSmtpSinkCommandBounded(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := runWith(t.Context(), testEnv(&waits{}), []string{"smtp-sink", "-addr", "127.0.0.1:0", "-hang", "-duration", "50ms"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "hanging") || !strings.Contains(stdout.String(), "messages accepted 0") {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

// register sends only registrations, each with a new email.
func TestRunRegister(t *testing.T) {
	t.Parallel()
	fake := newFakeAuthd(defaultPassword)
	pub := httptest.NewServer(fake.public())
	t.Cleanup(pub.Close)
	var stdout, stderr bytes.Buffer
	code := runWith(t.Context(), testEnv(&waits{}), []string{"register",
		"-url", pub.URL, "-concurrency", "4", "-duration", "1m", "-requests", "60", "-warmup", "10ms", "-forwarded-for",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	fake.mu.Lock()
	n := len(fake.users)
	fake.mu.Unlock()
	if n < 60 {
		t.Fatalf("%d accounts created, want at least 60 (all new)", n)
	}
	out := stdout.String()
	if !strings.Contains(out, "sent 60, completed 60") || !strings.Contains(out, "\n     201     60") {
		t.Fatalf("report:\n%s", out)
	}
}
