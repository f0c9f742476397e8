package postgres

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/postgres/pgtest"
)

// TestEveryCallIsBounded: with the users table locked by another session, a
// lookup made without any deadline of its own, and a second one waiting for
// the pool's only connection, both fail with auth.ErrUnavailable once the
// Store's timeout has passed, and PostgreSQL no longer runs the first (pgx
// cancelled it on the server). The pool serves again once the lock is gone.
func TestEveryCallIsBounded(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	dbURL := pgtest.SchemaURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1")
	q.Set("application_name", "authd-bound-test")
	u.RawQuery = q.Encode()
	s, err := Open(t.Context(), u.String(), time.Now, slog.New(slog.DiscardHandler), WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	locker, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locker.Close(context.Background()) })
	tx, err := locker.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for i := range 2 { // the second waits for the one connection
		wg.Go(func() {
			began := time.Now()
			_, err := s.UserByEmail(context.Background(), "nobody@example.com")
			took := time.Since(began)
			if !errors.Is(err, auth.ErrUnavailable) {
				t.Errorf("call %d under a held lock: err = %v, want auth.ErrUnavailable", i, err)
			}
			if took < timeout || took > timeout+time.Second {
				t.Errorf("call %d returned after %v, want the timeout %v (+ at most 1 s)", i, took, timeout)
			}
		})
	}
	wg.Wait()

	// The statement was cancelled on the server, not left waiting for the
	// lock. (Asked on a connection of its own: a transaction sees one
	// snapshot of pg_stat_activity.)
	watcher, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watcher.Close(context.Background()) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting int
		if err := watcher.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'authd-bound-test' AND state = 'active'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d statements of the store still run on the server 5 s after their deadline", waiting)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByEmail(context.Background(), "nobody@example.com"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("after the lock: err = %v, want auth.ErrNotFound", err)
	}
}

func TestWithTimeoutMustBePositive(t *testing.T) {
	t.Parallel()
	if s, err := Open(t.Context(), pgtest.BaseURL(t), time.Now, slog.New(slog.DiscardHandler), WithTimeout(0)); err == nil {
		s.Close()
		t.Fatal("Open with a zero timeout succeeded")
	}
}
