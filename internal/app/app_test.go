package app_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/app/apptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBuildFailureMidwayLeaksNothing fails Build after the hash pool has
// started its workers (the account metrics are already registered) and
// checks that stopping the lifetime leaves no goroutine behind.
func TestBuildFailureMidwayLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "authd_logins_total", Help: "taken"}, []string{"outcome"}))
	var life app.Lifetime
	_, err := app.Build(t.Context(), &life, apptest.Config(t), slog.New(slog.DiscardHandler), reg)
	if err == nil || !strings.Contains(err.Error(), "account") {
		t.Fatalf("Build = %v, want the account metrics error", err)
	}
	if err := life.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestLifetimeStopsInReverse checks the order (Close, then the end of Run,
// last added first) and that a part failing on its own is reported.
func TestLifetimeStopsInReverse(t *testing.T) {
	var order []string
	var life app.Lifetime
	for _, name := range []string{"db", "worker", "pool", "listener"} {
		p := app.Part{Name: name}
		switch name {
		case "worker", "listener":
			p.Run = func(ctx context.Context) error {
				<-ctx.Done()
				order = append(order, name+" returned")
				return nil
			}
		}
		if name != "worker" {
			p.Close = func(context.Context) error { order = append(order, name+" closed"); return nil }
		}
		life.Add(p)
	}
	life.Start(t.Context())
	if err := life.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"listener closed", "listener returned", "pool closed", "worker returned", "db closed"}
	if !slices.Equal(order, want) {
		t.Errorf("stop order %q, want %q", order, want)
	}

	var failing app.Lifetime
	boom := errors.New("boom")
	failing.Add(app.Part{Name: "sweeper", Run: func(context.Context) error { return boom }})
	failing.Start(t.Context())
	select {
	case <-failing.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("Failed not closed after a part returned")
	}
	if err := failing.Stop(t.Context()); !errors.Is(err, boom) || !strings.Contains(err.Error(), "sweeper") {
		t.Errorf("Stop = %v, want the sweeper's error", err)
	}
}
