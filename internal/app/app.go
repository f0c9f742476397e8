// Package app is authd's wiring: Build makes every part of the service from
// the settings, passes each its dependencies and adds each long-lived part
// to the caller's Lifetime, in the order they stop in reverse. cmd/authd's
// run calls it, and so do the tests of the packages it wires (httpapi,
// account), so that they test the service main runs, with fakes (a clock, a
// database) passed as options.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/account"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/clientip"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/courier"
	"github.com/authd/authd/internal/device"
	"github.com/authd/authd/internal/hashpool"
	"github.com/authd/authd/internal/httpapi"
	"github.com/authd/authd/internal/limiter"
	"github.com/authd/authd/internal/mail"
	"github.com/authd/authd/internal/memstate"
	"github.com/authd/authd/internal/password"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/redis"
	"github.com/authd/authd/internal/session"
	"github.com/authd/authd/internal/sms"
	"github.com/authd/authd/internal/sqlite"
	"github.com/authd/authd/internal/throttle"
	"github.com/authd/authd/internal/token"
)

// Stores is what the service needs of an accounts database.
type Stores interface {
	auth.UserStore
	auth.SessionStore
	auth.KeyStore
	auth.OutboxStore // and auth.Transactor
	auth.EmailVerificationStore
	auth.ResetStore
	Ping(context.Context) error
}

// Service is the built service: what run serves and reports, and what tests
// reach into.
type Service struct {
	API      *httpapi.Server    // the public listener's handler
	Ready    *httpapi.Readiness // /readyz; drained first at shutdown
	Accounts *account.Service
	Pool     *hashpool.Pool
	DB       Stores
	DBKind   string // sqlite or postgres
	State    string // memory or redis

	// Courier delivers emails and SMS off the request path; Emails is
	// email verification.
	Courier *courier.Courier
	Emails  *account.Emails
	// Passwords is password forgot, reset and change.
	Passwords *account.Passwords
}

// Option changes how Build makes a part; tests use them for fakes.
type Option func(*options)

type options struct {
	now      func() time.Time
	db       Stores
	password *password.Params
	senders  *courier.Senders
}

// WithClock makes every part read time from now instead of time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithStores makes the service use db instead of opening
// cfg.DatabaseURL. The caller keeps owning db: Build neither migrates nor
// closes it.
func WithStores(db Stores) Option { return func(o *options) { o.db = db } }

// WithPasswordParams makes new password hashes with p instead of the
// configured Argon2 cost: tests pass password.TestParams for speed.
func WithPasswordParams(p password.Params) Option { return func(o *options) { o.password = &p } }

// WithSenders makes the Courier deliver through senders instead of the
// providers the settings choose (pickSenders): tests pass fakes that
// record, fail or hang.
func WithSenders(senders courier.Senders) Option { return func(o *options) { o.senders = &senders } }

// Build opens the database (migrating it) and the state store, then builds
// every part on top, passing each only its own settings, and adds each
// long-lived part to life as soon as it exists. On error life holds what was
// built so far: the caller stops life in every case, so that nothing leaks.
// Build starts no goroutine of its own; the hash pool's workers start with
// the pool and stop with its Close.
func Build(ctx context.Context, life *Lifetime, cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Service, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	now := o.now
	s := &Service{DB: o.db, DBKind: "given"}
	if s.DB == nil {
		var err error
		if s.DB, s.DBKind, err = openDatabase(ctx, life, cfg, now, logger); err != nil {
			return nil, err
		}
	}
	db := s.DB
	checks := []httpapi.Check{{Name: "database", Probe: db.Ping}}

	// Shared state and the per-client limiter: in process, or in Redis.
	limParams := limiter.Params{RPS: cfg.RateLimit.RPS, Burst: cfg.RateLimit.Burst}
	local, err := limiter.NewLocal(limParams, now, reg)
	if err != nil {
		return nil, fmt.Errorf("rate limiter: %w", err)
	}
	var (
		state    auth.StateStore
		thrState auth.StateStore // the throttle's: in process, capped apart from revocations
		lim      limiter.Limiter = local
	)
	if cfg.RedisURL == "" {
		m, err := memstate.New(memstate.Params{}, now)
		if err != nil {
			return nil, err
		}
		state, s.State = m, "memory"
		life.Add(Part{Name: "memstate sweeper", Run: m.Run})
		// The throttle's counts get a store of their own with a cap, so
		// that a spray of random emails can neither grow memory without
		// bound nor, at the cap, crowd out session revocations.
		t, err := memstate.New(memstate.Params{MaxKeys: throttleMaxKeys}, now)
		if err != nil {
			return nil, err
		}
		thrState = t
		life.Add(Part{Name: "throttle memstate sweeper", Run: t.Run})
	} else {
		c, err := redis.NewClient(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis (AUTHD_REDIS_URL): %w", err)
		}
		life.Add(Part{Name: "redis", Close: func(context.Context) error { return c.Close() }})
		st := redis.NewStore(c, cfg.RedisKeyPrefix)
		state, s.State = st, "redis"
		thrState = st
		if lim, err = limiter.NewRedis(c, local, cfg.RedisKeyPrefix+"rl:", limParams, logger); err != nil {
			return nil, fmt.Errorf("rate limiter: %w", err)
		}
		checks = append(checks, httpapi.Check{Name: "redis", Probe: st.Ping})
	}
	life.Add(Part{Name: "limiter sweeper", Run: local.Run})

	secret, err := loadSecret(ctx, cfg, db, logger)
	if err != nil {
		return nil, err
	}
	keys, err := deriveKeys(secret)
	if err != nil {
		return nil, err
	}

	// Tokens and sessions.
	ring, err := token.NewKeyring(ctx, db, keys.seal, keyParams(cfg), now, logger)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	life.Add(Part{Name: "signing key reload", Run: ring.Run})
	tp := token.Params{Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, AccessTTL: cfg.AccessTokenTTL}
	issuer, err := token.NewIssuer(ring, tp, now)
	if err != nil {
		return nil, fmt.Errorf("token issuer: %w", err)
	}
	verifier, err := token.NewVerifier(ring, tp, now, logger)
	if err != nil {
		return nil, fmt.Errorf("token verifier: %w", err)
	}
	sessions, err := session.NewManager(db, state, issuer, verifier,
		session.Params{AccessTTL: cfg.AccessTokenTTL, RefreshTTL: cfg.RefreshTokenTTL}, now, reg)
	if err != nil {
		return nil, err
	}
	// The database holds every revocation durably; the state store that
	// requests consult may have lost recent ones (in-process state after a
	// restart, a Redis without persistence).
	restored, err := sessions.RestoreRevocations(ctx)
	if err != nil {
		return nil, err
	}
	logger.Info("revocations restored", "sessions", restored)
	pruner, err := session.NewPruner(sessions, session.PrunerParams{}, logger)
	if err != nil {
		return nil, err
	}
	life.Add(Part{Name: "session pruner", Run: pruner.Run})

	// The Forge. The pool closes after the listeners have drained (they are
	// added after it) and before the background parts above stop.
	s.Pool, err = hashpool.New(hashpool.Params{Workers: cfg.Hash.Workers, Queue: cfg.Hash.Queue, MaxWait: cfg.Hash.MaxWait}, now, reg)
	if err != nil {
		return nil, fmt.Errorf("hash pool: %w", err)
	}
	life.Add(Part{Name: "hash pool", Close: s.Pool.Close})
	pp := passwordParams(cfg)
	if o.password != nil {
		pp = *o.password
	}
	hasher, err := password.NewHasher(s.Pool, pp)
	if err != nil {
		return nil, err
	}

	// Registration and login, with the Guardian's per-account throttle.
	thr, err := throttle.New(thrState, throttle.Params{BaseDelay: cfg.AccountThrottleBaseDelay, MaxDelay: cfg.AccountThrottleMaxDelay, HashKey: keys.throttle}, now)
	if err != nil {
		return nil, err
	}
	// The Courier: delivery off the request path, from the outbox that
	// registration writes in its transaction. It stops after the listeners
	// (added later) and before the database: attempts in progress finish
	// within the shutdown budget, undelivered rows wait for the next start.
	var senders courier.Senders
	if o.senders != nil {
		senders = *o.senders
	} else if senders, err = pickSenders(life, cfg.Notify, now, logger); err != nil {
		return nil, err
	}
	s.Courier, err = courier.New(courier.Params{Timeout: cfg.Notify.Timeout}, db, senders, now, logger, reg)
	if err != nil {
		return nil, err
	}
	life.Add(Part{Name: "courier", Run: s.Courier.Run, Close: s.Courier.Close})
	// Email verification; its resend limits share the throttle's capped
	// store and key.
	s.Emails, err = account.NewEmails(db, thrState, s.Courier,
		account.EmailParams{PublicURL: cfg.PublicURL, HashKey: keys.throttle}, now, logger, reg)
	if err != nil {
		return nil, err
	}
	// Device tokens (OWASP device cookies) let a known device past the
	// account-wide throttle.
	devices, err := device.New(keys.device, device.DefaultTTL, now)
	if err != nil {
		return nil, fmt.Errorf("device tokens: %w", err)
	}
	s.Accounts, err = account.NewService(db, hasher, password.Policy{MinLength: cfg.PasswordMinLength}, thr, devices, sessions, s.Emails, now, logger, reg)
	if err != nil {
		return nil, err
	}

	// Password forgot, reset and change. Forgot's work runs off the request
	// path; the send limits share the throttle's capped store and key. The
	// Courier is woken after each queued email.
	s.Passwords, err = account.NewPasswords(db, thrState, hasher, password.Policy{MinLength: cfg.PasswordMinLength}, thr, sessions, s.Courier,
		account.PasswordParams{PublicURL: cfg.PublicURL, HashKey: keys.throttle, Timeout: cfg.RequestTimeout}, now, logger, reg)
	if err != nil {
		return nil, err
	}
	life.Add(Part{Name: "password forgot workers", Run: s.Passwords.Run})

	if s.Ready, err = httpapi.NewReadiness(checks, time.Second, logger); err != nil {
		return nil, err
	}
	s.API, err = httpapi.NewServer(httpapi.Deps{
		Ready:    s.Ready,
		Clients:  clientip.NewResolver(cfg.TrustedProxies),
		Limiter:  lim,
		Accounts: s.Accounts,
		Users:    db,
		Sessions: sessions,
		Keys:     ring,
		Emails:   s.Emails,

		Passwords: s.Passwords,
	}, httpapi.Params{Issuer: cfg.JWTIssuer, PublicURL: cfg.PublicURL, RequestTimeout: cfg.RequestTimeout}, now, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}
	return s, nil
}

// pickSenders chooses each channel's provider from the settings (config
// has checked them together); a channel with none configured gets the log
// sender (courier.LogSender), and start-up says so once. SMS senders keep
// idle connections: they are closed at shutdown, after the Courier.
func pickSenders(life *Lifetime, n config.Notify, now func() time.Time, logger *slog.Logger) (courier.Senders, error) {
	var (
		senders courier.Senders
		logged  []string
	)
	if n.SMTPURL != "" {
		m, err := mail.NewSender(mail.Params{URL: n.SMTPURL, From: n.MailFrom}, now, logger)
		if err != nil {
			return senders, fmt.Errorf("email provider (AUTHD_SMTP_URL): %w", err)
		}
		senders.Email = m
	} else {
		logged = append(logged, "email")
	}
	switch {
	case n.SMSWebhookURL != "":
		w, err := sms.NewWebhook(sms.WebhookParams{URL: n.SMSWebhookURL, Token: n.SMSWebhookToken}, logger)
		if err != nil {
			return senders, fmt.Errorf("SMS provider (AUTHD_SMS_WEBHOOK_URL): %w", err)
		}
		life.Add(Part{Name: "sms webhook", Close: func(context.Context) error { return w.Close() }})
		senders.SMS = w
	case n.TwilioAccountSID != "":
		tw, err := sms.NewTwilio(sms.TwilioParams{AccountSID: n.TwilioAccountSID, AuthToken: n.TwilioAuthToken, From: n.TwilioFrom, BaseURL: n.TwilioBaseURL}, logger)
		if err != nil {
			return senders, fmt.Errorf("SMS provider (AUTHD_SMS_TWILIO_*): %w", err)
		}
		life.Add(Part{Name: "sms twilio", Close: func(context.Context) error { return tw.Close() }})
		senders.SMS = tw
	default:
		logged = append(logged, "SMS")
	}
	if len(logged) > 0 {
		log := courier.NewLogSender(logger)
		if senders.Email == nil {
			senders.Email = log
		}
		if senders.SMS == nil {
			senders.SMS = log
		}
		logger.Warn("courier: no provider is configured for "+strings.Join(logged, " and ")+": those messages are written to the log (without their links and codes), not sent",
			"channels", logged)
	}
	return senders, nil
}

// throttleMaxKeys caps the in-process throttle store at about 120 MiB
// (some 230 B an entry, docs/benchmarks.md). A spray of failed logins on
// random emails holds 2 entries per login for 15 minutes, so reaching the
// cap takes some 290 failed logins a second, sustained, more than one
// instance's hash pool checks at the default Argon2 parameters; at the cap
// new attempts are refused (503) and nothing held is dropped.
const throttleMaxKeys = 1 << 19

func passwordParams(cfg *config.Config) password.Params {
	p := password.DefaultParams()
	p.Memory, p.Iterations, p.Parallelism = cfg.Argon2.MemoryKiB, cfg.Argon2.Iterations, cfg.Argon2.Parallelism
	return p
}

func keyParams(cfg *config.Config) token.KeyParams {
	return token.KeyParams{AccessTTL: cfg.AccessTokenTTL, ReloadEvery: cfg.KeyReloadInterval}
}

// openDatabase opens and migrates the accounts database named by
// AUTHD_DATABASE_URL and adds it to life, to close last.
func openDatabase(ctx context.Context, life *Lifetime, cfg *config.Config, now func() time.Time, logger *slog.Logger) (Stores, string, error) {
	if path, ok := strings.CutPrefix(cfg.DatabaseURL, "sqlite:"); ok {
		s, err := sqlite.Open(ctx, path, now, logger)
		if err != nil {
			return nil, "", fmt.Errorf("open database (AUTHD_DATABASE_URL): %w", err)
		}
		life.Add(Part{Name: "database", Close: func(context.Context) error { return s.Close() }})
		return s, "sqlite", nil
	}
	s, err := postgres.Open(ctx, cfg.DatabaseURL, now, logger, postgres.WithTimeout(cfg.RequestTimeout))
	if err != nil {
		return nil, "", fmt.Errorf("open database (AUTHD_DATABASE_URL): %w", err)
	}
	life.Add(Part{Name: "database", Close: func(context.Context) error { return s.Close() }})
	return s, "postgres", nil
}

// RotateKey adds a new signing key to the database named by cfg and returns
// its kid; the database is closed before it returns. It checks everything
// before its one write: that an SQLite file exists, that the database already
// holds signing keys (authd creates the first one when it starts: none means
// a wrong AUTHD_DATABASE_URL), and that every stored key opens with the
// secret. It never generates a secret: without AUTHD_SECRET_KEY (which
// config requires with PostgreSQL) it uses the one an SQLite database holds.
func RotateKey(ctx context.Context, cfg *config.Config, logger *slog.Logger) (kid string, err error) {
	if path, ok := strings.CutPrefix(cfg.DatabaseURL, "sqlite:"); ok {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("keys rotate: database %s (AUTHD_DATABASE_URL): %w", path, err)
		}
	}
	var life Lifetime
	defer func() {
		if cerr := life.Stop(context.WithoutCancel(ctx)); err == nil {
			err = cerr
		}
	}()
	db, _, err := openDatabase(ctx, &life, cfg, time.Now, logger)
	if err != nil {
		return "", err
	}
	stored, err := db.SigningKeys(ctx)
	if err != nil {
		return "", fmt.Errorf("keys rotate: %w", err)
	}
	if len(stored) == 0 {
		return "", errors.New("keys rotate: the database holds no signing key to rotate: check AUTHD_DATABASE_URL (authd creates the first key when it starts)")
	}
	secret := []byte(cfg.SecretKey)
	if len(secret) == 0 {
		if secret, err = storedSecret(ctx, db); err != nil {
			return "", err
		}
	}
	keys, err := deriveKeys(secret)
	if err != nil {
		return "", err
	}
	// With keys stored, NewKeyring only opens them all: it writes nothing.
	ring, err := token.NewKeyring(ctx, db, keys.seal, keyParams(cfg), time.Now, logger)
	if err != nil {
		return "", fmt.Errorf("keys rotate: %w", err)
	}
	if kid, err = ring.Rotate(ctx); err != nil {
		return "", fmt.Errorf("keys rotate: %w", err)
	}
	return kid, nil
}
