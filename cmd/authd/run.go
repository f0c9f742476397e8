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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/httpapi"
)

var errUsage = errors.New("usage")

// run is the whole program: it parses the settings, builds every part,
// passes each its dependencies and owns their lifetimes. It returns when ctx
// is cancelled (SIGINT/SIGTERM) and everything has shut down, or on the first
// fatal error. It writes nothing to stdout but help text.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "keys" {
		return runKeys(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := config.Parse(args, getenv, stdout)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	now := time.Now

	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return fmt.Errorf("register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return fmt.Errorf("register process collector: %w", err)
	}

	svc, err := build(ctx, cfg, logger, reg, getenv, now)
	if err != nil {
		return err
	}
	defer svc.close()

	publicLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s (AUTHD_HTTP_ADDR): %w", cfg.HTTPAddr, err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		publicLn.Close()
		return fmt.Errorf("listen %s (AUTHD_ADMIN_ADDR): %w", cfg.AdminAddr, err)
	}
	public := newHTTPServer(svc.api, logger)
	admin := newHTTPServer(httpapi.NewAdmin(reg), logger)
	admin.WriteTimeout = 60 * time.Second // pprof profiles take 30 s by default

	// Background workers live until the listeners have drained: requests in
	// flight still need them.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	bg, bgCtx := errgroup.WithContext(bgCtx)
	for _, w := range svc.workers {
		bg.Go(func() error { return w(bgCtx) })
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serve(public, publicLn) })
	g.Go(func() error { return serve(admin, adminLn) })
	logger.Info("authd started", "http_addr", publicLn.Addr().String(), "admin_addr", adminLn.Addr().String(),
		"database", svc.dbKind, "state", svc.state)

	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-bgCtx.Done(): // a background worker failed
		}
		logger.Info("shutting down", "budget", cfg.ShutdownTimeout.String())
		svc.ready.Drain()
		// A fresh deadline: ctx is already cancelled.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		errs := []error{public.Shutdown(sctx), admin.Shutdown(sctx)}
		// Then the hash pool (queued jobs finish or fail within the budget),
		// then the background workers; Redis and the database close last,
		// when run returns.
		errs = append(errs, svc.pool.Close(sctx))
		stopBackground()
		errs = append(errs, bg.Wait())
		return errors.Join(errs...)
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err != nil {
		return err
	}
	logger.Info("authd stopped")
	return nil
}

// serve runs srv on ln until Shutdown.
func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
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
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
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
