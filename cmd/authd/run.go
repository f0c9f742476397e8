package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/httpapi"
	"github.com/authd/authd/internal/redis"
)

var errUsage = errors.New("usage")

// run is the whole program: it parses the settings, builds every part,
// passes each its dependencies and owns their lifetimes. It returns when ctx
// is cancelled (SIGINT/SIGTERM) and everything has shut down, or on the first
// fatal error, after stopping whatever was built. It writes nothing to stdout
// but help text.
//
// On SIGTERM the service first drains for AUTHD_SHUTDOWN_DRAIN_DELAY
// (drain: /readyz answers 503, requests are still served). Then every
// long-lived part, which joined one app.Lifetime as it was built, stops in
// reverse order: readiness drains (/readyz answers 503), the public and
// admin listeners drain, the hash pool finishes its queue, the background
// parts (session pruner, key reload, sweepers) stop, Redis and the database
// close. All of it within AUTHD_SHUTDOWN_TIMEOUT.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "keys" {
		return runKeys(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := config.Parse(args, getenv, stdout)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)

	var life app.Lifetime
	err = serve(ctx, &life, cfg, getenv, logger)
	// A fresh deadline: ctx may be cancelled already.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := errors.Join(err, life.Stop(sctx)); err != nil {
		return err
	}
	logger.Info("authd stopped")
	return nil
}

// serve builds the service into life, listens, starts every part and returns
// when ctx ends or a part fails. The caller stops life whatever serve
// returns.
func serve(ctx context.Context, life *app.Lifetime, cfg *config.Config, getenv func(string) string, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return fmt.Errorf("register process collector: %w", err)
	}
	if cfg.RedisURL != "" {
		redis.RouteClientLogs(logger)
	}
	setMemoryLimit(cfg, getenv, logger)

	svc, err := app.Build(ctx, life, cfg, logger, reg)
	if err != nil {
		return err
	}
	admin := newHTTPServer(httpapi.NewAdmin(reg), logger)
	admin.WriteTimeout = 60 * time.Second // pprof profiles take 30 s by default
	adminAddr, err := listen(life, "admin listener", cfg.AdminAddr, "AUTHD_ADMIN_ADDR", admin, nil)
	if err != nil {
		return err
	}
	public := newHTTPServer(svc.API, logger)
	// The API refuses a head over httpapi.MaxHeaderBytes itself, with a
	// problem+json 431; a head too large for the server to read at all gets
	// the same answer from httpapi.Listener instead of net/http's text/plain.
	public.MaxHeaderBytes = httpapi.ServerMaxHeaderBytes
	httpAddr, err := listen(life, "public listener", cfg.HTTPAddr, "AUTHD_HTTP_ADDR", public,
		func(ln net.Listener) net.Listener { return httpapi.Listener(ln, time.Now) })
	if err != nil {
		return err
	}
	// Added last, stopped first: /readyz answers 503 while the listeners
	// drain. A step between the two (a pause for load balancers to notice)
	// is a part added just before this one.
	life.Add(app.Part{Name: "readiness", Close: func(context.Context) error { svc.Ready.Drain(); return nil }})

	life.Start(ctx)
	logger.Info("authd started", "http_addr", httpAddr.String(), "admin_addr", adminAddr.String(),
		"public_url", cfg.PublicURL, "issuer", cfg.JWTIssuer, "audience", cfg.JWTAudience,
		"database", svc.DBKind, "state", svc.State)
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "drain_delay", cfg.ShutdownDrainDelay.String(), "budget", cfg.ShutdownTimeout.String())
		drain(cfg.ShutdownDrainDelay, svc.Ready, logger)
	case <-life.Failed(): // no drain: the service is no longer whole
		logger.Info("shutting down", "budget", cfg.ShutdownTimeout.String())
	}
	return nil
}

// listen opens addr, wrapped by wrap unless it is nil, and adds to life a
// part running srv on it, which Close shuts down gracefully; it returns the
// address listened on.
func listen(life *app.Lifetime, name, addr, setting string, srv *http.Server, wrap func(net.Listener) net.Listener) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s (%s): %w", addr, setting, err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	life.Add(app.Part{
		Name: name,
		Run: func(context.Context) error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
			return nil
		},
		Close: func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			// Shutdown closes only what Serve took: a listener that never
			// served (a later step of start-up failed) is closed here.
			if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
				err = errors.Join(err, cerr)
			}
			return err
		},
	})
	return ln.Addr(), nil
}

func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func newLogger(cfg *config.Config, stderr io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if isTerminal(stderr) {
			format = "text"
		}
	}
	if strings.EqualFold(format, "text") {
		return slog.New(slog.NewTextHandler(stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(stderr, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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
