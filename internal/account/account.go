// Package account is registration and password login: the orchestration of
// the hasher (the Forge), the accounts store, the per-account throttle (the
// Guardian), the session service and the notifier (the Courier). It holds no
// transport concerns; internal/httpapi calls it.
package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/session"
)

// Hasher hashes and verifies passwords on the bounded pool.
type Hasher interface {
	// Admit fails fast with an error matching auth.ErrOverloaded when a job
	// submitted now would be refused; it reserves nothing.
	Admit() error
	Hash(ctx context.Context, password string) (string, error)
	Verify(ctx context.Context, password, encoded string) (match, needsRehash bool, err error)
	VerifyDummy(ctx context.Context, password string) error
}

// Throttle counts failed logins per account and per (account, client).
type Throttle interface {
	Check(ctx context.Context, email, clientKey string) (time.Duration, error)
	Failure(ctx context.Context, email, clientKey string) error
	Success(ctx context.Context, email, clientKey string) error
}

// Sessions starts a session and hands out its first token pair.
type Sessions interface {
	Start(ctx context.Context, userID string, amr []string) (session.Pair, error)
}

// Notifier takes messages off the request path (the Courier).
type Notifier interface {
	// Welcome announces a new account to its owner. It must not block on delivery.
	Welcome(ctx context.Context, u *auth.User) error
}

// Service is registration and login. Its methods are safe for concurrent use.
type Service struct {
	users    auth.UserStore
	hasher   Hasher
	throttle Throttle
	sessions Sessions
	notifier Notifier
	logger   *slog.Logger
	now      func() time.Time

	logins         *prometheus.CounterVec
	registrations  *prometheus.CounterVec
	accountRejects prometheus.Counter
	// The overloaded series, looked up once: under overload they count
	// most requests.
	loginsOverloaded, registrationsOverloaded prometheus.Counter
}

// NewService returns a Service. Its metrics are registered on reg:
// authd_logins_total, authd_registrations_total, and the
// authd_ratelimit_rejections_total{scope="account"} series, counted when the
// throttle refuses a login (the family is shared with the per-client
// limiter, which counts scope="ip").
func NewService(users auth.UserStore, hasher Hasher, throttle Throttle, sessions Sessions, notifier Notifier,
	now func() time.Time, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if users == nil || hasher == nil || throttle == nil || sessions == nil || notifier == nil {
		return nil, errors.New("account: a dependency is missing")
	}
	if now == nil || logger == nil || reg == nil {
		return nil, errors.New("account: clock, logger and registerer are required")
	}
	s := &Service{
		users: users, hasher: hasher, throttle: throttle, sessions: sessions, notifier: notifier,
		logger: logger, now: now,
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_logins_total", Help: "Password logins by outcome.",
		}, []string{"outcome"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_registrations_total", Help: "Registrations by outcome.",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"success", "invalid", "mfa_required", "throttled", "overloaded"} {
		s.logins.WithLabelValues(o)
	}
	for _, o := range []string{"created", "email_taken", "overloaded", "error"} {
		s.registrations.WithLabelValues(o)
	}
	s.loginsOverloaded = s.logins.WithLabelValues("overloaded")
	s.registrationsOverloaded = s.registrations.WithLabelValues("overloaded")
	for _, c := range []prometheus.Collector{s.logins, s.registrations} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("account: register metrics: %w", err)
		}
	}
	rejections, err := registerShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authd_ratelimit_rejections_total",
		Help: "Requests refused by a rate limit, by scope: ip (per client address) or account (per-account login throttle).",
	}, []string{"scope"}))
	if err != nil {
		return nil, fmt.Errorf("account: register metrics: %w", err)
	}
	s.accountRejects = rejections.WithLabelValues("account")
	return s, nil
}

// registerShared registers c on reg, or returns the collector already
// registered there under the same description: the rejections family is
// shared with the per-client limiter.
func registerShared(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return c, err
}

// ThrottledError is a login refused by the per-account throttle. It matches
// auth.ErrRateLimited and says when to come back.
type ThrottledError struct{ Wait time.Duration }

func (e *ThrottledError) Error() string             { return "account: login throttled" }
func (e *ThrottledError) Is(target error) bool      { return target == auth.ErrRateLimited }
func (e *ThrottledError) RetryAfter() time.Duration { return e.Wait }

// AdmitLogin returns at once, reserving nothing, the error matching
// auth.ErrOverloaded that Login would return because the hash pool is full,
// and counts it as an overloaded login; otherwise nil. The transport calls it
// before it reads the request, so that under overload a refusal costs no
// decoding, no limiter or throttle lookup and no database read. Login checks
// admission again itself. Safe for concurrent use.
func (s *Service) AdmitLogin() error {
	if err := s.hasher.Admit(); err != nil {
		s.loginsOverloaded.Inc()
		return err
	}
	return nil
}

// AdmitRegister is AdmitLogin for Register: it counts a refusal as an
// overloaded registration.
func (s *Service) AdmitRegister() error {
	if err := s.hasher.Admit(); err != nil {
		s.registrationsOverloaded.Inc()
		return err
	}
	return nil
}

// Register creates an account for a normalised, validated email and a
// password that passed the policy. It returns auth.ErrEmailTaken when the
// email is registered, and an error matching auth.ErrOverloaded when the
// hash pool is full.
func (s *Service) Register(ctx context.Context, email string, password auth.Password) (*auth.User, error) {
	u, err := s.register(ctx, email, password)
	switch {
	case err == nil:
		s.registrations.WithLabelValues("created").Inc()
	case errors.Is(err, auth.ErrEmailTaken):
		s.registrations.WithLabelValues("email_taken").Inc()
	case errors.Is(err, auth.ErrOverloaded):
		s.registrations.WithLabelValues("overloaded").Inc()
	default:
		s.registrations.WithLabelValues("error").Inc()
	}
	return u, err
}

func (s *Service) register(ctx context.Context, email string, password auth.Password) (*auth.User, error) {
	if err := s.hasher.Admit(); err != nil {
		return nil, err
	}
	// 409 is part of the contract, so checking first leaks nothing new and
	// spares a hash for the common duplicate.
	if _, err := s.users.UserByEmail(ctx, email); err == nil {
		return nil, auth.ErrEmailTaken
	} else if !errors.Is(err, auth.ErrNotFound) {
		return nil, fmt.Errorf("account: register: %w", err)
	}
	hash, err := s.hasher.Hash(ctx, string(password))
	if err != nil {
		return nil, fmt.Errorf("account: register: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("account: register: new id: %w", err)
	}
	now := s.now().UTC()
	u := &auth.User{ID: id.String(), Email: email, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := s.users.CreateUser(ctx, u); err != nil {
		return nil, fmt.Errorf("account: register: %w", err)
	}
	// The account exists: a failure to queue the email must not undo it.
	if err := s.notifier.Welcome(ctx, u); err != nil {
		s.logger.WarnContext(ctx, "welcome email not queued", "user_id", u.ID, "err", err)
	}
	return u, nil
}

// Login checks an email and password. On success it returns the new
// session's token pair. Unknown email and wrong password both return
// auth.ErrInvalidCredentials after the same hashing work; a throttled account
// returns a *ThrottledError before any hashing; a full pool returns an error
// matching auth.ErrOverloaded before any database work.
func (s *Service) Login(ctx context.Context, email string, password auth.Password, clientKey string) (session.Pair, error) {
	pair, outcome, err := s.login(ctx, email, password, clientKey)
	s.logins.WithLabelValues(outcome).Inc()
	return pair, err
}

func (s *Service) login(ctx context.Context, email string, password auth.Password, clientKey string) (session.Pair, string, error) {
	var none session.Pair
	if err := s.hasher.Admit(); err != nil {
		return none, "overloaded", err
	}
	wait, err := s.throttle.Check(ctx, email, clientKey)
	if err != nil {
		return none, "invalid", fmt.Errorf("account: login: throttle: %w", err)
	}
	if wait > 0 {
		s.accountRejects.Inc()
		return none, "throttled", &ThrottledError{Wait: wait}
	}

	u, err := s.users.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, auth.ErrNotFound) {
		return none, "invalid", fmt.Errorf("account: login: %w", err)
	}
	var match, rehash bool
	if u == nil {
		err = s.hasher.VerifyDummy(ctx, string(password))
	} else {
		match, rehash, err = s.hasher.Verify(ctx, string(password), u.PasswordHash)
	}
	if err != nil {
		if errors.Is(err, auth.ErrOverloaded) {
			return none, "overloaded", err
		}
		return none, "invalid", fmt.Errorf("account: login: verify: %w", err)
	}
	if !match {
		if err := s.throttle.Failure(ctx, email, clientKey); err != nil {
			return none, "invalid", fmt.Errorf("account: login: throttle: %w", err)
		}
		return none, "invalid", auth.ErrInvalidCredentials
	}

	if err := s.throttle.Success(ctx, email, clientKey); err != nil {
		s.logger.WarnContext(ctx, "throttle reset failed", "user_id", u.ID, "err", err)
	}
	if rehash {
		s.upgradeHash(ctx, u, password)
	}
	pair, err := s.sessions.Start(ctx, u.ID, []string{"pwd"})
	if err != nil {
		return none, "invalid", fmt.Errorf("account: login: %w", err)
	}
	return pair, "success", nil
}

// upgradeHash re-hashes a password stored with weaker parameters (or an
// imported bcrypt hash) with the current ones. It is best effort: a full pool
// or a store error leaves the old hash, which still verifies, and the login
// goes on.
func (s *Service) upgradeHash(ctx context.Context, u *auth.User, password auth.Password) {
	hash, err := s.hasher.Hash(ctx, string(password))
	if err != nil {
		s.logger.InfoContext(ctx, "password rehash skipped", "user_id", u.ID, "err", err)
		return
	}
	if err := s.users.UpdatePasswordHash(ctx, u.ID, hash, s.now().UTC()); err != nil {
		s.logger.WarnContext(ctx, "password rehash not stored", "user_id", u.ID, "err", err)
		return
	}
	s.logger.InfoContext(ctx, "password hash upgraded", "user_id", u.ID)
}

// User returns the account with this id.
func (s *Service) User(ctx context.Context, id string) (*auth.User, error) {
	return s.users.UserByID(ctx, id)
}
