package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/postgres/pgtest"
	"github.com/authd/authd/internal/sqlite"
)

var (
	secretA = strings.Repeat("a", 32)
	secretB = strings.Repeat("b", 32)
)

// generatedSecretName is where authd keeps a generated secret (SQLite only).
const generatedSecretName = "secret_key"

// TestPostgresWithoutSecretKeyExits2: a generated secret would sit in the
// database beside the signing keys it seals, so with PostgreSQL neither the
// server nor `keys rotate` starts without AUTHD_SECRET_KEY, and neither
// touches the database.
func TestPostgresWithoutSecretKeyExits2(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.SchemaURL(t)
	env := map[string]string{
		"AUTHD_DATABASE_URL": dbURL,
		"AUTHD_HTTP_ADDR":    freeAddr(t),
		"AUTHD_ADMIN_ADDR":   freeAddr(t),
	}
	for _, args := range [][]string{nil, {"keys", "rotate"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
		var ce *config.Error
		if !errors.As(err, &ce) || exitCode(err) != 2 || !strings.Contains(err.Error(), "AUTHD_SECRET_KEY") || strings.Contains(err.Error(), "\n") {
			t.Errorf("authd %v on PostgreSQL without AUTHD_SECRET_KEY: err = %v (exit %d), want one line naming AUTHD_SECRET_KEY, exit 2", args, err, exitCode(err))
		}
	}
	// Nothing was migrated into the schema, so nothing was stored.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("the schema has %d tables after a refused start, want 0", tables)
	}
}

func TestKeysHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"keys", "rotate", "-h"}, {"keys", "rotate", "--help"}, {"keys", "-h"}} {
		var stdout bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, io.Discard)
		if exitCode(err) != 0 {
			t.Errorf("authd %v: exit %d (%v)", args, exitCode(err), err)
		}
		out := stdout.String()
		if !strings.HasPrefix(out, "Usage: authd keys rotate [flags]") {
			t.Errorf("authd %v printed %q, want the help of keys rotate", args, out)
		}
		for _, want := range []string{"AUTHD_DATABASE_URL", "AUTHD_SECRET_KEY", "AUTHD_KEY_RELOAD_INTERVAL"} {
			if !strings.Contains(out, want) {
				t.Errorf("authd %v help lacks %s", args, want)
			}
		}
		if strings.Contains(out, "AUTHD_RATE_LIMIT_RPS") {
			t.Errorf("authd %v help lists the server's settings", args)
		}
	}
}

// keyState is what `keys rotate` may change in an SQLite database: its
// signing keys and its generated secret.
type keyState struct {
	kids   []string
	secret []byte
}

func readKeyState(t *testing.T, path string) keyState {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	keys, err := s.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var st keyState
	for _, k := range keys {
		st.kids = append(st.kids, k.ID)
	}
	st.secret, err = s.Secret(context.Background(), generatedSecretName)
	if err != nil && !errors.Is(err, auth.ErrNotFound) {
		t.Fatal(err)
	}
	return st
}

// seedKeys makes an SQLite database at path as authd does on its first
// start: with a first signing key sealed with secret, or with a generated,
// stored secret when secret is empty.
func seedKeys(t *testing.T, path, secret string) {
	t.Helper()
	in := start(t, map[string]string{"AUTHD_DATABASE_URL": "sqlite:" + path, "AUTHD_SECRET_KEY": secret})
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
}

// TestKeysRotateChecksBeforeWriting: every way `keys rotate` can fail is
// found before it writes anything; when all checks pass it adds one key.
func TestKeysRotateChecksBeforeWriting(t *testing.T) {
	t.Parallel()
	rotate := func(t *testing.T, env map[string]string) (string, error) {
		t.Helper()
		var stdout bytes.Buffer
		err := run(context.Background(), []string{"keys", "rotate"}, func(k string) string { return env[k] }, &stdout, io.Discard)
		return stdout.String(), err
	}

	t.Run("no database file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "typo.db")
		if _, err := rotate(t, map[string]string{"AUTHD_DATABASE_URL": "sqlite:" + path, "AUTHD_SECRET_KEY": secretA}); err == nil {
			t.Fatal("keys rotate succeeded on a database that does not exist")
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("keys rotate created %s (stat: %v)", path, err)
		}
	})

	t.Run("no signing key yet", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "authd.db")
		s, err := sqlite.Open(context.Background(), path, time.Now, slog.New(slog.DiscardHandler)) // migrated, empty
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := rotate(t, map[string]string{"AUTHD_DATABASE_URL": "sqlite:" + path}); err == nil || !strings.Contains(err.Error(), "no signing key") {
			t.Fatalf("keys rotate on a database without keys: %v, want a refusal", err)
		}
		if st := readKeyState(t, path); len(st.kids) != 0 || st.secret != nil {
			t.Errorf("keys rotate wrote %d keys, secret %v before failing", len(st.kids), st.secret != nil)
		}
	})

	for _, tc := range []struct {
		name            string
		sealedWith, use string // "" = the generated secret
		ok              bool
	}{
		{"keys sealed with a secret, none given", secretA, "", false},
		{"keys sealed with another secret", secretA, secretB, false},
		{"keys sealed with the generated secret, another given", "", secretA, false},
		{"the secret they were sealed with", secretA, secretA, true},
		{"the generated secret", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "authd.db")
			seedKeys(t, path, tc.sealedWith)
			before := readKeyState(t, path)
			out, err := rotate(t, map[string]string{"AUTHD_DATABASE_URL": "sqlite:" + path, "AUTHD_SECRET_KEY": tc.use})
			after := readKeyState(t, path)
			if !tc.ok {
				if err == nil {
					t.Fatalf("keys rotate succeeded: %q", out)
				}
				if exitCode(err) == 0 || !slices.Equal(after.kids, before.kids) || !bytes.Equal(after.secret, before.secret) {
					t.Errorf("keys rotate failed (%v, exit %d) after writing: keys %v -> %v, secret stored %v -> %v",
						err, exitCode(err), before.kids, after.kids, before.secret != nil, after.secret != nil)
				}
				return
			}
			kid, found := strings.CutPrefix(strings.TrimSpace(out), "new signing key ")
			if err != nil || !found || len(after.kids) != len(before.kids)+1 || !slices.Contains(after.kids, kid) || !bytes.Equal(after.secret, before.secret) {
				t.Errorf("keys rotate = %q, %v; keys %v -> %v", out, err, before.kids, after.kids)
			}
		})
	}
}
