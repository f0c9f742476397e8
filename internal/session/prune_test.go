package session

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/clocktest"
)

func TestPruneDeletesOnlyExpiredSessions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		old := e.start(t, uid)
		oldSID := e.authOK(t, old.AccessToken).SID
		e.clock.Advance(e.m.p.RefreshTTL / 2)
		live := e.start(t, uid)
		liveSID := e.authOK(t, live.AccessToken).SID
		e.clock.Advance(e.m.p.RefreshTTL/2 + time.Second)

		n, err := e.m.Prune(t.Context())
		if err != nil || n != 1 {
			t.Fatalf("Prune = %d, %v; want the one expired session", n, err)
		}
		if _, err := e.db.SessionByID(t.Context(), oldSID); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("expired session still stored: %v", err)
		}
		if _, err := e.db.SessionByID(t.Context(), liveSID); err != nil {
			t.Errorf("live session pruned: %v", err)
		}
		if _, err := e.m.Refresh(t.Context(), live.RefreshToken); err != nil {
			t.Errorf("refresh of the live session after pruning: %v", err)
		}
		if _, err := e.m.Refresh(t.Context(), old.RefreshToken); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("refresh of the pruned session = %v, want ErrUnauthorized", err)
		}
	})
}

func TestRestoreRevocationsAfterStateLoss(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		p := e.start(t, uid)
		other := e.start(t, uid)
		c := e.authOK(t, p.AccessToken)
		if err := e.m.Logout(t.Context(), c, false); err != nil {
			t.Fatal(err)
		}
		// The state store forgets everything (a restart of in-process state,
		// a Redis without persistence): the logged-out token would pass.
		keys := []string{jtiKey(uid, c.ID), sidKey(uid, c.SID), cutoffKey(uid)}
		if err := e.state.Delete(t.Context(), keys...); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.Authenticate(t.Context(), p.AccessToken); err != nil {
			t.Fatalf("precondition: with the state lost the token passes, got %v", err)
		}
		n, err := e.m.RestoreRevocations(t.Context())
		if err != nil || n != 1 {
			t.Fatalf("RestoreRevocations = %d, %v; want 1", n, err)
		}
		if _, err := e.m.Authenticate(t.Context(), p.AccessToken); !errors.Is(err, auth.ErrTokenRevoked) {
			t.Errorf("logged-out token after restore: %v, want ErrTokenRevoked", err)
		}
		e.authOK(t, other.AccessToken)
		// Long after, nothing is left to restore: every token has expired.
		e.clock.Advance(e.m.revocationTTL() + time.Second)
		if n, err := e.m.RestoreRevocations(t.Context()); err != nil || n != 0 {
			t.Errorf("RestoreRevocations later = %d, %v; want 0", n, err)
		}
	})
}

// TestPrunerRunsAndStops runs the pruner part with a short period: it
// deletes the expired session on its own and returns nil once its context
// ends (goleak checks nothing is left running).
func TestPrunerRunsAndStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t), statetest.Memory(t, time.Now), clocktest.New(time.Now()))
	if _, err := NewPruner(e.m, PrunerParams{Every: -time.Second}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewPruner accepted a negative period")
	}
	pr, err := NewPruner(e.m, PrunerParams{Every: time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	uid := e.user(t)
	sid := e.authOK(t, e.start(t, uid).AccessToken).SID
	e.clock.Advance(e.m.p.RefreshTTL + time.Second)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- pr.Run(ctx) }()
	// Wait for the pruner goroutine (the session is already expired),
	// polling with a pause and a bound.
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := e.db.SessionByID(t.Context(), sid); errors.Is(err, auth.ErrNotFound) {
			break
		}
		select {
		case <-poll.C:
		case <-deadline:
			t.Fatal("the pruner did not delete the expired session")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after cancel, want nil", err)
	}
}
