// Package account is registration, password login and email verification:
// the orchestration of the hasher (the Forge), the accounts store, the
// per-account throttle (the Guardian), the session service and the Courier
// (through the outbox). It holds no transport concerns; internal/httpapi
// calls it.
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
	"github.com/authd/authd/internal/device"
	"github.com/authd/authd/internal/password"
	"github.com/authd/authd/internal/session"
	"github.com/authd/authd/internal/throttle"
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

// Throttle counts failed logins per account and per (account, client), or
// per (account, device) for a login with a device token. An admitted
// attempt must end in exactly one of its Success, Failure or Release.
type Throttle interface {
	Check(ctx context.Context, email, clientKey, device string) (*throttle.Attempt, time.Duration, error)
}

// Devices issues and checks device tokens (device.Tokens).
type Devices interface {
	// Issue returns a token for the user's device generation gen; device
	// is the id of a token being renewed, or "" for a new device.
	Issue(userID string, gen int64, device string) string
	// Parse returns a live token's claims (an error for any other input).
	Parse(token string) (device.Claims, error)
}

// Sessions starts a session and hands out its first token pair.
type Sessions interface {
	Start(ctx context.Context, userID string, amr []string) (session.Pair, error)
}

// Users is the accounts store as registration and login use it: a
// registration and its verification email commit in one transaction.
type Users interface {
	auth.UserStore
	auth.Transactor
}

// Verifications queues the verification email of a new account inside the
// registration's transaction (Emails).
type Verifications interface {
	QueueVerification(ctx context.Context, tx auth.Tx, u *auth.User, now time.Time) error
	// Queued is called after the transaction committed.
	Queued()
}

// Service is registration and login. Its methods are safe for concurrent use.
type Service struct {
	users    Users
	hasher   Hasher
	policy   password.Policy
	throttle Throttle
	devices  Devices
	sessions Sessions
	emails   Verifications
	logger   *slog.Logger
	now      func() time.Time

	logins         *prometheus.CounterVec
	registrations  *prometheus.CounterVec
	accountRejects prometheus.Counter
	// The overloaded series, looked up once: under overload they count
	// most requests.
	loginsOverloaded, registrationsOverloaded prometheus.Counter
}

// NewService returns a Service that registers only passwords policy
// accepts. Its metrics are registered on reg: authd_logins_total,
// authd_registrations_total, and the
// authd_ratelimit_rejections_total{scope="account"} series, counted when the
// throttle refuses a login (the family is shared with the per-client
// limiter, which counts scope="ip").
func NewService(users Users, hasher Hasher, policy password.Policy, throttle Throttle, devices Devices, sessions Sessions, emails Verifications,
	now func() time.Time, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if users == nil || hasher == nil || throttle == nil || devices == nil || sessions == nil || emails == nil {
		return nil, errors.New("account: a dependency is missing")
	}
	if now == nil || logger == nil || reg == nil {
		return nil, errors.New("account: clock, logger and registerer are required")
	}
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	s := &Service{
		users: users, hasher: hasher, policy: policy, throttle: throttle, devices: devices, sessions: sessions, emails: emails,
		logger: logger, now: now,
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_logins_total", Help: "Password logins by outcome.",
		}, []string{"outcome"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_registrations_total", Help: "Registrations by outcome.",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"success", "invalid", "mfa_required", "throttled", "overloaded", "error", "cancelled"} {
		s.logins.WithLabelValues(o)
	}
	for _, o := range []string{"created", "email_taken", "weak_password", "overloaded", "error"} {
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

// Register creates an account for a normalised, validated email and queues
// its verification email in the same transaction. It returns
// a *password.PolicyError, before any other work, when the password does not
// pass the policy (which includes not containing the email);
// auth.ErrEmailTaken when the email is registered; and an error matching
// auth.ErrOverloaded when the hash pool is full.
func (s *Service) Register(ctx context.Context, email string, pw auth.Password) (*auth.User, error) {
	u, err := s.register(ctx, email, pw)
	var pe *password.PolicyError
	switch {
	case err == nil:
		s.registrations.WithLabelValues("created").Inc()
	case errors.As(err, &pe):
		s.registrations.WithLabelValues("weak_password").Inc()
	case errors.Is(err, auth.ErrEmailTaken):
		s.registrations.WithLabelValues("email_taken").Inc()
	case errors.Is(err, auth.ErrOverloaded):
		s.registrations.WithLabelValues("overloaded").Inc()
	default:
		s.registrations.WithLabelValues("error").Inc()
	}
	return u, err
}

func (s *Service) register(ctx context.Context, email string, pw auth.Password) (*auth.User, error) {
	if err := s.policy.Check(string(pw), email); err != nil {
		return nil, err
	}
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
	hash, err := s.hasher.Hash(ctx, string(pw))
	if err != nil {
		return nil, fmt.Errorf("account: register: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("account: register: new id: %w", err)
	}
	now := s.now().UTC()
	u := &auth.User{ID: id.String(), Email: email, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	// The account and its verification email (in the outbox) commit
	// together: a 201 means the email will be delivered, even if this
	// instance dies right after answering.
	err = s.users.InTx(ctx, func(tx auth.Tx) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		return s.emails.QueueVerification(ctx, tx, u, now)
	})
	if err != nil {
		return nil, fmt.Errorf("account: register: %w", err)
	}
	s.emails.Queued()
	return u, nil
}

// LoginResult is what a successful login gives the client.
type LoginResult struct {
	session.Pair
	// DeviceToken names this client as a known device of the account: a
	// later login that presents it is throttled by that device's own
	// failures only (see internal/device). It renews the token presented,
	// if that was valid, and is a new device's otherwise.
	DeviceToken string
}

// Login checks an email and password. On success it returns the new
// session's token pair and a device token. Unknown email and wrong password
// both return auth.ErrInvalidCredentials after the same hashing work; a
// throttled account returns a *ThrottledError before any hashing; a full
// pool returns an error matching auth.ErrOverloaded before any database work.
//
// deviceToken is the one a previous login returned, or "". When it is a
// live token of this account (and no "logout all" has happened since), the
// throttle holds the attempt by that device's counts only, not by the
// account's: an attacker's failures on the account do not lock the owner's
// known devices out. Any other value is treated as no token.
func (s *Service) Login(ctx context.Context, email string, password auth.Password, clientKey, deviceToken string) (LoginResult, error) {
	res, outcome, err := s.login(ctx, email, password, clientKey, deviceToken)
	if outcome == "error" && errors.Is(ctx.Err(), context.Canceled) {
		// The client went away (the pool skips its job, a query is cut
		// short): neither a wrong password nor a dependency failing. A
		// request deadline that ran out stays "error": a dependency was slow.
		outcome = "cancelled"
	}
	s.logins.WithLabelValues(outcome).Inc()
	return res, err
}

func (s *Service) login(ctx context.Context, email string, password auth.Password, clientKey, deviceToken string) (LoginResult, string, error) {
	var none LoginResult
	if err := s.hasher.Admit(); err != nil {
		return none, "overloaded", err
	}
	u, looked, device, err := s.knownDevice(ctx, email, deviceToken)
	if err != nil {
		return none, "error", fmt.Errorf("account: login: %w", err)
	}
	attempt, wait, err := s.throttle.Check(ctx, email, clientKey, device)
	if err != nil {
		return none, outcomeOf(err), fmt.Errorf("account: login: throttle: %w", err)
	}
	if wait > 0 {
		s.accountRejects.Inc()
		return none, "throttled", &ThrottledError{Wait: wait}
	}
	// Whatever ends this login before its password is judged (the pool
	// refuses, the client leaves, the store fails) gives the slot back; after
	// Success or Failure this does nothing.
	defer func() {
		if err := attempt.Release(ctx); err != nil {
			s.logger.WarnContext(ctx, "throttle release failed", "err", err)
		}
	}()

	if !looked {
		u, err = s.users.UserByEmail(ctx, email)
		if err != nil && !errors.Is(err, auth.ErrNotFound) {
			return none, "error", fmt.Errorf("account: login: %w", err)
		}
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
		return none, "error", fmt.Errorf("account: login: verify: %w", err)
	}
	if !match {
		if err := attempt.Failure(ctx); err != nil {
			return none, "error", fmt.Errorf("account: login: throttle: %w", err)
		}
		return none, "invalid", auth.ErrInvalidCredentials
	}

	if err := attempt.Success(ctx); err != nil {
		s.logger.WarnContext(ctx, "throttle reset failed", "user_id", u.ID, "err", err)
	}
	if rehash {
		s.upgradeHash(ctx, u, password)
	}
	pair, err := s.sessions.Start(ctx, u.ID, []string{"pwd"})
	if err != nil {
		return none, "error", fmt.Errorf("account: login: %w", err)
	}
	return LoginResult{Pair: pair, DeviceToken: s.devices.Issue(u.ID, u.DeviceGeneration, device)}, "success", nil
}

// knownDevice returns the device id of deviceToken when it is a live token
// of email's account in its current device generation, and "" otherwise.
// Only a token whose signature holds costs a database read; its result is
// returned (looked: u is the account, nil when the email has none) so that
// the login does not read again.
func (s *Service) knownDevice(ctx context.Context, email, deviceToken string) (u *auth.User, looked bool, device string, err error) {
	if deviceToken == "" {
		return nil, false, "", nil
	}
	c, err := s.devices.Parse(deviceToken)
	if err != nil {
		return nil, false, "", nil // forged, expired, malformed: no token
	}
	u, err = s.users.UserByEmail(ctx, email)
	if errors.Is(err, auth.ErrNotFound) {
		return nil, true, "", nil
	}
	if err != nil {
		return nil, false, "", err
	}
	if u.ID != c.UserID || u.DeviceGeneration != c.Generation {
		return u, true, "", nil // another account's, or from before a logout all
	}
	return u, true, c.Device, nil
}

// outcomeOf labels a login that failed for err before its password was
// judged: an overload (the pool, or a state store at its cap) or a
// dependency's error.
func outcomeOf(err error) string {
	if errors.Is(err, auth.ErrOverloaded) {
		return "overloaded"
	}
	return "error"
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
