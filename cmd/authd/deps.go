package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/account"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/clientip"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/hashpool"
	"github.com/authd/authd/internal/httpapi"
	"github.com/authd/authd/internal/limiter"
	"github.com/authd/authd/internal/memstate"
	"github.com/authd/authd/internal/notify"
	"github.com/authd/authd/internal/password"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/redis"
	"github.com/authd/authd/internal/session"
	"github.com/authd/authd/internal/sqlite"
	"github.com/authd/authd/internal/throttle"
	"github.com/authd/authd/internal/token"
)

// accountsDB is what run needs of an accounts database.
type accountsDB interface {
	auth.UserStore
	auth.SessionStore
	auth.KeyStore
	Ping(context.Context) error
}

// service is every long-lived part, built and wired; run owns its lifetime.
type service struct {
	api     *httpapi.Server
	ready   *httpapi.Readiness
	dbKind  string
	state   string
	workers []func(context.Context) error // run until their context ends
	pool    *hashpool.Pool                // closed after the listeners drain
	cleanup []func()                      // closes, in reverse order, after the workers
}

func (s *service) close() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	s.cleanup = nil
}

// build opens the database (migrating it) and the state store, then builds
// every part on top and passes each only its own settings. On error whatever
// was opened is closed.
func build(ctx context.Context, cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer, getenv func(string) string, now func() time.Time) (_ *service, err error) {
	s := &service{}
	defer func() {
		if err != nil {
			if s.pool != nil {
				_ = s.pool.Close(context.WithoutCancel(ctx))
			}
			s.close()
		}
	}()

	db, kind, closeDB, err := openDatabase(ctx, cfg, logger, now)
	if err != nil {
		return nil, err
	}
	s.dbKind = kind
	s.cleanup = append(s.cleanup, closeDB)
	checks := []httpapi.Check{{Name: "database", Probe: db.Ping}}

	// Shared state and the per-client limiter: in process, or in Redis.
	limParams := limiter.Params{RPS: cfg.RateLimit.RPS, Burst: cfg.RateLimit.Burst}
	local := limiter.NewLocal(limParams, now, reg)
	s.workers = append(s.workers, local.Run)
	var (
		state auth.StateStore
		lim   limiter.Limiter = local.Limiter()
	)
	if cfg.RedisURL == "" {
		m := memstate.New(now)
		state, s.state = m, "memory"
		s.workers = append(s.workers, m.Run)
	} else {
		redis.RouteClientLogs(logger)
		c, err := redis.NewClient(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis (AUTHD_REDIS_URL): %w", err)
		}
		s.cleanup = append(s.cleanup, func() {
			if err := c.Close(); err != nil {
				logger.Warn("close redis", "err", err)
			}
		})
		st := redis.NewStore(c, cfg.RedisKeyPrefix)
		state, s.state = st, "redis"
		lim = limiter.NewRedis(c, cfg.RedisKeyPrefix+"rl:", limParams, local, logger)
		checks = append(checks, httpapi.Check{Name: "redis", Probe: st.Ping})
	}
	s.ready = httpapi.NewReadiness(logger, time.Second, checks...)

	secret, err := loadSecret(ctx, cfg, db, logger)
	if err != nil {
		return nil, err
	}

	// The Forge.
	setMemoryLimit(cfg, getenv, logger)
	s.pool, err = hashpool.New(hashpool.Config{Workers: cfg.Hash.Workers, Queue: cfg.Hash.Queue, MaxWait: cfg.Hash.MaxWait}, reg, now)
	if err != nil {
		return nil, fmt.Errorf("hash pool: %w", err)
	}
	hasher := forge{Hasher: password.NewHasher(s.pool, passwordParams(cfg)), pool: s.pool}

	// Tokens and sessions.
	ring, err := token.NewKeyring(ctx, db, secret, keyParams(cfg), now, logger)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	s.workers = append(s.workers, ring.Run)
	tp := token.Params{Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, AccessTTL: cfg.AccessTokenTTL}
	issuer, err := token.NewIssuer(ring, tp, now)
	if err != nil {
		return nil, fmt.Errorf("token issuer: %w", err)
	}
	verifier, err := token.NewVerifier(ring, tp, now)
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
	s.workers = append(s.workers, func(ctx context.Context) error {
		return sessions.RunPruner(ctx, sessionPruneEvery, logger)
	})

	// Registration and login, with the Guardian's per-account throttle.
	throttleKey, err := hkdf.Key(sha256.New, secret, nil, "authd throttle keys v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive throttle key: %w", err)
	}
	thr := throttle.New(state, throttle.Params{HashKey: throttleKey}, now)
	accounts, err := account.NewService(db, hasher, thr, sessions, notify.NewLog(logger, cfg.PublicURL),
		logger, reg, local.AccountRejections(), now)
	if err != nil {
		return nil, err
	}

	resolver := clientip.NewResolver(cfg.TrustedProxies)
	clientKey := func(r *http.Request) netip.Prefix { return clientip.Key(resolver.ClientIP(r)) }
	s.api, err = httpapi.NewServer(logger, reg, now, s.ready, resolver.ClientIP, clientKey, lim,
		accounts, db, sessions, ring, cfg.JWTIssuer, cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}
	return s, nil
}

// forge is the password hasher on the pool, with the pool's admission check.
type forge struct {
	*password.Hasher
	pool *hashpool.Pool
}

// Admit fails fast when the pool would refuse a job now.
func (f forge) Admit() error { return f.pool.Admit() }

// sessionPruneEvery is how often expired sessions and their refresh tokens
// are deleted from the database.
const sessionPruneEvery = time.Hour

func passwordParams(cfg *config.Config) password.Params {
	p := password.DefaultParams()
	p.Memory, p.Iterations, p.Parallelism = cfg.Argon2.MemoryKiB, cfg.Argon2.Iterations, cfg.Argon2.Parallelism
	return p
}

// setMemoryLimit sets the Go runtime's soft memory limit from the hash
// pool's size unless GOMEMLIMIT is set: each Argon2id call allocates its
// memory afresh, and without a limit the garbage collector lets the heap
// grow to twice the live set before collecting. With it, peak RSS stays near
// workers × Argon2 memory plus the rest of the service.
func setMemoryLimit(cfg *config.Config, getenv func(string) string, logger *slog.Logger) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	const base = 128 << 20 // the service without hashing, with room
	limit := int64(cfg.Hash.Workers)*int64(cfg.Argon2.MemoryKiB)*1024 + base
	debug.SetMemoryLimit(limit)
	logger.Info("memory limit set", "bytes", limit, "workers", cfg.Hash.Workers, "argon2_memory_kib", cfg.Argon2.MemoryKiB)
}

// openDatabase opens and migrates the accounts database named by
// AUTHD_DATABASE_URL. The caller calls closeDB when done.
func openDatabase(ctx context.Context, cfg *config.Config, logger *slog.Logger, now func() time.Time) (db accountsDB, kind string, closeDB func(), err error) {
	if path, ok := strings.CutPrefix(cfg.DatabaseURL, "sqlite:"); ok {
		s, err := sqlite.Open(ctx, path, sqlite.WithClock(now), sqlite.WithLogger(logger))
		if err != nil {
			return nil, "", nil, fmt.Errorf("open database (AUTHD_DATABASE_URL): %w", err)
		}
		return s, "sqlite", func() {
			if err := s.Close(); err != nil {
				logger.Warn("close database", "err", err)
			}
		}, nil
	}
	s, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.WithClock(now), postgres.WithLogger(logger))
	if err != nil {
		return nil, "", nil, fmt.Errorf("open database (AUTHD_DATABASE_URL): %w", err)
	}
	return s, "postgres", s.Close, nil
}
