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
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/password"
	"github.com/authd/authd/internal/throttle"
)

// ErrInvalidResetToken: a reset token that is malformed, unknown, expired or
// already spent. The transport answers it as an invalid field.
var ErrInvalidResetToken = errors.New("account: reset token invalid, expired or already used")

// PasswordStore is what the password flows need of the accounts store.
type PasswordStore interface {
	UserByEmail(ctx context.Context, email string) (*auth.User, error)
	UserByID(ctx context.Context, id string) (*auth.User, error)
	PasswordReset(ctx context.Context, hash []byte, now time.Time) (*auth.PasswordReset, error)
	ResetPassword(ctx context.Context, hash []byte, passwordHash string, now time.Time) (string, error)
	// InTx runs the writes that queue a message in one transaction with
	// the message. Its Tx must also be an auth.PasswordTx.
	InTx(ctx context.Context, fn func(tx auth.Tx) error) error
}

// PasswordThrottle is the per-account login throttle as the password flows
// use it: a change checks the current password like a login, a reset clears
// the account's count.
type PasswordThrottle interface {
	Throttle
	Clear(ctx context.Context, email, clientKey string) error
}

// Revoker ends a user's sessions (session.Manager).
type Revoker interface {
	// RevokeUser revokes every session of userID but keepSID ("" keeps none)
	// and moves the user's device generation on.
	RevokeUser(ctx context.Context, userID, keepSID string) error
}

// PasswordParams are the settings of the password flows. Zero fields take
// the defaults.
type PasswordParams struct {
	// PublicURL is where users reach authd (AUTHD_PUBLIC_URL): the reset
	// link is PublicURL + ResetPath + "?token=…", never built from a request.
	PublicURL string
	// ResetTTL is how long a reset token lives (default 30 min).
	ResetTTL time.Duration
	// SendLimit reset emails go to one address per SendWindow at most
	// (defaults 5 an hour); past it a forgot request sends nothing.
	SendLimit  int
	SendWindow time.Duration
	// HashKey keys the digests of addresses in the state store's keys
	// (like the throttle's); empty: plain SHA-256.
	HashKey []byte
	// Workers handle forgot requests off the request path (default 2); at
	// most Queue requests wait for them (default 1024), more are dropped.
	Workers, Queue int
	// Timeout bounds the work of one forgot request (default 5 s).
	Timeout time.Duration
}

// ResetPath is the path of the reset link under the public URL: the page of
// the client that asks for the new password and posts it with the token to
// /v1/password/reset.
const ResetPath = "/reset-password"

func (p PasswordParams) withDefaults() PasswordParams {
	if p.ResetTTL <= 0 {
		p.ResetTTL = 30 * time.Minute
	}
	if p.SendLimit <= 0 {
		p.SendLimit = 5
	}
	if p.SendWindow <= 0 {
		p.SendWindow = time.Hour
	}
	if p.Workers <= 0 {
		p.Workers = 2
	}
	if p.Queue <= 0 {
		p.Queue = 1024
	}
	if p.Timeout <= 0 {
		p.Timeout = 5 * time.Second
	}
	return p
}

// Passwords is password forgot, reset and change. Forgot requests are
// handled off the request path by Run's workers, so that the answer to one
// costs the same whether or not the account exists. Its methods are safe
// for concurrent use.
type Passwords struct {
	store    PasswordStore
	state    auth.StateStore
	hasher   Hasher
	policy   password.Policy
	throttle PasswordThrottle
	sessions Revoker
	outbox   Waker // nil: the Courier's poll finds the rows
	p        PasswordParams
	now      func() time.Time
	logger   *slog.Logger
	link     *url.URL

	queue   chan string // normalised emails waiting for a worker
	forgots *prometheus.CounterVec
	resets  *prometheus.CounterVec
	changes *prometheus.CounterVec
}

// NewPasswords returns the password flows. Their metrics are registered on
// reg: authd_password_forgot_total{outcome}, authd_password_resets_total{outcome}
// and authd_password_changes_total{outcome}. outbox, when not nil, is woken
// after each committed message; nil leaves the rows to the Courier's next
// poll. The caller runs Run.
func NewPasswords(store PasswordStore, state auth.StateStore, hasher Hasher, policy password.Policy, thr PasswordThrottle, sessions Revoker,
	outbox Waker, p PasswordParams, now func() time.Time, logger *slog.Logger, reg prometheus.Registerer) (*Passwords, error) {
	if store == nil || state == nil || hasher == nil || thr == nil || sessions == nil {
		return nil, errors.New("account: passwords: a dependency is missing")
	}
	if now == nil || logger == nil || reg == nil {
		return nil, errors.New("account: passwords: clock, logger and registerer are required")
	}
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("account: passwords: %w", err)
	}
	link, err := url.Parse(p.PublicURL)
	if err != nil || link.Scheme == "" || link.Host == "" {
		return nil, fmt.Errorf("account: passwords: public URL %q: want an absolute URL", p.PublicURL)
	}
	link = link.JoinPath(ResetPath)
	p = p.withDefaults()
	s := &Passwords{
		store: store, state: state, hasher: hasher, policy: policy, throttle: thr, sessions: sessions, outbox: outbox,
		p: p, now: now, logger: logger, link: link,
		queue: make(chan string, p.Queue),
		forgots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_password_forgot_total",
			Help: "Forgot-password requests by outcome: queued (a reset email is in the outbox), unknown (no such account), limited (over the per-address send limit), dropped (the queue was full), error.",
		}, []string{"outcome"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_password_resets_total", Help: "Password resets by outcome.",
		}, []string{"outcome"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_password_changes_total", Help: "Password changes by outcome.",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"queued", "unknown", "limited", "dropped", "error"} {
		s.forgots.WithLabelValues(o)
	}
	for _, o := range []string{"success", "invalid_token", "weak_password", "overloaded", "error"} {
		s.resets.WithLabelValues(o)
	}
	for _, o := range []string{"success", "invalid", "weak_password", "throttled", "overloaded", "error"} {
		s.changes.WithLabelValues(o)
	}
	for _, c := range []prometheus.Collector{s.forgots, s.resets, s.changes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("account: passwords: register metrics: %w", err)
		}
	}
	return s, nil
}

// Admit fails fast, reserving nothing, with an error matching
// auth.ErrOverloaded when the hash pool would refuse a reset's or a
// change's hash now.
func (s *Passwords) Admit() error { return s.hasher.Admit() }

// Forgot takes a request for a reset email to a normalised, validated
// address and returns at once, without looking at the account: the work
// (the account lookup, the per-address send limit, the token and its email,
// written together) is done by Run's workers. It never fails and takes the
// same time whether or not the account exists; when the queue is full the
// request is dropped (and counted).
func (s *Passwords) Forgot(email string) {
	select {
	case s.queue <- email:
	default:
		s.forgots.WithLabelValues("dropped").Inc()
	}
}

// Run handles queued forgot requests with Workers goroutines until ctx ends.
// Then the requests still queued (each one answered 202) are handled before
// it returns, each within its own Timeout: the lifetime stops this part after
// the listeners, so no new request arrives, and waits for it only as long as
// the shutdown budget lasts.
func (s *Passwords) Run(ctx context.Context) error {
	// A request in hand is finished, not cut, when ctx ends: each is
	// bounded by its own Timeout.
	work := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range s.p.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					s.drain(work)
					return
				case email := <-s.queue:
					s.forgot(work, email)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// drain handles what is left in the queue, without waiting for more.
func (s *Passwords) drain(ctx context.Context) {
	for {
		select {
		case email := <-s.queue:
			s.forgot(ctx, email)
		default:
			return
		}
	}
}

func (s *Passwords) forgot(ctx context.Context, email string) {
	ctx, cancel := context.WithTimeout(ctx, s.p.Timeout)
	defer cancel()
	outcome, err := s.sendReset(ctx, email)
	if err != nil {
		s.logger.WarnContext(ctx, "password reset not queued", "err", err)
	}
	s.forgots.WithLabelValues(outcome).Inc()
}

// sendReset stores a reset token for email's account and queues its email,
// in one transaction, unless there is no account or the address is over
// its send limit.
func (s *Passwords) sendReset(ctx context.Context, email string) (string, error) {
	// The limit is per address, account or not: the answer to the client
	// is the same either way, and so is the state kept.
	n, err := s.state.Incr(ctx, s.sendKey(email), s.p.SendWindow)
	if err != nil {
		return "error", fmt.Errorf("account: forgot: send limit: %w", err)
	}
	if n > int64(s.p.SendLimit) {
		return "limited", nil
	}
	u, err := s.store.UserByEmail(ctx, email)
	if errors.Is(err, auth.ErrNotFound) {
		return "unknown", nil
	}
	if err != nil {
		return "error", fmt.Errorf("account: forgot: %w", err)
	}
	tok, hash, err := newResetToken()
	if err != nil {
		return "error", fmt.Errorf("account: forgot: %w", err)
	}
	now := s.now().UTC()
	link := *s.link
	link.RawQuery = url.Values{"token": {tok}}.Encode()
	m := auth.Message{
		Channel:  auth.ChannelEmail,
		To:       u.Email,
		Template: auth.TemplateResetPassword,
		Data:     map[string]string{"link": link.String(), "expires_in": s.p.ResetTTL.String()},
		// One email per token: the key names the token, not the secret.
		IdempotencyKey: "reset_password:" + hex.EncodeToString(hash[:16]),
	}
	r := auth.PasswordReset{Hash: hash, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.p.ResetTTL)}
	err = s.store.InTx(ctx, func(tx auth.Tx) error {
		ptx, ok := tx.(auth.PasswordTx)
		if !ok {
			return errors.New("the store's transaction cannot store password resets")
		}
		if err := ptx.CreatePasswordReset(ctx, r); err != nil {
			return err
		}
		return tx.Enqueue(ctx, m, now)
	})
	if err != nil {
		return "error", fmt.Errorf("account: forgot: %w", err)
	}
	s.wake()
	s.logger.InfoContext(ctx, "password reset queued", "user_id", u.ID)
	return "queued", nil
}

// wake tells the Courier that a committed transaction queued a message.
func (s *Passwords) wake() {
	if s.outbox != nil {
		s.outbox.Wake()
	}
}

// sendKey is the state store key that counts the reset emails sent to
// email: a digest, so that the store holds no address.
func (s *Passwords) sendKey(email string) string {
	return "pwreset:" + digest(s.p.HashKey, "reset address", email)
}

// digest returns 128 bits of a keyed (or, without a key, plain) SHA-256 of
// s in hex, in the namespace kind.
func digest(key []byte, kind, s string) string {
	h := sha256.New()
	if len(key) > 0 {
		h = hmac.New(sha256.New, key)
	}
	h.Write([]byte("authd " + kind + "\x00"))
	h.Write([]byte(s))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// resetTokenBytes is the entropy of a reset token: 256 bits.
const resetTokenBytes = 32

// newResetToken returns a random token in unpadded base64url and its SHA-256.
func newResetToken() (string, []byte, error) {
	b := make([]byte, resetTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("reset token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	return tok, h[:], nil
}

// parseResetToken returns the stored form of a token that may be one of
// ours, and false for anything else.
func parseResetToken(tok string) ([]byte, bool) {
	if b, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(b) != resetTokenBytes {
		return nil, false
	}
	h := sha256.Sum256([]byte(tok))
	return h[:], true
}

// Reset sets a new password with a reset token: the token is spent, the
// password stored (hashed on the pool), every session of the user revoked
// (which also kills every device token) and the account's login throttle
// cleared for clientKey. It returns ErrInvalidResetToken for a token that is
// malformed, unknown, expired or spent (also when a concurrent Reset spent
// it first); a *password.PolicyError when the password fails the policy;
// an error matching auth.ErrOverloaded when the pool is full. On any error
// the password is unchanged and the token still usable (unless spent).
func (s *Passwords) Reset(ctx context.Context, tok auth.Token, pw auth.Password, clientKey string) error {
	outcome, err := s.reset(ctx, tok, pw, clientKey)
	s.resets.WithLabelValues(outcome).Inc()
	return err
}

func (s *Passwords) reset(ctx context.Context, tok auth.Token, pw auth.Password, clientKey string) (string, error) {
	hash, ok := parseResetToken(string(tok))
	if !ok {
		return "invalid_token", ErrInvalidResetToken
	}
	r, err := s.store.PasswordReset(ctx, hash, s.now())
	if errors.Is(err, auth.ErrNotFound) {
		return "invalid_token", ErrInvalidResetToken
	}
	if err != nil {
		return "error", fmt.Errorf("account: reset: %w", err)
	}
	u, err := s.store.UserByID(ctx, r.UserID)
	if err != nil {
		return "error", fmt.Errorf("account: reset: %w", err)
	}
	if err := s.policy.Check(string(pw), u.Email); err != nil {
		return "weak_password", err
	}
	encoded, err := s.hasher.Hash(ctx, string(pw))
	if errors.Is(err, auth.ErrOverloaded) {
		return "overloaded", err
	}
	if err != nil {
		return "error", fmt.Errorf("account: reset: %w", err)
	}
	if _, err := s.store.ResetPassword(ctx, hash, encoded, s.now()); errors.Is(err, auth.ErrNotFound) {
		return "invalid_token", ErrInvalidResetToken
	} else if err != nil {
		return "error", fmt.Errorf("account: reset: %w", err)
	}
	// The password has changed: from here a failure is an error to report,
	// but the token is spent either way.
	if err := s.sessions.RevokeUser(ctx, u.ID, ""); err != nil {
		return "error", fmt.Errorf("account: reset: %w", err)
	}
	if err := s.throttle.Clear(ctx, u.Email, clientKey); err != nil {
		s.logger.WarnContext(ctx, "throttle not cleared after a password reset", "user_id", u.ID, "err", err)
	}
	s.logger.InfoContext(ctx, "password reset", "user_id", u.ID)
	return "success", nil
}

// ChangeRequest is a signed-in user's password change.
type ChangeRequest struct {
	UserID    string // the access token's subject
	SessionID string // the caller's session: kept, every other one revoked
	Current   auth.Password
	New       auth.Password
	ClientKey string // the client's throttle key, as for a login
}

// Change checks the current password (on the pool, held by the login
// throttle like a login), stores the new one, queues a password_changed
// email in the same transaction, and revokes every other session of the
// user (and every device token). It returns a *password.PolicyError, before
// any hashing, for a new password that fails the policy;
// auth.ErrInvalidCredentials for a wrong current password; a
// *ThrottledError when the throttle refuses; an error matching
// auth.ErrOverloaded when the pool is full.
func (s *Passwords) Change(ctx context.Context, req ChangeRequest) error {
	outcome, err := s.change(ctx, req)
	s.changes.WithLabelValues(outcome).Inc()
	return err
}

func (s *Passwords) change(ctx context.Context, req ChangeRequest) (string, error) {
	u, err := s.store.UserByID(ctx, req.UserID)
	if errors.Is(err, auth.ErrNotFound) {
		// A live access token of a deleted account.
		return "invalid", auth.ErrUnauthorized
	}
	if err != nil {
		return "error", fmt.Errorf("account: change password: %w", err)
	}
	if err := s.policy.Check(string(req.New), u.Email); err != nil {
		return "weak_password", err
	}
	if err := s.hasher.Admit(); err != nil {
		return "overloaded", err
	}
	attempt, wait, err := s.throttle.Check(ctx, u.Email, req.ClientKey, "")
	if err != nil {
		return outcomeOf(err), fmt.Errorf("account: change password: throttle: %w", err)
	}
	if wait > 0 {
		return "throttled", &ThrottledError{Wait: wait}
	}
	defer func() {
		if err := attempt.Release(ctx); err != nil {
			s.logger.WarnContext(ctx, "throttle release failed", "err", err)
		}
	}()
	match, _, err := s.hasher.Verify(ctx, string(req.Current), u.PasswordHash)
	if err != nil {
		return outcomeOf(err), fmt.Errorf("account: change password: verify: %w", err)
	}
	if !match {
		if err := attempt.Failure(ctx); err != nil {
			return "error", fmt.Errorf("account: change password: throttle: %w", err)
		}
		return "invalid", auth.ErrInvalidCredentials
	}
	if err := attempt.Success(ctx); err != nil {
		s.logger.WarnContext(ctx, "throttle reset failed", "user_id", u.ID, "err", err)
	}
	encoded, err := s.hasher.Hash(ctx, string(req.New))
	if err != nil {
		return outcomeOf(err), fmt.Errorf("account: change password: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "error", fmt.Errorf("account: change password: %w", err)
	}
	now := s.now().UTC()
	m := auth.Message{
		Channel: auth.ChannelEmail, To: u.Email, Template: auth.TemplatePasswordChanged,
		Data:           map[string]string{"changed_at": now.Format(time.RFC3339)},
		IdempotencyKey: "password_changed:" + id.String(),
	}
	err = s.store.InTx(ctx, func(tx auth.Tx) error {
		ptx, ok := tx.(auth.PasswordTx)
		if !ok {
			return errors.New("the store's transaction cannot change passwords")
		}
		if err := ptx.ChangePassword(ctx, u.ID, encoded, now); err != nil {
			return err
		}
		return tx.Enqueue(ctx, m, now)
	})
	if err != nil {
		return "error", fmt.Errorf("account: change password: %w", err)
	}
	s.wake()
	if err := s.sessions.RevokeUser(ctx, u.ID, req.SessionID); err != nil {
		return "error", fmt.Errorf("account: change password: %w", err)
	}
	s.logger.InfoContext(ctx, "password changed", "user_id", u.ID)
	return "success", nil
}

var _ PasswordThrottle = (*throttle.Throttle)(nil)
