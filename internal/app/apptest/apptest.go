// Package apptest builds the whole service for tests through app.Build, the
// wiring main uses, with settings and fakes fit for a test.
package apptest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/password"
)

// Issuer is the issuer and public URL of a test service.
const Issuer = "http://authd.test"

// Config returns the default settings (as `authd` with an empty environment
// has them) with a small hash pool, an in-memory SQLite database, and Issuer
// as issuer and public URL. Tests change fields before Build.
func Config(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = "sqlite::memory:"
	cfg.Hash = config.Hash{Workers: 2, Queue: 64}
	cfg.JWTIssuer, cfg.PublicURL = Issuer, Issuer
	return cfg
}

// Build builds the service from cfg with cheap password hashes
// (password.TestParams) and the given options, starts its parts and stops
// them when the test ends. logger and reg may be nil: a discarding logger, a
// fresh registry.
func Build(t testing.TB, cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer, opts ...app.Option) *app.Service {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	life := &app.Lifetime{}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := life.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	opts = append([]app.Option{app.WithPasswordParams(password.TestParams())}, opts...)
	svc, err := app.Build(t.Context(), life, cfg, logger, reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	life.Start(t.Context())
	return svc
}

// Logs is a log sink that a test may read while the service writes to it.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer // mu guards b
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
