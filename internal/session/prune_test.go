package session

import (
	"errors"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
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
