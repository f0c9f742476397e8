package sqlite

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/authtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openT(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open(%q, time.Now, slog.New(slog.DiscardHandler)): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStoreSuite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "authd.db") }},
		{"memory", func(*testing.T) string { return ":memory:" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			authtest.RunStoreSuite(t, func(t *testing.T) authtest.Stores { return openT(t, tt.path(t)) })
			authtest.RunResetSuite(t, func(t *testing.T) authtest.ResetStores { return openT(t, tt.path(t)) })
		})
	}
}

// A path with URI metacharacters is a plain file name, not a URI.
func TestOpenOddPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, filepath.Join(dir, "a?mode=ro#x%20.db"))
	if _, err := s.SecretOrCreate(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if m, err := filepath.Glob(filepath.Join(dir, "a?mode=ro#x%20.db")); err != nil || len(m) != 1 {
		t.Fatalf("database file not at the literal path: %v, %v", m, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "authd.db")
	s, err := Open(t.Context(), path, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	u := &auth.User{ID: "u1", Email: "ada@example.com", PasswordHash: "h"}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Migrations are already applied: the second Open only checks them.
	s = openT(t, path)
	if got, err := s.UserByEmail(t.Context(), "ada@example.com"); err != nil || got.ID != "u1" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}

// Processes starting together on a new file all open it.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "authd.db")
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), path, time.Now, slog.New(slog.DiscardHandler)) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open #%d: %v", i, errs[i])
			continue
		}
		if err := stores[i].Close(); err != nil {
			t.Errorf("Close #%d: %v", i, err)
		}
	}
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	s := openT(t, filepath.Join(t.TempDir(), "authd.db"))
	tests := []struct {
		pragma      string
		write, read string
	}{
		{"journal_mode", "wal", "wal"},
		{"synchronous", "2", "2"}, // FULL on the writer; readers never commit
		{"foreign_keys", "1", "1"},
		{"busy_timeout", "5000", "5000"},
		{"query_only", "0", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			for pool, want := range map[string]string{"write": tt.write, "read": tt.read} {
				db := s.write
				if pool == "read" {
					db = s.read
				}
				var got string
				if err := db.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
					t.Fatalf("%s: %v", pool, err)
				}
				if tt.pragma == "synchronous" && pool == "read" {
					continue // not set on readers, which never commit
				}
				if got != want {
					t.Errorf("%s pool: PRAGMA %s = %s, want %s", pool, tt.pragma, got, want)
				}
			}
		})
	}
}

// Two Stores on one file stand for two processes: BEGIN IMMEDIATE and the
// busy timeout still let exactly one rotation win.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "authd.db")
	a, b := openT(t, path), openT(t, path)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := a.CreateUser(t.Context(), &auth.User{ID: "u", Email: "u@example.com", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("first"))
	sess := &auth.Session{ID: "s", UserID: "u", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := b.CreateSession(t.Context(), sess, auth.RefreshToken{Hash: h[:], ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			next := sha256.Sum256(fmt.Appendf(nil, "next-%d", i))
			_, errs[i] = st.RotateRefreshToken(t.Context(), h[:], auth.RefreshToken{Hash: next[:], ExpiresAt: now.Add(time.Hour)}, now)
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, auth.ErrTokenReused):
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d rotations succeeded, want 1", wins)
	}
}

// A write that cannot get the write lock before its deadline is reported as
// the database being unavailable (503), not as an internal error.
func TestLockedIsUnavailable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "authd.db")
	holder, s := openT(t, path), openT(t, path)
	tx, err := holder.write.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = s.CreateUser(ctx, &auth.User{ID: "u", Email: "u@example.com", PasswordHash: "h"})
	if !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("CreateUser while locked: %v, want ErrUnavailable", err)
	}
}

func ExampleOpen() {
	ctx := context.Background()
	s, err := Open(ctx, ":memory:", time.Now, slog.New(slog.DiscardHandler)) // AUTHD_DATABASE_URL=sqlite::memory:
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	err = s.CreateUser(ctx, &auth.User{ID: "0190b8e4-5f1a-7c3e-9b1d-2a4f6c8e0a1b", Email: "ada@example.com", PasswordHash: "$argon2id$…"})
	fmt.Println(err)
	err = s.CreateUser(ctx, &auth.User{ID: "0190b8e4-5f1a-7c3e-9b1d-2a4f6c8e0a1c", Email: "ada@example.com", PasswordHash: "$argon2id$…"})
	fmt.Println(errors.Is(err, auth.ErrEmailTaken))
	// Output:
	// <nil>
	// true
}

func BenchmarkStore(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "authd.db"), time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	authtest.RunStoreBenchmarks(b, s)
}

func BenchmarkRegistration(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "authd.db"), time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	authtest.RunRegistrationBenchmarks(b, s)
}
