package main

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	netmail "net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// mailbox is an SMTP server on loopback (go-smtp) that keeps every message
// it accepts. It can be started late, on an address chosen before, to play
// a mail server that was down.
type mailbox struct {
	addr string
	mu   sync.Mutex
	got  [][]byte
}

func newMailbox(t *testing.T) *mailbox { return &mailbox{addr: freeAddr(t)} }

// serve starts the server on mb.addr until the test ends.
func (mb *mailbox) serve(t *testing.T) {
	t.Helper()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailboxSession{mb: mb}, nil }))
	srv.Domain = "mail.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", mb.addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
}

// wait returns the n-th message (from 1) once it has arrived.
func (mb *mailbox) wait(t *testing.T, n int, within time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		mb.mu.Lock()
		if len(mb.got) >= n {
			m := mb.got[n-1]
			mb.mu.Unlock()
			return m
		}
		mb.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("message %d did not arrive within %v", n, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (mb *mailbox) count() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.got)
}

type mailboxSession struct{ mb *mailbox }

func (s *mailboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailboxSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mailboxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mb.mu.Lock()
	s.mb.got = append(s.mb.got, b)
	s.mb.mu.Unlock()
	return nil
}
func (s *mailboxSession) Reset()        {}
func (s *mailboxSession) Logout() error { return nil }

var verifyToken = regexp.MustCompile(`/verify-email\?token=([A-Za-z0-9_-]+)`)

// textPart returns the decoded text/plain part of a raw MIME email.
func textPart(t *testing.T, raw []byte) string {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read email: %v", err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("email content type: %v", err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err != nil {
			t.Fatalf("no text/plain part: %v", err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			b, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

// TestVerificationEmailOverSMTP: with AUTHD_SMTP_URL set, registration's
// verification email reaches a real SMTP server, and the link in it
// verifies the address once. The mail server is down at first: the Courier
// backs off (a handful of attempts, no hot loop) and delivers the email
// once, when the server is back.
func TestVerificationEmailOverSMTP(t *testing.T) {
	t.Parallel()
	mb := newMailbox(t)
	in := start(t, map[string]string{
		"AUTHD_SMTP_URL":       "smtp://" + mb.addr,
		"AUTHD_MAIL_FROM":      "authd <no-reply@example.com>",
		"AUTHD_NOTIFY_TIMEOUT": "2s",
	})
	hc := &http.Client{Timeout: 10 * time.Second}
	if r := call(t, hc, http.MethodPost, in.base+"/v1/register", "", creds{"ada@example.com", goodPassword}); r.code != http.StatusCreated {
		t.Fatalf("register: %s", r)
	}
	// The server is down: the first attempt fails, the next is seconds away.
	time.Sleep(time.Second)
	failed := strings.Count(in.logs.String(), `"msg":"courier: attempt failed, will retry"`)
	if failed < 1 || failed > 2 {
		t.Errorf("%d failed attempts in the first second with the server down, want 1 or 2 (backoff)", failed)
	}
	mb.serve(t)
	raw := mb.wait(t, 1, 40*time.Second)

	text := textPart(t, raw)
	m := verifyToken.FindStringSubmatch(text)
	if m == nil || !strings.HasPrefix(text[strings.Index(text, "http"):], in.base+"/verify-email?token=") {
		t.Fatalf("no verification link built from AUTHD_PUBLIC_URL in:\n%s", text)
	}
	if strings.Contains(in.logs.String(), m[1]) {
		t.Error("the verification token reached the log")
	}
	if r := call(t, hc, http.MethodPost, in.base+"/v1/email/verify", "", map[string]string{"token": m[1]}); r.code != http.StatusNoContent {
		t.Fatalf("verify: %s", r)
	}
	if r := call(t, hc, http.MethodPost, in.base+"/v1/email/verify", "", map[string]string{"token": m[1]}); r.code != http.StatusBadRequest {
		t.Errorf("second use of the token: %s, want 400", r)
	}
	tok := login(t, hc, in, "ada@example.com", goodPassword)
	if me := call(t, hc, http.MethodGet, in.base+"/v1/me", tok.Access, nil).json(t); me["email_verified"] != true {
		t.Errorf("/v1/me after verification: %v", me)
	}
	time.Sleep(200 * time.Millisecond)
	if n := mb.count(); n != 1 {
		t.Errorf("%d emails delivered, want exactly 1", n)
	}
}
