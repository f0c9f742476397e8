// Package pgtest gives tests a PostgreSQL schema of their own on the server
// named by AUTHD_TEST_POSTGRES_URL, so that suites run in parallel and never
// touch each other's data. It is imported only from tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the server the PostgreSQL suites run against.
const EnvVar = "AUTHD_TEST_POSTGRES_URL"

// BaseURL returns the URL in EnvVar as it is, for the tests that need the
// server itself rather than a schema of their own (a schema that does not
// exist, say). It skips the test, naming EnvVar, when the variable is unset.
func BaseURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvVar)
	if base == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL suite", EnvVar)
	}
	return base
}

// SchemaURL creates an empty schema for the test, drops it (CASCADE) when the
// test ends, and returns a URL whose search_path is that schema. It skips
// the test, naming EnvVar, when the variable is unset.
func SchemaURL(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "authd_t_" + hex.EncodeToString(b[:])
	exec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("%s: create schema: %v", EnvVar, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvVar, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}
