package account_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/account"
	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/app/apptest"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/courier"
	"github.com/authd/authd/internal/password"
)

// provider hands every message it accepts to the test.
type provider chan auth.Message

func (p provider) Deliver(ctx context.Context, m auth.Message) error {
	select {
	case p <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resetToken asks for a reset of email's password and returns the token of
// the link delivered.
func resetToken(t *testing.T, svc *app.Service, sent provider, email string) auth.Token {
	t.Helper()
	svc.Passwords.Forgot(email)
	for {
		select {
		case m := <-sent:
			if m.Template != auth.TemplateResetPassword {
				continue
			}
			u, err := url.Parse(m.Data["link"])
			if err != nil {
				t.Fatal(err)
			}
			// Marked sent before the test moves the clock: a jump past the
			// Courier's lease of an attempt still finishing would make the
			// email due again, and a later call would read this one twice.
			deadline := time.Now().Add(10 * time.Second)
			for {
				n, err := svc.DB.PendingMessages(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d messages still pending after delivery", n)
				}
				time.Sleep(5 * time.Millisecond)
			}
			return auth.Token(u.Query().Get("token"))
		case <-time.After(10 * time.Second):
			t.Fatal("no reset email delivered within 10s")
		}
	}
}

// TestResetTokenLifetime: a reset token works for 30 minutes, on the
// service's clock, and not a moment longer.
func TestResetTokenLifetime(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(time.Now())
	sent := make(provider, 10)
	svc := apptest.Build(t, apptest.Config(t), slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		app.WithPasswordParams(password.TestParams()), app.WithClock(clock.Now),
		app.WithSenders(courier.Senders{Email: sent, SMS: sent}))
	if _, err := svc.Accounts.Register(t.Context(), "ada@example.com", pw); err != nil {
		t.Fatal(err)
	}
	late := resetToken(t, svc, sent, "ada@example.com")
	clock.Advance(30 * time.Minute)
	if err := svc.Passwords.Reset(t.Context(), late, "a brand new passphrase", "c"); !errors.Is(err, account.ErrInvalidResetToken) {
		t.Fatalf("reset after 30 min: %v, want ErrInvalidResetToken", err)
	}
	onTime := resetToken(t, svc, sent, "ada@example.com")
	clock.Advance(30*time.Minute - time.Second)
	if err := svc.Passwords.Reset(t.Context(), onTime, "a brand new passphrase", "c"); err != nil {
		t.Fatalf("reset within 30 min: %v", err)
	}
}
