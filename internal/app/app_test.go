package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
	"github.com/authd/authd/internal/clocktest"
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

// TestOneClock builds the service on a fake clock and checks that what it
// issues and stores carries that clock's time, not the machine's.
func TestOneClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	clock := clocktest.New(at)
	svc := apptest.Build(t, apptest.Config(t), nil, nil, app.WithClock(clock.Now))
	ctx := t.Context()
	u, err := svc.Accounts.Register(ctx, "clock@example.com", "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !u.CreatedAt.Equal(at) {
		t.Errorf("user created at %v, want the fake clock's %v", u.CreatedAt, at)
	}
	pair, err := svc.Accounts.Login(ctx, "clock@example.com", "correct horse battery staple", "192.0.2.1/32", "")
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Iat int64 }
	if err := json.Unmarshal(payload(t, pair.AccessToken), &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Iat != at.Unix() {
		t.Errorf("token iat %v, want the fake clock's %v", time.Unix(claims.Iat, 0).UTC(), at)
	}
}

// payload returns the decoded claims part of a compact JWS.
func payload(t *testing.T, jws string) []byte {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", jws)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
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

// TestStopHandlesQueuedForgots: forgot-password requests already answered
// 202 but still queued when shutdown begins are handled before the
// lifetime stops (their reset emails reach the outbox), not dropped.
func TestStopHandlesQueuedForgots(t *testing.T) {
	reg := prometheus.NewRegistry()
	var life app.Lifetime
	svc, err := app.Build(t.Context(), &life, apptest.Config(t), slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	const users = 5
	for i := range users {
		if _, err := svc.Accounts.Register(t.Context(), "user"+string(rune('a'+i))+"@example.com", "correct horse battery staple"); err != nil {
			t.Fatal(err)
		}
	}
	life.Start(t.Context())
	for i := range users {
		svc.Passwords.Forgot("user" + string(rune('a'+i)) + "@example.com")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := life.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var queued float64
	outcomes := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "authd_password_forgot_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					outcomes[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if queued = outcomes["queued"]; queued != users {
		t.Errorf("%v of %d queued forgot requests were handled before the stop (outcomes %v)", queued, users, outcomes)
	}
}
