package token

import (
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/postgres/pgtest"
	"github.com/authd/authd/internal/sqlite"
)

// realStores opens connections to one fresh database of each kind: every
// call of the returned function is another instance on the same database.
var realStores = []struct {
	name string
	db   func(t *testing.T) func(t *testing.T) auth.KeyStore
}{
	{"sqlite", func(t *testing.T) func(t *testing.T) auth.KeyStore {
		path := filepath.Join(t.TempDir(), "authd.db")
		return func(t *testing.T) auth.KeyStore {
			st, err := sqlite.Open(t.Context(), path, time.Now, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}
	}},
	{"postgres", func(t *testing.T) func(t *testing.T) auth.KeyStore {
		dsn := postgresSchema(t)
		return func(t *testing.T) auth.KeyStore {
			st, err := postgres.Open(t.Context(), dsn, time.Now, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
	}},
}

// postgresSchema creates a schema of its own (dropped at the end) and
// returns a URL whose search_path points at it, or skips.
func postgresSchema(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(pgtest.SchemaURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	return u.String()
}

func TestConcurrentFirstStartOnRealStores(t *testing.T) {
	t.Parallel()
	for _, rs := range realStores {
		t.Run(rs.name, func(t *testing.T) {
			t.Parallel()
			testConcurrentFirstStart(t, rs.db(t))
		})
	}
}

// TestRotationAcrossInstances: B rotates; A accepts B's tokens at once
// (unknown kid → reload), signs with the new key after that reload, and
// both keep accepting tokens of the old key.
func TestRotationAcrossInstances(t *testing.T) {
	t.Parallel()
	for _, rs := range realStores {
		t.Run(rs.name, func(t *testing.T) {
			t.Parallel()
			open := rs.db(t)
			clock := newClock()
			a := newFixtureAt(t, clock, open(t), testParams, KeyParams{})
			b := newFixtureAt(t, clock, open(t), testParams, KeyParams{})
			ctx := t.Context()
			oldRaw := a.mustIssue(t)
			a.clock.Advance(time.Minute)
			newKID, err := b.ring.Rotate(ctx)
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			newRaw := b.mustIssue(t)
			for name, f := range map[string]*fixture{"A": a, "B": b} {
				for _, raw := range []string{oldRaw, newRaw} {
					if _, err := f.ver.Verify(ctx, raw); err != nil {
						t.Errorf("%s rejects a token: %v", name, err)
					}
				}
			}
			if h, _ := decodeSegments(t, a.mustIssue(t)); h["kid"] != newKID {
				t.Errorf("A signs with %v after meeting the new kid, want %s", h["kid"], newKID)
			}
			assertJWKS(t, a.ring, newKID, a.ring.set.Load().keys[0].kid)
		})
	}
}
