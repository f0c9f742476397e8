// Package redis connects authd to Redis, the state shared between instances:
// NewClient builds a fail-fast go-redis client from AUTHD_REDIS_URL, and
// Store is the auth.StateStore on top of it (revocation lists, one-time
// codes, counters). Other parts that need Redis directly (the rate limiter)
// share the same client.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/authd/authd/internal/auth"
)

// Timeouts NewClient applies unless the URL sets them. authd keeps Redis on
// the request path (revocation check, rate limits), where a wait of seconds
// on a dead server is worse than an error: the request fails with 503
// "unavailable", /readyz turns red, and the load balancer steers traffic
// away. Healthy Redis answers in well under a millisecond, so 500 ms is two
// orders of magnitude of headroom for slow networks and large replies.
const (
	DefaultDialTimeout  = 500 * time.Millisecond
	DefaultReadTimeout  = 500 * time.Millisecond
	DefaultWriteTimeout = 500 * time.Millisecond
	// DefaultPoolTimeout bounds the wait for a free connection when all are
	// busy; beyond it the pool is saturated and the request fails.
	DefaultPoolTimeout = time.Second
	// DefaultMaxRetries: one retry absorbs a single dropped connection (a
	// Redis failover or a connection closed by an idle-timeout proxy)
	// without turning a dead server into several timeouts in a row. With
	// the timeouts above, a command to a server that accepts connections but
	// never answers fails in about 0.5 s (go-redis does not retry a read
	// timeout), one to an unreachable host in at most about 1 s (two dial
	// timeouts), and a refused connection in milliseconds; see the tests.
	DefaultMaxRetries = 1
)

// NewClient parses a redis://, rediss:// or unix:// URL (go-redis's ParseURL syntax:
// user, password, /db, and query options such as ?dial_timeout=2s) and
// returns a client tuned to fail fast when Redis is down: the Default*
// timeouts above, except where the URL's query sets them, one dial attempt
// per command try, and context deadlines honoured.
//
// It does not connect: the first command dials. go-redis keeps reconnecting
// on its own (each command dials afresh when no pooled connection is alive,
// and after repeated dial failures a background probe re-opens the pool
// within a second of Redis coming back), so callers must not cache a
// failure: keep using the client. The client is safe for concurrent use and
// shared by every part that needs Redis; the caller owns it and must Close
// it once they have all stopped.
func NewClient(rawURL string) (*goredis.Client, error) {
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		// The URL may hold a password: name the setting, not the value.
		return nil, fmt.Errorf("redis: parse url: %w", redactURLError(err))
	}
	q, err := url.Parse(rawURL)
	if err != nil { // ParseURL accepted it; this cannot fail
		return nil, fmt.Errorf("redis: parse url: %w", redactURLError(err))
	}
	set := q.Query()
	if !set.Has("dial_timeout") {
		opts.DialTimeout = DefaultDialTimeout
	}
	if !set.Has("read_timeout") {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if !set.Has("write_timeout") {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if !set.Has("pool_timeout") {
		opts.PoolTimeout = DefaultPoolTimeout
	}
	if !set.Has("max_retries") {
		opts.MaxRetries = DefaultMaxRetries
	}
	// go-redis otherwise tries each dial 5 times, 100 ms apart, inside every
	// command try: a refused connection would take half a second to report.
	// Command retries (MaxRetries) already cover a transient dial failure.
	opts.DialerRetries = 1
	// A request whose own deadline is nearer than ReadTimeout stops waiting
	// at that deadline.
	opts.ContextTimeoutEnabled = true
	return goredis.NewClient(opts), nil
}

// redactURLError drops the *url.Error wrapper, whose message repeats the
// whole URL, password included.
func redactURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// Store is the auth.StateStore backed by Redis, shared by every instance
// pointing at the same server. Every key is stored as prefix+key, so several
// deployments (or tests) can share one database. Safe for concurrent use;
// it holds no state of its own, so there is nothing to close but the client.
//
// On Redis Cluster, MGet's keys must hash to one slot: give keys that are
// read together a common {hash tag}.
type Store struct {
	c      goredis.UniversalClient
	prefix string
}

var _ auth.StateStore = (*Store)(nil)

// NewStore returns a Store that keeps its keys under prefix (e.g. "authd:")
// in c. The caller keeps ownership of c.
func NewStore(c goredis.UniversalClient, prefix string) *Store {
	return &Store{c: c, prefix: prefix}
}

func (s *Store) key(k string) string { return s.prefix + k }

// Get returns the value at key, an error wrapping auth.ErrNotFound when it
// is absent or expired, or one wrapping auth.ErrUnavailable when Redis
// cannot be reached.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.c.Get(ctx, s.key(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis: get: %w", auth.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("get", err)
	}
	return nonNil(v), nil
}

// MGet returns one value per key, nil where absent, with a single MGET.
func (s *Store) MGet(ctx context.Context, keys ...string) ([][]byte, error) {
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.key(k)
	}
	vals, err := s.c.MGet(ctx, full...).Result()
	if err != nil {
		return nil, wrap("mget", err)
	}
	if len(vals) != len(keys) {
		return nil, fmt.Errorf("redis: mget: %d replies for %d keys", len(vals), len(keys))
	}
	out := make([][]byte, len(keys))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
		case string:
			out[i] = nonNil([]byte(v))
		default:
			return nil, fmt.Errorf("redis: mget: unexpected reply type %T", v)
		}
	}
	return out, nil
}

// Set stores value under key for ttl (0: no expiry, and any earlier expiry
// is cleared). A negative ttl is an error: go-redis would read -1 as KEEPTTL.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("redis: set: negative ttl %v", ttl)
	}
	if err := s.c.Set(ctx, s.key(key), value, ttl).Err(); err != nil {
		return wrap("set", err)
	}
	return nil
}

// SetNX stores value under key for ttl only if the key is absent, and
// reports whether it did (SET NX PX: one atomic command).
func (s *Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl < 0 {
		return false, fmt.Errorf("redis: setnx: negative ttl %v", ttl)
	}
	ok, err := s.c.SetNX(ctx, s.key(key), value, ttl).Result()
	if err != nil {
		return false, wrap("setnx", err)
	}
	return ok, nil
}

// incrScript increments KEYS[1] and, only when the key did not exist
// before, gives it a ttl of ARGV[1] milliseconds (0: none). One script is
// one round trip and atomic on the server; INCR + EXPIRE NX would also put
// a ttl on an existing key that has none.
var incrScript = goredis.NewScript(`
local created = redis.call('EXISTS', KEYS[1]) == 0
local n = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[1])
if created and ttl > 0 then
	redis.call('PEXPIRE', KEYS[1], ttl)
end
return n
`)

// Incr adds 1 to the integer at key (0 when absent) and returns the new
// value; ttl is applied when the key is created and left alone after. The
// call is one round trip (an EVALSHA; an EVAL as well the first time after
// Redis's script cache was emptied). A value that is not an integer is an
// error from Redis, and the value is left alone.
func (s *Store) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if ttl < 0 {
		return 0, fmt.Errorf("redis: incr: negative ttl %v", ttl)
	}
	ms := ttl.Milliseconds()
	if ttl > 0 && ms == 0 {
		ms = 1 // Redis counts in milliseconds; never round a ttl down to "none"
	}
	n, err := incrScript.Run(ctx, s.c, []string{s.key(key)}, ms).Int64()
	if err != nil {
		return 0, wrap("incr", err)
	}
	return n, nil
}

// Delete removes the keys with one DEL; absent keys are not an error.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.key(k)
	}
	if err := s.c.Del(ctx, full...).Err(); err != nil {
		return wrap("delete", err)
	}
	return nil
}

// deleteIfEqualScript deletes KEYS[1] only if it holds ARGV[1]: the
// compare-and-delete of a claim's owner, atomic on the server.
var deleteIfEqualScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// DeleteIfEqual removes key only if it holds value, in one atomic script,
// and reports whether it did.
func (s *Store) DeleteIfEqual(ctx context.Context, key string, value []byte) (bool, error) {
	n, err := deleteIfEqualScript.Run(ctx, s.c, []string{s.key(key)}, value).Int64()
	if err != nil {
		return false, wrap("delete if equal", err)
	}
	return n == 1, nil
}

// Expire gives an existing key a ttl (PEXPIRE), or none when ttl is 0
// (PERSIST), and reports whether the key existed.
func (s *Store) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	var (
		ok  bool
		err error
	)
	switch {
	case ttl < 0:
		return false, fmt.Errorf("redis: expire: negative ttl %v", ttl)
	case ttl == 0:
		// PERSIST answers 0 both for an absent key and for one without a
		// ttl; EXISTS tells them apart.
		var n int64
		if n, err = s.c.Exists(ctx, s.key(key)).Result(); err == nil && n == 1 {
			err = s.c.Persist(ctx, s.key(key)).Err()
		}
		ok = n == 1
	default:
		ok, err = s.c.PExpire(ctx, s.key(key), max(ttl, time.Millisecond)).Result()
	}
	if err != nil {
		return false, wrap("expire", err)
	}
	return ok, nil
}

// Ping checks that Redis answers (for /readyz); the error wraps
// auth.ErrUnavailable when it does not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// TTL returns the remaining time to live of key: 0 when it has no expiry,
// an error wrapping auth.ErrNotFound when it is absent. It is for tests and
// diagnostics; the StateStore contract does not need it.
func (s *Store) TTL(ctx context.Context, key string) (time.Duration, error) {
	d, err := s.c.PTTL(ctx, s.key(key)).Result()
	if err != nil {
		return 0, wrap("pttl", err)
	}
	// go-redis passes Redis's -2 (absent) and -1 (no expiry) through as
	// nanoseconds.
	switch d {
	case -2:
		return 0, fmt.Errorf("redis: pttl: %w", auth.ErrNotFound)
	case -1:
		return 0, nil
	}
	return d, nil
}

// wrap adds the operation to err and, when err means Redis cannot serve us
// right now, auth.ErrUnavailable, so that callers answer 503 and both
// errors.Is(err, auth.ErrUnavailable) and the original error match.
func wrap(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("redis: %s: %w: %w", op, auth.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// unavailable reports whether err means that Redis cannot serve requests,
// as opposed to refusing this one (a wrong type, a non-integer value).
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the caller gave up; Redis may be fine
	}
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		// Not a reply from the server: dial failure (connection refused,
		// DNS), I/O timeout, EOF, pool timeout, context deadline, closed
		// client. All mean the backend is out of reach.
		return true
	}
	// Replies that say the server is up but not serving: loading its
	// dataset, a replica or a cluster mid-failover, out of memory, out of
	// connections, or refusing our credentials.
	return goredis.IsLoadingError(err) ||
		goredis.IsReadOnlyError(err) ||
		goredis.IsMasterDownError(err) ||
		goredis.IsClusterDownError(err) ||
		goredis.IsTryAgainError(err) ||
		goredis.IsMaxClientsError(err) ||
		goredis.IsOOMError(err) ||
		goredis.IsNoReplicasError(err) ||
		goredis.IsAuthError(err)
}

// nonNil makes an empty stored value read back as present: an empty,
// non-nil slice.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
