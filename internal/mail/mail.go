// Package mail delivers authd's emails through an SMTP server: the
// auth.Sender of the email channel. Each email has a plain-text and an
// HTML part rendered from templates embedded in the binary, one pair per
// template name of package auth.
//
// Transport security: an smtps:// URL uses implicit TLS (RFC 8314); an
// smtp:// URL upgrades with STARTTLS when the server offers it, and requires
// it when the URL carries credentials, so a password never crosses the
// network in clear. The one exception is a server on a loopback address
// (localhost, 127.0.0.0/8, ::1): a local relay may take credentials without
// TLS.
package mail

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/authd/authd/internal/auth"
)

// Params configures a Sender.
type Params struct {
	// URL is the SMTP server (AUTHD_SMTP_URL):
	//   smtp://[user:password@]host[:port]   port 587 by default; STARTTLS when
	//                                        offered, required with credentials
	//                                        (unless host is loopback)
	//   smtps://[user:password@]host[:port]  implicit TLS, port 465 by default
	// User and password are URL-encoded. No path or query is allowed.
	URL string
	// From is the sender address of every email (AUTHD_MAIL_FROM), for
	// example "authd@example.com" or "Example <no-reply@example.com>".
	From string
	// TLSConfig, if set, is cloned for the connection (tests set RootCAs).
	// Nil means the system's roots. ServerName is always the URL's host.
	TLSConfig *tls.Config
}

// Sender delivers emails to one SMTP server, one connection per message.
// It is safe for concurrent use and holds no connection between calls.
type Sender struct {
	host     string
	port     int
	implicit bool // smtps://
	user     string
	pass     string
	from     string
	tls      *tls.Config
	loopback bool
	now      func() time.Time
	logger   *slog.Logger
	tpl      *templates

	// dialAddr, when set by a test, replaces host:port as the address dialled
	// (the host still names the server for TLS and the auth policy).
	dialAddr string
}

var _ auth.Sender = (*Sender)(nil)

// NewSender returns a Sender for p. It returns an error when the URL or
// the From address is missing or malformed, or now or logger is nil. The
// error never contains the URL's password.
func NewSender(p Params, now func() time.Time, logger *slog.Logger) (*Sender, error) {
	if now == nil || logger == nil {
		return nil, errors.New("mail: a clock and a logger are required")
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		// url.Parse's error quotes the whole URL, password included.
		return nil, errors.New("mail: AUTHD_SMTP_URL is not a URL")
	}
	s := &Sender{now: now, logger: logger.With("component", "mail")}
	switch u.Scheme {
	case "smtp":
		s.port = 587
	case "smtps":
		s.implicit, s.port = true, 465
	default:
		return nil, fmt.Errorf("mail: AUTHD_SMTP_URL %s: the scheme must be smtp or smtps", u.Redacted())
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mail: AUTHD_SMTP_URL %s: only scheme, credentials, host and port are allowed", u.Redacted())
	}
	s.host = u.Hostname()
	if s.host == "" {
		return nil, fmt.Errorf("mail: AUTHD_SMTP_URL %s: a host is required", u.Redacted())
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("mail: AUTHD_SMTP_URL %s: bad port", u.Redacted())
		}
		s.port = n
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		if s.user == "" {
			return nil, fmt.Errorf("mail: AUTHD_SMTP_URL %s: credentials without a user name", u.Redacted())
		}
	}
	s.loopback = isLoopback(s.host)
	if p.From == "" {
		return nil, errors.New("mail: AUTHD_MAIL_FROM is required with AUTHD_SMTP_URL")
	}
	if err := gomail.NewMsg().From(p.From); err != nil {
		return nil, fmt.Errorf("mail: AUTHD_MAIL_FROM %q is not an email address: %w", p.From, err)
	}
	s.from = p.From
	if p.TLSConfig != nil {
		s.tls = p.TLSConfig.Clone()
	} else {
		s.tls = &tls.Config{}
	}
	s.tls.ServerName = s.host
	if s.tls.MinVersion < tls.VersionTLS12 {
		s.tls.MinVersion = tls.VersionTLS12
	}
	if s.tpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	return s, nil
}

// Deliver renders m and hands it to the SMTP server. It returns nil once the
// server accepted the message (250 after DATA), and returns when ctx ends at
// the latest, whatever the server does. An error wrapping
// auth.ErrUndeliverable means retrying cannot help: a message that is not
// an email, an unknown template, a missing data key, a bad recipient, or a
// 5xx reply to the message itself (MAIL, RCPT, DATA). Everything else is
// retryable: network errors, timeouts, 4xx replies, and failures before
// the message (TLS, authentication: a configuration the operator can fix
// while the Courier retries).
func (s *Sender) Deliver(ctx context.Context, m auth.Message) error {
	err := s.deliver(ctx, m)
	outcome := "accepted"
	switch {
	case errors.Is(err, auth.ErrUndeliverable):
		outcome = "undeliverable"
	case err != nil:
		outcome = "retryable"
	}
	// Only what is safe to log: never the recipient, the data or the error
	// text (which may quote a recipient).
	s.logger.LogAttrs(ctx, slog.LevelDebug, "smtp delivery",
		slog.String("channel", string(auth.ChannelEmail)),
		slog.String("template", m.Template),
		slog.String("outcome", outcome))
	return err
}

func (s *Sender) deliver(ctx context.Context, m auth.Message) error {
	if m.Channel != auth.ChannelEmail {
		return fmt.Errorf("mail: channel %q: %w", m.Channel, auth.ErrUndeliverable)
	}
	msg, err := s.message(m)
	if err != nil {
		return err
	}

	// go-mail leaves a connection open when the greeting or EHLO fails:
	// every connection of this delivery is closed when it ends.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTLSConfig(s.tls),
		gomail.WithoutNoop(),
		gomail.WithDialContextFunc(s.dialer(ctx, &conns)),
		// Bounds go-mail's own deadlines; ctx is the real limit (see dialer).
		gomail.WithTimeout(time.Minute),
	}
	switch {
	case s.implicit:
		// The dialer returns a TLS connection; opportunistic then finds
		// it encrypted and does not ask for STARTTLS.
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSOpportunistic))
	case s.user != "" && !s.loopback:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSOpportunistic))
	}
	if s.user != "" {
		opts = append(opts, gomail.WithSMTPAuthCustom(&chooseAuth{user: s.user, pass: s.pass, host: s.host, loopback: s.loopback}))
	} else {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthNoAuth))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("mail: client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(ctx, err)
	}
	return nil
}

// message builds the email of m, or returns an error wrapping
// auth.ErrUndeliverable.
func (s *Sender) message(m auth.Message) (*gomail.Msg, error) {
	r, err := s.tpl.render(m.Template, m.Data)
	if err != nil {
		return nil, err
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return nil, fmt.Errorf("mail: from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("mail: recipient is not an email address: %w", auth.ErrUndeliverable)
	}
	msg.Subject(r.subject)
	msg.SetDateWithValue(s.now())
	if m.IdempotencyKey != "" {
		msg.SetMessageIDWithValue(s.messageID(m.IdempotencyKey))
	} else {
		msg.SetMessageID()
	}
	msg.SetBodyString(gomail.TypeTextPlain, r.text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.html)
	return msg, nil
}

// messageID is the same for every attempt of one message, so a receiver
// may recognise a duplicate; it does not reveal the idempotency key.
func (s *Sender) messageID(key string) string {
	sum := sha256.Sum256([]byte(key))
	domain := s.host
	if at := strings.LastIndexByte(s.from, '@'); at >= 0 {
		domain = strings.TrimRight(s.from[at+1:], "> ")
	}
	return hex.EncodeToString(sum[:16]) + "@" + domain
}

// dialer returns the dial function of one delivery: every connection it
// makes gives up when ctx ends, even in the middle of a read, and go-mail
// cannot push its deadline past ctx's.
func (s *Sender) dialer(ctx context.Context, conns *[]net.Conn) gomail.DialContextFunc {
	return func(dctx context.Context, network, addr string) (net.Conn, error) {
		if s.dialAddr != "" {
			addr = s.dialAddr
		}
		var d net.Dialer
		raw, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := &ctxConn{Conn: raw, ctx: ctx}
		_ = c.SetDeadline(time.Time{})
		stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
		c.stop = stop
		*conns = append(*conns, c)
		if !s.implicit {
			return c, nil
		}
		tc := tls.Client(c, s.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = c.Close()
			return nil, err
		}
		return tc, nil
	}
}

// ctxConn clamps every deadline to its context's: go-mail sets its own
// deadlines (now + timeout) on the connection during the exchange.
type ctxConn struct {
	net.Conn
	ctx  context.Context
	stop func() bool
}

func (c *ctxConn) clamp(t time.Time) time.Time {
	if c.ctx.Err() != nil {
		return time.Unix(1, 0)
	}
	if d, ok := c.ctx.Deadline(); ok && (t.IsZero() || d.Before(t)) {
		return d
	}
	return t
}

func (c *ctxConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *ctxConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *ctxConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }

func (c *ctxConn) Close() error {
	if c.stop != nil {
		c.stop()
	}
	return c.Conn.Close()
}

// classify wraps a go-mail error: auth.ErrUndeliverable for a 5xx reply to
// the message itself, retryable otherwise. The result names the SMTP reply
// but never the message.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("mail: smtp: %w (%w)", ctx.Err(), err)
	}
	// The connection's deadline is ctx's: its timeout may come a moment
	// before ctx's own timer.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("mail: smtp: %w (%w)", context.DeadlineExceeded, err)
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		switch se.Reason {
		case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
			if code := se.ErrorCode(); code >= 500 && code < 600 {
				return fmt.Errorf("mail: smtp refused the message (%d): %w: %w", code, auth.ErrUndeliverable, err)
			}
		}
		return fmt.Errorf("mail: smtp: %w", err)
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		// Before the message: greeting, EHLO, STARTTLS, AUTH.
		return fmt.Errorf("mail: smtp session (%d): %w", te.Code, err)
	}
	return fmt.Errorf("mail: smtp: %w", err)
}

// chooseAuth picks the strongest mechanism the server offers and refuses
// to send a password in clear unless the server is on loopback.
type chooseAuth struct {
	user, pass, host string
	loopback         bool
	chosen           gosmtp.Auth
}

func (a *chooseAuth) Start(server *gosmtp.ServerInfo) (string, []byte, error) {
	offered := map[string]bool{}
	for _, m := range server.Auth {
		offered[strings.ToUpper(m)] = true
	}
	switch {
	case offered["SCRAM-SHA-256"]:
		a.chosen = gosmtp.ScramSHA256Auth(a.user, a.pass)
	case offered["SCRAM-SHA-1"]:
		a.chosen = gosmtp.ScramSHA1Auth(a.user, a.pass)
	case !server.TLS && !a.loopback:
		return "", nil, errors.New("mail: refusing to send credentials without TLS")
	case offered["PLAIN"]:
		a.chosen = gosmtp.PlainAuth("", a.user, a.pass, a.host, a.loopback)
	case offered["LOGIN"]:
		a.chosen = gosmtp.LoginAuth(a.user, a.pass, a.host, a.loopback)
	default:
		return "", nil, fmt.Errorf("mail: no supported auth mechanism among %v", server.Auth)
	}
	return a.chosen.Start(server)
}

func (a *chooseAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.chosen.Next(fromServer, more)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
