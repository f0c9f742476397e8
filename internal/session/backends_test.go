package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/memstate"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/redis"
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

const (
	postgresURLEnv = "AUTHD_TEST_POSTGRES_URL"
	redisURLEnv    = "AUTHD_TEST_REDIS_URL"
	// deadRedisAddr has nothing listening: the fail-closed tests point at it.
	deadRedisAddr = "127.0.0.1:1"
)

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
	clock *statetest.Clock
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
		open func(t *testing.T, clock *statetest.Clock) auth.StateStore
	}{
		{"memstate", func(_ *testing.T, clock *statetest.Clock) auth.StateStore { return memstate.New(clock.Now) }},
		{"redis", func(t *testing.T, _ *statetest.Clock) auth.StateStore { return openRedis(t, redisURL(t)) }},
	}
)

// eachBackend runs fn, in parallel subtests, on every database × state store.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, db := range databases {
		for _, st := range stateStores {
			t.Run(db.name+"+"+st.name, func(t *testing.T) {
				t.Parallel()
				clock := statetest.NewClock(time.Now().Truncate(time.Second))
				state := st.open(t, clock) // first: an unset AUTHD_TEST_REDIS_URL skips before a database is made
				fn(t, newEnv(t, db.open(t), state, clock))
			})
		}
	}
}

func newEnv(t testing.TB, db stores, state auth.StateStore, clock *statetest.Clock) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{clock: clock, db: db, state: state, reg: prometheus.NewRegistry()}
	var err error
	e.ring, err = token.NewKeyring(ctx, db, testSecret, token.KeyParams{AccessTTL: testParams.AccessTTL}, clock.Now, nil)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	tp := token.Params{Issuer: "https://authd.test", Audience: "authd", AccessTTL: testParams.AccessTTL}
	iss, err := token.NewIssuer(e.ring, tp, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if e.ver, err = token.NewVerifier(e.ring, tp, clock.Now); err != nil {
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
	st, err := sqlite.Open(t.Context(), ":memory:")
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
	base := os.Getenv(postgresURLEnv)
	if base == "" {
		t.Skipf("%s is not set; skipping PostgreSQL integration test", postgresURLEnv)
	}
	ctx := t.Context()
	schema := "session_test_" + randomHex(t, 6)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("pool_max_conns", "8")
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() {
		st.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("connect for cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return st
}

func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(redisURLEnv)
	if u == "" {
		t.Skipf("%s is not set; skipping Redis integration test", redisURLEnv)
	}
	return u
}

// openRedis returns a state store on rawURL under a random prefix; its keys
// are deleted (SCAN + DEL of that prefix only: the server is shared) and
// its client closed when the test ends.
func openRedis(t testing.TB, rawURL string) *redis.Store {
	t.Helper()
	c, err := redis.NewClient(rawURL)
	if err != nil {
		t.Fatalf("redis.NewClient: %v", err)
	}
	prefix := "authdtest:session:" + randomHex(t, 8) + ":"
	t.Cleanup(func() {
		deletePrefix(t, c, prefix)
		if err := c.Close(); err != nil {
			t.Errorf("close redis client: %v", err)
		}
	})
	return redis.NewStore(c, prefix)
}

func deletePrefix(t testing.TB, c *goredis.Client, prefix string) {
	t.Helper()
	if c.Options().Addr == deadRedisAddr {
		return // the dead server of the fail-closed tests
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	it := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Errorf("scan %s*: %v", prefix, err)
		return
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("delete %s*: %v", prefix, err)
		}
	}
}
