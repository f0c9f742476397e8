package mail

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"html"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testUser = "authd"
	testPass = "s3cret p@ss"
	// A link longer than a quoted-printable line, with characters HTML escapes.
	testLink = "https://auth.example.com/v1/email/verify?token=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8&lang=en"
)

var testNow = time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC)

// certs returns a server certificate for mail.test and 127.0.0.1, and a
// client config that trusts it.
func certs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mail.test"},
		DNSNames:     []string{"mail.test", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

// received is one message the test server accepted.
type received struct {
	from, to, user string
	tls            bool
	data           []byte
}

// server is an SMTP server on loopback built on go-smtp. Its replies are
// set per test: rcptErr, dataErr, or hang (block in DATA until cleanup).
type server struct {
	addr    string
	rcptErr error
	dataErr error
	hang    bool
	release chan struct{}

	mu    sync.Mutex
	got   []received
	auths int // AUTH attempts
}

type serverOpts struct {
	tls      *tls.Config // STARTTLS (or implicit TLS with implicit)
	implicit bool
	insecure bool // AllowInsecureAuth
}

func newServer(t *testing.T, o serverOpts) *server {
	t.Helper()
	s := &server{release: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{s: s, conn: c, tls: isTLS}, nil
	}))
	srv.Domain = "mail.test"
	srv.AllowInsecureAuth = o.insecure
	srv.TLSConfig = o.tls
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var l net.Listener
	var err error
	if o.implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", o.tls)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	t.Cleanup(func() { close(s.release) }) // runs first: unblock a hung session
	return s
}

func (s *server) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

type session struct {
	s    *server
	conn *smtp.Conn
	tls  bool
	user string
	cur  received
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		ss.s.mu.Lock()
		ss.s.auths++
		ss.s.mu.Unlock()
		if user != testUser || pass != testPass {
			return smtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error { ss.cur.from = from; return nil }

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	rcptErr := ss.s.rcptErr
	ss.s.mu.Unlock()
	if rcptErr != nil {
		return rcptErr
	}
	ss.cur.to = to
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if ss.s.hang {
		<-ss.s.release
		return errors.New("released")
	}
	if ss.s.dataErr != nil {
		_, _ = io.Copy(io.Discard, r)
		return ss.s.dataErr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.cur.data, ss.cur.user, ss.cur.tls = b, ss.user, isTLS
	ss.s.mu.Lock()
	ss.s.got = append(ss.s.got, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.cur = received{} }
func (ss *session) Logout() error { return nil }

// newSender returns a Sender for rawURL that dials addr (if set) and
// trusts clientTLS, logging into buf (if set).
func newSender(t *testing.T, rawURL, addr string, clientTLS *tls.Config, buf *bytes.Buffer) *Sender {
	t.Helper()
	var w io.Writer = io.Discard
	if buf != nil {
		w = buf
	}
	logger := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewSender(Params{URL: rawURL, From: "Authd <no-reply@example.com>", TLSConfig: clientTLS},
		func() time.Time { return testNow }, logger)
	if err != nil {
		t.Fatal(err)
	}
	s.dialAddr = addr
	return s
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func creds() string { return url.UserPassword(testUser, testPass).String() }

func verifyMsg() auth.Message {
	return auth.Message{Channel: auth.ChannelEmail, To: "bob@example.org", Template: auth.TemplateVerifyEmail,
		Data: map[string]string{"link": testLink}, IdempotencyKey: "verify:u1:1"}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// parts parses an email and returns its headers and the decoded text and
// HTML parts.
func parts(t *testing.T, data []byte) (netmail.Header, string, string) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var text, htm string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p) // quoted-printable is decoded by NextPart
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			htm = string(b)
		default:
			t.Fatalf("unexpected part %q", ct)
		}
	}
	return msg.Header, text, htm
}

func TestDeliverSTARTTLSWithAuth(t *testing.T) {
	t.Parallel()
	srvTLS, cliTLS := certs(t)
	srv := newServer(t, serverOpts{tls: srvTLS})
	s := newSender(t, "smtp://"+creds()+"@mail.test:"+port(t, srv.addr), srv.addr, cliTLS, nil)

	if err := s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("server got %d messages, want 1", len(got))
	}
	r := got[0]
	if !r.tls || r.user != testUser || r.from != "no-reply@example.com" || r.to != "bob@example.org" {
		t.Errorf("envelope: tls=%v user=%q from=%q to=%q", r.tls, r.user, r.from, r.to)
	}
	h, text, htm := parts(t, r.data)
	for k, want := range map[string]string{
		"From":    `"Authd" <no-reply@example.com>`,
		"To":      "<bob@example.org>",
		"Subject": "Confirm your email address",
	} {
		if h.Get(k) != want {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), want)
		}
	}
	if d, err := h.Date(); err != nil || !d.Equal(testNow) {
		t.Errorf("Date %v (%v), want %v", d, err, testNow)
	}
	id1 := h.Get("Message-Id")
	if !strings.HasSuffix(id1, "@example.com>") || strings.Contains(id1, "verify:u1") {
		t.Errorf("Message-Id %q: want a hash of the key at the From domain", id1)
	}
	if !strings.Contains(text, testLink) {
		t.Errorf("text part lacks the link intact:\n%s", text)
	}
	if !strings.Contains(html.UnescapeString(htm), `href="`+testLink+`"`) {
		t.Errorf("HTML part lacks the link intact:\n%s", htm)
	}

	// Same idempotency key, same Message-ID: a receiver can drop a retry's duplicate.
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg()); err != nil {
		t.Fatal(err)
	}
	h2, _, _ := parts(t, srv.messages()[1].data)
	if h2.Get("Message-Id") != id1 {
		t.Errorf("Message-Id changed between attempts: %q, %q", id1, h2.Get("Message-Id"))
	}
}

func TestDeliverImplicitTLS(t *testing.T) {
	t.Parallel()
	srvTLS, cliTLS := certs(t)
	srv := newServer(t, serverOpts{tls: srvTLS, implicit: true})
	s := newSender(t, "smtps://"+creds()+"@mail.test:"+port(t, srv.addr), srv.addr, cliTLS, nil)
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got := srv.messages(); len(got) != 1 || !got[0].tls || got[0].user != testUser {
		t.Fatalf("got %+v, want one message over TLS, authenticated", got)
	}
}

func TestDeliverUntrustedCertificateFails(t *testing.T) {
	t.Parallel()
	srvTLS, _ := certs(t)
	srv := newServer(t, serverOpts{tls: srvTLS})
	s := newSender(t, "smtp://"+creds()+"@mail.test:"+port(t, srv.addr), srv.addr, nil, nil)
	err := s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg())
	if err == nil || errors.Is(err, auth.ErrUndeliverable) {
		t.Fatalf("Deliver = %v, want a retryable TLS error", err)
	}
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("server got %d messages", n)
	}
}

// Credentials never cross the network in clear, except to loopback.
func TestCredentialsRequireTLS(t *testing.T) {
	t.Parallel()
	// A server without STARTTLS that would accept AUTH in clear.
	srv := newServer(t, serverOpts{insecure: true})

	s := newSender(t, "smtp://"+creds()+"@mail.test:"+port(t, srv.addr), srv.addr, nil, nil)
	err := s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg())
	if err == nil || errors.Is(err, auth.ErrUndeliverable) {
		t.Fatalf("Deliver = %v, want a retryable error", err)
	}
	srv.mu.Lock()
	auths := srv.auths
	srv.mu.Unlock()
	if auths != 0 || len(srv.messages()) != 0 {
		t.Fatalf("auths=%d messages=%d, want no AUTH and no message", auths, len(srv.messages()))
	}

	// The documented exception: a relay on loopback.
	local := newSender(t, "smtp://"+creds()+"@127.0.0.1:"+port(t, srv.addr), "", nil, nil)
	if err := local.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg()); err != nil {
		t.Fatalf("Deliver to loopback: %v", err)
	}
	if got := srv.messages(); len(got) != 1 || got[0].user != testUser {
		t.Fatalf("got %+v", got)
	}

	// Without credentials, a server without STARTTLS is fine.
	anon := newSender(t, "smtp://mail.test:"+port(t, srv.addr), srv.addr, nil, nil)
	if err := anon.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg()); err != nil {
		t.Fatalf("Deliver without auth: %v", err)
	}
}

func TestDeliverErrorClasses(t *testing.T) {
	t.Parallel()
	srvTLS, cliTLS := certs(t)
	tests := []struct {
		name          string
		rcptErr       error
		dataErr       error
		pass          string
		undeliverable bool
	}{
		{name: "550 user unknown", rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, undeliverable: true},
		{name: "554 data rejected", dataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "rejected"}, undeliverable: true},
		{name: "451 greylisted", rcptErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try later"}},
		{name: "452 data", dataErr: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "full"}},
		{name: "535 bad credentials", pass: "wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, serverOpts{tls: srvTLS})
			srv.rcptErr, srv.dataErr = tt.rcptErr, tt.dataErr
			pass := testPass
			if tt.pass != "" {
				pass = tt.pass
			}
			u := "smtp://" + url.UserPassword(testUser, pass).String() + "@mail.test:" + port(t, srv.addr)
			s := newSender(t, u, srv.addr, cliTLS, nil)
			err := s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg())
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			if got := errors.Is(err, auth.ErrUndeliverable); got != tt.undeliverable {
				t.Fatalf("Deliver = %v; undeliverable %v, want %v", err, got, tt.undeliverable)
			}
		})
	}

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		s := newSender(t, "smtp://"+addr, "", nil, nil)
		err = s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg())
		if err == nil || errors.Is(err, auth.ErrUndeliverable) {
			t.Fatalf("Deliver = %v, want retryable", err)
		}
	})
}

// A server that never answers frees the caller at ctx's deadline, whether
// it hangs before its greeting or in the middle of DATA.
func TestDeliverHangReturnsAtDeadline(t *testing.T) {
	t.Parallel()
	srvTLS, cliTLS := certs(t)

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = silent.Close()
		<-acceptDone
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})

	hung := newServer(t, serverOpts{tls: srvTLS})
	hung.hang = true

	for _, tc := range []struct{ name, url, addr string }{
		{"no greeting", "smtp://" + silent.Addr().String(), ""},
		{"hang in DATA", "smtp://" + creds() + "@mail.test:" + port(t, hung.addr), hung.addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSender(t, tc.url, tc.addr, cliTLS, nil)
			const deadline = 300 * time.Millisecond
			start := time.Now()
			err := s.Deliver(ctxTimeout(t, deadline), verifyMsg())
			took := time.Since(start)
			if err == nil || errors.Is(err, auth.ErrUndeliverable) {
				t.Fatalf("Deliver = %v, want a retryable error", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Deliver = %v, want it to wrap context.DeadlineExceeded", err)
			}
			if took < deadline || took > deadline+time.Second {
				t.Fatalf("Deliver returned after %v, want about %v", took, deadline)
			}
		})
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	tpl, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{"link": testLink, "code": "493817"}
	for _, name := range []string{auth.TemplateWelcome, auth.TemplateVerifyEmail, auth.TemplateResetPassword,
		auth.TemplatePasswordChanged, auth.TemplateMFACode} {
		r, err := tpl.render(name, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.subject == "" || strings.TrimSpace(r.text) == "" || !strings.Contains(r.html, "<html>") {
			t.Errorf("%s: empty subject or part: %+v", name, r)
		}
	}
	if r, _ := tpl.render(auth.TemplateMFACode, data); !strings.Contains(r.text, "493817") || !strings.Contains(r.html, "493817") {
		t.Errorf("mfa_code lacks the code: %+v", r)
	}
	// Optional keys: shown when given, absent otherwise.
	r, err := tpl.render(auth.TemplateVerifyEmail, map[string]string{"link": testLink, "expires_in": "24h0m0s"})
	if err != nil || !strings.Contains(r.text, "valid for 24h0m0s") || !strings.Contains(r.html, "valid for 24h0m0s") {
		t.Errorf("verify_email with expires_in: %+v, %v", r, err)
	}
	if r, _ := tpl.render(auth.TemplateVerifyEmail, data); strings.Contains(r.text, "valid for") {
		t.Errorf("verify_email without expires_in: %q", r.text)
	}
	r, err = tpl.render(auth.TemplatePasswordChanged, map[string]string{"changed_at": "2026-11-30T17:00:00Z"})
	if err != nil || !strings.Contains(r.text, "2026-11-30T17:00:00Z") {
		t.Errorf("password_changed with changed_at: %+v, %v", r, err)
	}
}

// A missing template or data key is permanent and fails before any
// connection: the URL points nowhere.
func TestRenderErrorsAreUndeliverable(t *testing.T) {
	t.Parallel()
	s := newSender(t, "smtp://mail.invalid:25", "192.0.2.1:25", nil, nil)
	base := verifyMsg()
	tests := map[string]func(m *auth.Message){
		"unknown template": func(m *auth.Message) { m.Template = "newsletter" },
		"missing key":      func(m *auth.Message) { m.Data = map[string]string{"code": "1"} },
		"nil data":         func(m *auth.Message) { m.Data = nil },
		"mfa without code": func(m *auth.Message) { m.Template = auth.TemplateMFACode },
		"sms channel":      func(m *auth.Message) { m.Channel = auth.ChannelSMS },
		"bad recipient":    func(m *auth.Message) { m.To = "not an address" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := base
			mutate(&m)
			start := time.Now()
			err := s.Deliver(ctxTimeout(t, 5*time.Second), m)
			if !errors.Is(err, auth.ErrUndeliverable) {
				t.Fatalf("Deliver = %v, want ErrUndeliverable", err)
			}
			if time.Since(start) > time.Second {
				t.Fatalf("took %v: it dialled", time.Since(start))
			}
		})
	}
}

func TestNewSenderRejectsBadParams(t *testing.T) {
	t.Parallel()
	now := func() time.Time { return testNow }
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := map[string]Params{
		"empty URL":         {From: "a@example.com"},
		"http scheme":       {URL: "http://mail.example.com", From: "a@example.com"},
		"no host":           {URL: "smtp://", From: "a@example.com"},
		"bad port":          {URL: "smtp://mail.example.com:99999", From: "a@example.com"},
		"query":             {URL: "smtp://mail.example.com?tls=off", From: "a@example.com"},
		"path":              {URL: "smtp://mail.example.com/x", From: "a@example.com"},
		"password only":     {URL: "smtp://:hunter22@mail.example.com", From: "a@example.com"},
		"no From":           {URL: "smtp://mail.example.com"},
		"bad From":          {URL: "smtp://mail.example.com", From: "not an address"},
		"unparsable hunter": {URL: "smtp://u:hunter22@mail.example.com:x:y%zz", From: "a@example.com"},
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := NewSender(p, now, logger)
			if err == nil {
				t.Fatal("NewSender succeeded")
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Fatalf("error reveals the password: %v", err)
			}
		})
	}
	if _, err := NewSender(Params{URL: "smtp://mail.example.com", From: "a@example.com"}, nil, logger); err == nil {
		t.Error("NewSender without a clock succeeded")
	}
	if _, err := NewSender(Params{URL: "smtp://mail.example.com", From: "a@example.com"}, now, nil); err == nil {
		t.Error("NewSender without a logger succeeded")
	}
	if _, err := NewSender(Params{URL: "smtps://u:p@mail.example.com", From: "a@example.com"}, now, logger); err != nil {
		t.Errorf("NewSender(smtps): %v", err)
	}
}

// The log holds template, channel and outcome; never the recipient, the
// link, the code or the SMTP password.
func TestLogHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	srvTLS, cliTLS := certs(t)
	srv := newServer(t, serverOpts{tls: srvTLS})
	var buf bytes.Buffer
	s := newSender(t, "smtp://"+creds()+"@mail.test:"+port(t, srv.addr), srv.addr, cliTLS, &buf)

	mfa := auth.Message{Channel: auth.ChannelEmail, To: "bob@example.org", Template: auth.TemplateMFACode,
		Data: map[string]string{"code": "493817"}}
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg()); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), mfa); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	srv.rcptErr = &smtp.SMTPError{Code: 550, Message: "no such user bob@example.org"}
	srv.mu.Unlock()
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), verifyMsg()); !errors.Is(err, auth.ErrUndeliverable) {
		t.Fatalf("Deliver = %v", err)
	}
	out := buf.String()
	for _, secret := range []string{"Zm9vYmFy", "493817", "bob@example.org", testPass, "s3cret", "verify:u1"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`"template":"verify_email"`, `"template":"mfa_code"`, `"outcome":"accepted"`, `"outcome":"undeliverable"`, `"channel":"email"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
