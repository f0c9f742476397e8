package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
)

// TestWriteUnderForeignLockStopsAtDeadline: a write waiting for the write
// lock that another process holds gives up at its context's deadline (the
// request deadline), not after busy_timeout, with auth.ErrUnavailable.
func TestWriteUnderForeignLockStopsAtDeadline(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "authd.db")
	s, err := Open(t.Context(), path, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	other, err := sql.Open("sqlite", "file:"+path) // as another process would
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.ExecContext(context.Background(), "ROLLBACK") })

	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	began := time.Now()
	err = s.RevokeSession(ctx, "no-such-session", time.Now())
	if took := time.Since(began); took > deadline+time.Second || took >= busyTimeout {
		t.Errorf("the write returned after %v, want about the deadline %v (busy_timeout is %v)", took, deadline, busyTimeout)
	}
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("err = %v, want auth.ErrUnavailable", err)
	}
}
