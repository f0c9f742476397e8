package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/authtest"
	"github.com/authd/authd/internal/postgres/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openT opens a Store on dbURL and closes it when the test ends (before the
// schema is dropped: cleanups run last-registered first).
func openT(t testing.TB, dbURL string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dbURL, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreSuite(t *testing.T) {
	t.Parallel()
	pgtest.BaseURL(t)
	authtest.RunStoreSuite(t, func(t *testing.T) authtest.Stores { return openT(t, pgtest.SchemaURL(t)) })
	authtest.RunResetSuite(t, func(t *testing.T) authtest.ResetStores { return openT(t, pgtest.SchemaURL(t)) })
}

// A second Open of a migrated schema (a restart, another instance) works and
// sees the data.
func TestOpenTwice(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.SchemaURL(t)
	a := openT(t, dbURL)
	if err := a.CreateUser(t.Context(), &auth.User{ID: "u1", Email: "ada@example.com", PasswordHash: "h"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	b := openT(t, dbURL)
	if got, err := b.UserByEmail(t.Context(), "ada@example.com"); err != nil || got.ID != "u1" {
		t.Fatalf("second store: %+v, %v", got, err)
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// Instances starting together on a fresh schema all succeed and migrate once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.SchemaURL(t)
	const n = 2
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dbURL, time.Now, slog.New(slog.DiscardHandler)) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open #%d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	var applied int
	if err := stores[0].pool.QueryRow(t.Context(),
		`SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Errorf("migration 1 recorded %d times, want 1", applied)
	}
}

func TestMissingSchema(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.BaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "authd_t_does_not_exist")
	u.RawQuery = q.Encode()
	if s, err := Open(t.Context(), u.String(), time.Now, slog.New(slog.DiscardHandler)); err == nil {
		s.Close()
		t.Fatal("Open with a missing schema succeeded")
	}
}

// An unreachable database is a 503, not a 500. Needs no database.
func TestUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now
	_, err = Open(t.Context(), "postgres://authd:secret-password@"+addr+"/authd?connect_timeout=5", time.Now, slog.New(slog.DiscardHandler))
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("Open: %v, want ErrUnavailable", err)
	}
	if s := err.Error(); strings.Contains(s, "secret-password") {
		t.Errorf("error leaks the password: %s", s)
	}
}

func TestDeadlineIsUnavailable(t *testing.T) {
	t.Parallel()
	s := openT(t, pgtest.SchemaURL(t))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := s.pool.Exec(ctx, `SELECT pg_sleep(5)`)
	if err == nil {
		t.Fatal("pg_sleep finished before the deadline")
	}
	if err := opErr("sleep", err); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("opErr = %v, want ErrUnavailable", err)
	}
}

func TestUnavailableClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{&pgconn.PgError{Code: "08006"}, true}, // connection_failure
		{&pgconn.PgError{Code: "53300"}, true}, // too_many_connections
		{&pgconn.PgError{Code: "57P01"}, true}, // admin_shutdown
		{&pgconn.PgError{Code: "57014"}, true}, // query_canceled (statement_timeout)
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "42P01"}, false},
		{pgx.ErrNoRows, false},
		{context.Canceled, false},
		{errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := unavailable(tt.err); got != tt.want {
			t.Errorf("unavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func BenchmarkStore(b *testing.B) {
	s := openT(b, pgtest.SchemaURL(b))
	authtest.RunStoreBenchmarks(b, s)
}

func BenchmarkRegistration(b *testing.B) {
	s := openT(b, pgtest.SchemaURL(b))
	authtest.RunRegistrationBenchmarks(b, s)
}
