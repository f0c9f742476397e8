// Package postgres keeps authd's accounts, sessions, refresh tokens, signing
// keys and generated secrets in PostgreSQL, through a pgx connection pool. It
// is the store of a deployment with several authd instances.
//
// What a Store guarantees:
//
//   - Durability is PostgreSQL's: a write that returned nil is committed.
//   - Atomicity under concurrency, across every instance sharing the database:
//     RotateRefreshToken spends a token with one conditional UPDATE, so of N
//     concurrent rotations of one token exactly one succeeds; AddSigningKey
//     serialises key additions; SecretOrCreate gives every caller the first
//     value stored.
//   - Migrations are applied by Open under a session advisory lock keyed by the
//     schema, so instances starting together on one database migrate once and
//     the others wait (up to five minutes, or ctx).
//   - Every object lives in the first schema of the connection's search_path,
//     which may be set in the URL: postgres://…/db?search_path=authd. That
//     schema must exist.
//   - Times are stored as timestamptz (microseconds) and come back as UTC.
//   - Every call is bounded: pool acquisition and statements together take
//     at most the timeout (WithTimeout, default DefaultTimeout) or ctx's
//     deadline, whichever is nearer. At that deadline pgx stops waiting,
//     sends PostgreSQL a cancel request for the running statement and
//     discards the connection; the call returns an error wrapping
//     auth.ErrUnavailable. A new connection gets the same bound
//     (connect_timeout, unless the URL sets it), also when the pool dials it
//     in the background after the call that asked for it has given up. The
//     pool holds at most pool_max_conns connections (pgx's default: the
//     greater of 4 and the number of CPUs). Migrations in Open are bounded
//     only by Open's ctx: a long migration is not a slow query.
//   - Errors: a database that cannot be reached, refuses connections, shuts
//     down, times out or runs out of resources yields errors wrapping
//     auth.ErrUnavailable (the API answers 503); a duplicate email wraps
//     auth.ErrEmailTaken; everything else is wrapped with the operation.
//
// The pool is configured by the URL (pool_max_conns, pool_min_conns, …; see
// pgxpool.ParseConfig). Behind PgBouncer in transaction mode add
// default_query_exec_mode=exec.
//
// Every write is written against a query interface satisfied by both the pool
// and a pgx.Tx, so that InTx runs an account change and an outbox row in one
// transaction. The outbox (outbox.go) is shared by every instance: due rows
// are claimed with FOR UPDATE SKIP LOCKED, under a lease.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/authd/authd/internal/auth"
)

//go:embed migrations/*.sql
var migrations embed.FS

var (
	_ auth.UserStore    = (*Store)(nil)
	_ auth.SessionStore = (*Store)(nil)
	_ auth.KeyStore     = (*Store)(nil)
)

// Store is a PostgreSQL-backed auth.UserStore, auth.SessionStore and
// auth.KeyStore. It is safe for concurrent use; Close it when done.
type Store struct {
	pool    *pgxpool.Pool
	now     func() time.Time
	timeout time.Duration // bounds every call (bound)
}

// DefaultTimeout bounds every call of a Store opened without WithTimeout.
// authd passes its request deadline (AUTHD_REQUEST_TIMEOUT) instead.
const DefaultTimeout = 5 * time.Second

// Option changes a setting of Open that has a default.
type Option func(*options)

type options struct {
	timeout time.Duration
}

// WithTimeout bounds every call of the Store (pool acquisition and
// statements) and every connection attempt to d; the nearer of it and the
// ctx's deadline wins. The URL's connect_timeout, when set, bounds
// connection attempts instead. d must be positive; default DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// Open connects to the database at url (postgres://…), applies any pending
// migrations, and returns once the store is usable. It blocks while another
// instance migrates the same schema. now is the clock of the timestamps the store fills in itself
// (User.CreatedAt/UpdatedAt, SigningKey.CreatedAt when zero); logger reports
// applied migrations. The caller must Close the Store.
func Open(ctx context.Context, url string, now func() time.Time, logger *slog.Logger, opts ...Option) (*Store, error) {
	if now == nil || logger == nil {
		return nil, errors.New("postgres: open: a clock and a logger are required")
	}
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("postgres: timeout %v: must be positive", o.timeout)
	}
	cfg, err := pgxpool.ParseConfig(url) // its errors carry the URL with the password redacted
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "authd"
	}
	// Without it a connection the pool dials in the background (after the
	// call that wanted it gave up) could wait on a dead server for minutes,
	// holding one of the pool's slots.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = o.timeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, opErr("open", err)
	}
	if err := migrate(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool, now: now, timeout: o.timeout}, nil
}

// migrate applies the embedded migrations under a session advisory lock
// private to the schema, so that tests and tenants in other schemas of the
// same database do not wait for each other.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (err error) {
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return opErr("migrate", err)
	}
	if schema == nil {
		return errors.New("postgres: migrate: no schema of search_path exists; create it first")
	}
	h := fnv.New64a()
	h.Write([]byte("authd migrations " + *schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())),
		lock.WithLockTimeout(1, 300), // poll every second, for five minutes
	)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool) // closing it leaves the pool open
	defer func() {
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("postgres: migrate: close: %w", cerr))
		}
	}()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return opErr("migrate", err)
	}
	for _, r := range results {
		log.InfoContext(ctx, "postgres: applied migration",
			slog.String("schema", *schema),
			slog.Int64("version", r.Source.Version),
			slog.String("source", r.Source.Path),
			slog.Duration("duration", r.Duration))
	}
	return nil
}

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return opErr("ping", err)
	}
	return nil
}

// Close closes the pool; it waits for connections in use to be released.
// It implements io.Closer and always returns nil.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// bound returns ctx with the Store's deadline, unless ctx has a nearer one.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// querier is what the store's statements need: the pool and pgx.Tx both have it.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tx runs fn in a read-committed transaction and commits it if fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// opErr wraps err with the operation, and with auth.ErrUnavailable when the
// database could not do the work for reasons a retry may cure.
func opErr(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, auth.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	// Classes 08 (connection exception), 53 (insufficient resources: too
	// many connections, disk full) and 58 (system error: I/O); shutting down
	// or starting up (57P01-3); statement_timeout (57014); lock_timeout (55P03).
	if class := pe.Code[:min(2, len(pe.Code))]; class == "08" || class == "53" || class == "58" {
		return true
	}
	switch pe.Code {
	case "57P01", "57P02", "57P03", "57014", "55P03":
		return true
	}
	return false
}

// pgCode reports whether err is the PostgreSQL error code on the named
// constraint (empty matches any).
func pgCode(err error, code, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code && (constraint == "" || pe.ConstraintName == constraint)
}

const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// utc is the form in which a time is stored: UTC, microsecond precision.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return utc(t)
}

// fromNull reads a nullable timestamptz.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
