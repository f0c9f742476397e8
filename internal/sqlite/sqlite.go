// Package sqlite keeps authd's accounts, sessions, refresh tokens, signing keys
// and generated secrets in a SQLite database, through the pure-Go driver
// modernc.org/sqlite (no cgo). It is the store of a single-node deployment and
// of `go run ./cmd/authd` with no settings (a file authd.db).
//
// What a Store guarantees:
//
//   - Durability: the file runs in WAL mode with synchronous=FULL, so every
//     write that returned nil has been fsynced and survives a crash or a power
//     cut of the host.
//   - One writer: every write runs in a transaction on a single dedicated
//     connection, started with BEGIN IMMEDIATE. Writes of this process are
//     therefore serialised, and a second process on the same file waits for
//     the write lock (busy_timeout 5s) instead of interleaving. This is what
//     makes RotateRefreshToken atomic: of N concurrent rotations of one token,
//     exactly one succeeds.
//   - Reads run on a separate pool of read-only connections; in WAL mode they
//     see every committed write and neither block the writer nor each other.
//   - Foreign keys are enforced on every connection.
//   - Times are stored in UTC with microsecond precision and come back as UTC.
//   - Errors: a database that stays locked past busy_timeout, a full disk, an
//     I/O error or a context deadline yield errors wrapping auth.ErrUnavailable
//     (the API answers 503); everything else is wrapped with the operation.
//
// ":memory:" opens a private in-memory database on one connection shared by
// reads and writes; it is lost on Close. It is meant for tests and demos.
//
// Every write is written against a query interface satisfied by both *sql.DB
// and *sql.Tx, so that InTx runs an account change and an outbox row in one
// transaction on the writer connection. The outbox (outbox.go) is claimed
// with one UPDATE ... RETURNING on that connection, under a lease.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/authd/authd/internal/auth"
)

//go:embed migrations/*.sql
var migrations embed.FS

var (
	_ auth.UserStore    = (*Store)(nil)
	_ auth.SessionStore = (*Store)(nil)
	_ auth.KeyStore     = (*Store)(nil)
)

// busyTimeout is how long a connection waits for another one holding the
// write lock (another process on the same file) before failing with
// SQLITE_BUSY, which callers see as auth.ErrUnavailable.
const busyTimeout = 5 * time.Second

// Store is a SQLite-backed auth.UserStore, auth.SessionStore and
// auth.KeyStore. It is safe for concurrent use; Close it when done.
type Store struct {
	write *sql.DB // one connection: every write transaction runs here
	read  *sql.DB // read-only pool; the same *sql.DB as write for ":memory:"
	now   func() time.Time

	// Hot lookups, prepared once on the read pool: parsing the SQL is about
	// forty per cent of a lookup's cost otherwise. database/sql prepares
	// each on a connection the first time it is used there.
	userByID, userByEmail *sql.Stmt
}

// Open opens (creating if needed) the SQLite database at path, a file path
// or ":memory:", and applies any pending migrations before returning. The
// caller strips the "sqlite:" prefix of AUTHD_DATABASE_URL; path is taken
// literally, not as a URI. Several Stores, even in several processes, may open
// the same file. now is the clock of the timestamps the store fills in itself
// (User.CreatedAt/UpdatedAt, SigningKey.CreatedAt when zero); logger reports
// applied migrations. The caller must Close the Store.
func Open(ctx context.Context, path string, now func() time.Time, logger *slog.Logger) (*Store, error) {
	if now == nil || logger == nil {
		return nil, errors.New("sqlite: open: a clock and a logger are required")
	}
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}

	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")

	memory := path == ":memory:"
	var name string
	if memory {
		name = ":memory:"
	} else {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
		}
		name = "file:" + escapePath(abs)
	}

	wq := cloneValues(common)
	wq.Set("_txlock", "immediate")
	if !memory {
		wq.Add("_pragma", "journal_mode(WAL)")
		wq.Add("_pragma", "synchronous(FULL)")
	}
	write, err := sql.Open("sqlite", name+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	// One connection, kept forever: it is the single writer, and for
	// ":memory:" it is the database itself.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	s := &Store{write: write, read: write, now: now}

	if err := pingBusy(ctx, write); err != nil {
		return nil, errors.Join(opErr(fmt.Sprintf("open %q", path), err), s.Close())
	}
	if err := migrate(ctx, write, logger); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	if memory {
		return s, s.prepare(ctx)
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	read, err := sql.Open("sqlite", name+"?"+rq.Encode())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %q for reading: %w", path, err), s.Close())
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	s.read = read
	if err := read.PingContext(ctx); err != nil {
		return nil, errors.Join(opErr(fmt.Sprintf("open %q for reading", path), err), s.Close())
	}
	if err := s.prepare(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.userByID, err = s.read.PrepareContext(ctx, `SELECT `+userSelect+` FROM users WHERE id = ?`); err != nil {
		return opErr("prepare", err)
	}
	if s.userByEmail, err = s.read.PrepareContext(ctx, `SELECT `+userSelect+` FROM users WHERE email = ?`); err != nil {
		return opErr("prepare", err)
	}
	return nil
}

// pingBusy opens the first connection, retrying for up to busyTimeout while
// the file is busy: switching a new file to WAL needs an exclusive lock and
// SQLite answers SQLITE_BUSY at once, without its busy handler, when another
// process is opening the same file at that moment.
func pingBusy(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	for {
		err := db.PingContext(ctx)
		if err == nil || !busy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func busy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

// migrate applies the embedded migrations on db, the writer.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	// The provider is not closed: Provider.Close closes db, which we keep.
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	// SQLite has no advisory lock for goose to take: another process opening
	// the same new file may be applying the same migrations. Each migration
	// runs in its own transaction, so Up fails on the one the other applied
	// first; retried, it goes on from the version now recorded. When nothing
	// is pending, the other did the work.
	var results []*goose.MigrationResult
	for attempt := 1; ; attempt++ {
		var rs []*goose.MigrationResult
		rs, err = p.Up(ctx)
		results = append(results, rs...)
		if err == nil {
			break
		}
		pending, perr := p.HasPending(ctx)
		if perr == nil && !pending {
			break
		}
		if attempt == 5 {
			return opErr("migrate", err)
		}
		select {
		case <-ctx.Done():
			return opErr("migrate", ctx.Err())
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
	for _, r := range results {
		log.InfoContext(ctx, "sqlite: applied migration",
			slog.Int64("version", r.Source.Version),
			slog.String("source", r.Source.Path),
			slog.Duration("duration", r.Duration))
	}
	return nil
}

// Ping checks that both the writer and the read pool answer. It blocks while
// the writer connection is busy with a transaction.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return opErr("ping", err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return opErr("ping", err)
	}
	return nil
}

// Close closes every connection; it waits for queries in progress. For
// ":memory:" the data is gone afterwards.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.userByID, s.userByEmail} {
		if st != nil {
			if err := st.Close(); err != nil {
				errs = append(errs, fmt.Errorf("sqlite: close statement: %w", err))
			}
		}
	}
	if s.read != s.write {
		if err := s.read.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sqlite: close read pool: %w", err))
		}
	}
	if err := s.write.Close(); err != nil {
		errs = append(errs, fmt.Errorf("sqlite: close writer: %w", err))
	}
	return errors.Join(errs...)
}

// querier is what the store's statements need: *sql.DB and *sql.Tx both have it.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// writeTx runs fn in a transaction on the writer (BEGIN IMMEDIATE) and
// commits it if fn returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// opErr wraps err with the operation, and with auth.ErrUnavailable when the
// database could not do the work for reasons a retry may cure.
func opErr(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("sqlite: %s: %w: %w", op, auth.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM:
		return true
	}
	return false
}

// constraint reports whether err is the SQLite constraint violation code
// (an extended result code such as SQLITE_CONSTRAINT_UNIQUE) whose message
// names column (such as "users.email"; empty matches any).
func constraint(err error, code int, column string) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == code && strings.Contains(se.Error(), column)
}

// timeLayout is fixed-width so that stored times compare correctly as text.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// utc is the form in which a time is stored: UTC, microsecond precision.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func encTime(t time.Time) string { return utc(t).Format(timeLayout) }

// encNullTime stores the zero time as NULL.
func encNullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return encTime(t)
}

func decTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

func decNullTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	return decTime(s.String)
}

// escapePath makes a file path safe to embed in a SQLite URI filename.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(p))
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}
