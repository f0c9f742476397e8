package account

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
)

// EmailStore is what email verification needs of the accounts database.
type EmailStore interface {
	auth.UserStore
	auth.Transactor
	auth.EmailVerificationStore
}

// Waker is told when a committed transaction has queued a message (the
// Courier's Wake).
type Waker interface{ Wake() }

// EmailParams are the settings of email verification. Zero fields take the
// defaults.
type EmailParams struct {
	// PublicURL is where users reach authd (AUTHD_PUBLIC_URL): the link is
	// PublicURL + VerifyPath + "?token=…", never built from a request.
	PublicURL string
	// TTL is how long a verification token lives (default 24 h).
	TTL time.Duration
	// ResendLimit resends are allowed per address per ResendWindow
	// (defaults 5 an hour); past it Resend returns a *ResendLimitedError.
	ResendLimit  int
	ResendWindow time.Duration
	// HashKey keys the digests of addresses in the state store's keys;
	// empty: plain SHA-256.
	HashKey []byte
}

// VerifyPath is the path of the verification link under the public URL:
// the page of the client that posts the token to /v1/email/verify.
const VerifyPath = "/verify-email"

func (p EmailParams) withDefaults() EmailParams {
	if p.TTL <= 0 {
		p.TTL = 24 * time.Hour
	}
	if p.ResendLimit <= 0 {
		p.ResendLimit = 5
	}
	if p.ResendWindow <= 0 {
		p.ResendWindow = time.Hour
	}
	return p
}

// Emails is email verification: the token and email that registration
// queues in its transaction, the verification itself, and resends. Its
// methods are safe for concurrent use.
type Emails struct {
	store   EmailStore
	state   auth.StateStore
	courier Waker
	p       EmailParams
	link    *url.URL
	now     func() time.Time
	logger  *slog.Logger

	verifications *prometheus.CounterVec
	resends       *prometheus.CounterVec
}

// NewEmails returns email verification. Its metrics are registered on reg:
// authd_email_verifications_total{outcome} and authd_email_resends_total{outcome}.
func NewEmails(store EmailStore, state auth.StateStore, courier Waker, p EmailParams, now func() time.Time, logger *slog.Logger, reg prometheus.Registerer) (*Emails, error) {
	if store == nil || state == nil || courier == nil {
		return nil, errors.New("account: emails: a dependency is missing")
	}
	if now == nil || logger == nil || reg == nil {
		return nil, errors.New("account: emails: clock, logger and registerer are required")
	}
	link, err := url.Parse(p.PublicURL)
	if err != nil || link.Scheme == "" || link.Host == "" {
		return nil, fmt.Errorf("account: emails: public URL %q: want an absolute URL", p.PublicURL)
	}
	e := &Emails{
		store: store, state: state, courier: courier, p: p.withDefaults(), link: link.JoinPath(VerifyPath),
		now: now, logger: logger,
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_email_verifications_total", Help: "Email verifications by outcome: verified, invalid (unknown, spent or expired token), error.",
		}, []string{"outcome"}),
		resends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_email_resends_total", Help: "Verification email resends by outcome: queued, already_verified, limited, error.",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"verified", "invalid", "error"} {
		e.verifications.WithLabelValues(o)
	}
	for _, o := range []string{"queued", "already_verified", "limited", "error"} {
		e.resends.WithLabelValues(o)
	}
	for _, c := range []prometheus.Collector{e.verifications, e.resends} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("account: emails: register metrics: %w", err)
		}
	}
	return e, nil
}

// QueueVerification stores a new verification token for u and queues its
// email, inside tx: both commit with the caller's change (a registration)
// or neither does. The caller calls Queued after the commit.
func (e *Emails) QueueVerification(ctx context.Context, tx auth.Tx, u *auth.User, now time.Time) error {
	etx, ok := tx.(auth.EmailTx)
	if !ok {
		return errors.New("account: the store's transaction cannot store email verifications")
	}
	tok, hash, err := newVerifyToken()
	if err != nil {
		return err
	}
	if err := etx.CreateEmailVerification(ctx, auth.EmailVerification{
		Hash: hash[:], UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(e.p.TTL),
	}); err != nil {
		return err
	}
	link := *e.link
	link.RawQuery = url.Values{"token": {tok}}.Encode()
	return tx.Enqueue(ctx, auth.Message{
		Channel:  auth.ChannelEmail,
		To:       u.Email,
		Template: auth.TemplateVerifyEmail,
		Data:     map[string]string{"link": link.String(), "expires_in": e.p.TTL.String()},
		// One email per token: the key names the token, not the secret.
		IdempotencyKey: "verify_email:" + hex.EncodeToString(hash[:16]),
	}, now)
}

// Queued tells the Courier that a committed transaction queued an email.
func (e *Emails) Queued() { e.courier.Wake() }

// newVerifyToken returns a random token (256 bits, base64url) and its SHA-256.
func newVerifyToken() (string, [sha256.Size]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", [sha256.Size]byte{}, fmt.Errorf("account: verification token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, sha256.Sum256([]byte(tok)), nil
}

// ErrInvalidToken: a verification token that is unknown, already used or
// expired. The three are not told apart.
var ErrInvalidToken = errors.New("account: the token is unknown, used or expired")

// Verify spends the verification token and marks its user's email
// verified. It returns ErrInvalidToken (which matches auth.ErrNotFound) for
// a token that is unknown, already used or expired.
func (e *Emails) Verify(ctx context.Context, token string) error {
	hash := sha256.Sum256([]byte(token))
	userID, err := e.store.VerifyEmail(ctx, hash[:], e.now().UTC())
	switch {
	case errors.Is(err, auth.ErrNotFound):
		e.verifications.WithLabelValues("invalid").Inc()
		return fmt.Errorf("%w (%w)", ErrInvalidToken, auth.ErrNotFound)
	case err != nil:
		e.verifications.WithLabelValues("error").Inc()
		return fmt.Errorf("account: verify email: %w", err)
	}
	e.verifications.WithLabelValues("verified").Inc()
	e.logger.InfoContext(ctx, "email verified", "user_id", userID)
	return nil
}

// ResendLimitedError is a resend refused by the per-address limit. It
// matches auth.ErrRateLimited and says when to come back.
type ResendLimitedError struct{ Wait time.Duration }

func (e *ResendLimitedError) Error() string {
	return "account: verification email resend limit reached"
}
func (e *ResendLimitedError) Is(target error) bool      { return target == auth.ErrRateLimited }
func (e *ResendLimitedError) RetryAfter() time.Duration { return e.Wait }

// Resend queues a new verification email for the user, whose earlier
// tokens stay valid until they expire. It does nothing for an address
// already verified (and says so with sent false), and returns a
// *ResendLimitedError past ResendLimit per address per ResendWindow.
func (e *Emails) Resend(ctx context.Context, userID string) (sent bool, err error) {
	u, err := e.store.UserByID(ctx, userID)
	if err != nil {
		e.resends.WithLabelValues("error").Inc()
		return false, fmt.Errorf("account: resend verification: %w", err)
	}
	if u.EmailVerified {
		e.resends.WithLabelValues("already_verified").Inc()
		return false, nil
	}
	now := e.now().UTC()
	// A fixed window per address: its index is part of the key, so the
	// answer can say exactly when the next window starts.
	win := now.UnixNano() / int64(e.p.ResendWindow)
	key := "email_resend:" + e.addressKey(u.Email) + ":" + strconv.FormatInt(win, 10)
	n, err := e.state.Incr(ctx, key, e.p.ResendWindow)
	if err != nil {
		e.resends.WithLabelValues("error").Inc()
		return false, fmt.Errorf("account: resend verification: send limit: %w", err)
	}
	if n > int64(e.p.ResendLimit) {
		e.resends.WithLabelValues("limited").Inc()
		next := time.Unix(0, (win+1)*int64(e.p.ResendWindow))
		return false, &ResendLimitedError{Wait: next.Sub(now)}
	}
	err = e.store.InTx(ctx, func(tx auth.Tx) error { return e.QueueVerification(ctx, tx, u, now) })
	if err != nil {
		e.resends.WithLabelValues("error").Inc()
		return false, fmt.Errorf("account: resend verification: %w", err)
	}
	e.Queued()
	e.resends.WithLabelValues("queued").Inc()
	return true, nil
}

// addressKey is the digest of an address in the state store's keys.
func (e *Emails) addressKey(email string) string {
	if len(e.p.HashKey) > 0 {
		m := hmac.New(sha256.New, e.p.HashKey)
		m.Write([]byte(email))
		return hex.EncodeToString(m.Sum(nil)[:16])
	}
	h := sha256.Sum256([]byte(email))
	return hex.EncodeToString(h[:16])
}
