package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/postgres/pgtest"
	"github.com/authd/authd/internal/redis"
	"github.com/authd/authd/internal/redis/redistest"
	"github.com/authd/authd/internal/sqlite"
	"github.com/authd/authd/internal/token"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis's dial probe, started by a pool after repeated dial
		// failures (the fail-closed tests): it notices the closed pool
		// within a second.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

// deadRedisAddr has nothing listening: the fail-closed tests point at it.
const deadRedisAddr = "127.0.0.1:1"

var testSecret = bytes.Repeat([]byte{42}, 32)

var testParams = Params{AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour}

// stores is what a database backend provides.
type stores interface {
	auth.UserStore
	auth.SessionStore
	auth.KeyStore
}

// env is one Manager on real stores, with its clock and registry.
type env struct {
	clock *clocktest.Clock
	db    stores
	state auth.StateStore
	ring  *token.Keyring
	ver   *token.Verifier
	m     *Manager
	reg   *prometheus.Registry
}

// backends lists the databases and state stores every behaviour test runs on.
var (
	databases = []struct {
		name string
		open func(t *testing.T) stores
	}{
		{"sqlite", openSQLite},
		{"postgres", openPostgres},
	}
	stateStores = []struct {
		name string
		open func(t *testing.T, clock *clocktest.Clock) auth.StateStore
	}{
		{"memstate", func(t *testing.T, clock *clocktest.Clock) auth.StateStore { return statetest.Memory(t, clock.Now) }},
		{"redis", func(t *testing.T, _ *clocktest.Clock) auth.StateStore { return openRedis(t) }},
	}
)

// eachBackend runs fn, in parallel subtests, on every database × state store.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, db := range databases {
		for _, st := range stateStores {
			t.Run(db.name+"+"+st.name, func(t *testing.T) {
				t.Parallel()
				clock := clocktest.New(time.Now().Truncate(time.Second))
				state := st.open(t, clock) // first: an unset AUTHD_TEST_REDIS_URL skips before a database is made
				fn(t, newEnv(t, db.open(t), state, clock))
			})
		}
	}
}

func newEnv(t testing.TB, db stores, state auth.StateStore, clock *clocktest.Clock) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{clock: clock, db: db, state: state, reg: prometheus.NewRegistry()}
	var err error
	e.ring, err = token.NewKeyring(ctx, db, testSecret, token.KeyParams{AccessTTL: testParams.AccessTTL}, clock.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	tp := token.Params{Issuer: "https://authd.test", Audience: "authd", AccessTTL: testParams.AccessTTL}
	iss, err := token.NewIssuer(e.ring, tp, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if e.ver, err = token.NewVerifier(e.ring, tp, clock.Now, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if e.m, err = NewManager(db, state, iss, e.ver, testParams, clock.Now, e.reg); err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return e
}

// user creates an account and returns its id.
func (e *env) user(t testing.TB) string {
	t.Helper()
	u := &auth.User{ID: randomHex(t, 16), Email: randomHex(t, 8) + "@example.com", PasswordHash: "h"}
	if err := e.db.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u.ID
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func openSQLite(t *testing.T) stores {
	t.Helper()
	st, err := sqlite.Open(t.Context(), ":memory:", time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("sqlite close: %v", err)
		}
	})
	return st
}

// openPostgres opens a store in a schema of its own, dropped at the end.
func openPostgres(t *testing.T) stores {
	t.Helper()
	u, err := url.Parse(pgtest.SchemaURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "8")
	u.RawQuery = q.Encode()
	st, err := postgres.Open(t.Context(), u.String(), time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() }) // before the schema is dropped: cleanups run last-registered first
	return st
}

// openRedis returns a state store on the test Redis under a random prefix;
// its keys are deleted (that prefix's only: the server is shared) and its
// client closed when the test ends.
func openRedis(t testing.TB) *redis.Store {
	t.Helper()
	c, err := redis.NewClient(redistest.URL(t))
	if err != nil {
		t.Fatalf("redis.NewClient: %v", err)
	}
	closeRedis(t, c)
	return redis.NewStore(c, redistest.Prefix(t, c))
}

// openDeadRedis returns a state store on deadRedisAddr, where nothing
// listens; its client is closed when the test ends.
func openDeadRedis(t testing.TB) *redis.Store {
	t.Helper()
	c, err := redis.NewClient("redis://" + deadRedisAddr + "/0")
	if err != nil {
		t.Fatalf("redis.NewClient: %v", err)
	}
	closeRedis(t, c)
	return redis.NewStore(c, "authdtest:dead:")
}

// closeRedis closes c when the test ends, failing the test if that fails.
func closeRedis(t testing.TB, c interface{ Close() error }) {
	t.Helper()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close redis client: %v", err)
		}
	})
}
