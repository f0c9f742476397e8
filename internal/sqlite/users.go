package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/authd/authd/internal/auth"
)

const userColumns = `id, email, email_verified, password_hash, phone, phone_verified, created_at, updated_at`

// userSelect is what the queries of a user read: the columns CreateUser
// writes, and those only the store moves.
const userSelect = userColumns + `, device_generation`

// CreateUser inserts u. It fills u.CreatedAt (from the store's clock) and
// u.UpdatedAt (= CreatedAt) when zero, and leaves u's times as stored: UTC,
// microseconds. It returns an error wrapping auth.ErrEmailTaken when another
// account has u.Email.
func (s *Store) CreateUser(ctx context.Context, u *auth.User) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now()
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	u.CreatedAt, u.UpdatedAt = utc(u.CreatedAt), utc(u.UpdatedAt)
	err := s.writeTx(ctx, func(tx *sql.Tx) error { return createUser(ctx, tx, u) })
	if err != nil {
		return opErr("create user", err)
	}
	return nil
}

func createUser(ctx context.Context, q querier, u *auth.User) error {
	var phone sql.NullString
	if u.Phone != "" {
		phone = sql.NullString{String: u.Phone, Valid: true}
	}
	_, err := q.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.EmailVerified, u.PasswordHash, phone, u.PhoneVerified,
		encTime(u.CreatedAt), encTime(u.UpdatedAt))
	if constraint(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE, "users.email") {
		return auth.ErrEmailTaken
	}
	return err
}

// UserByEmail returns the account with this normalised email, or an error
// wrapping auth.ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (*auth.User, error) {
	u, err := scanUser(s.userByEmail.QueryRowContext(ctx, email))
	if err != nil {
		return nil, opErr("user by email", err)
	}
	return u, nil
}

// UserByID returns the account, or an error wrapping auth.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (*auth.User, error) {
	u, err := scanUser(s.userByID.QueryRowContext(ctx, id))
	if err != nil {
		return nil, opErr("user by id", err)
	}
	return u, nil
}

// UpdatePasswordHash replaces the user's hash and sets UpdatedAt to now. It
// returns an error wrapping auth.ErrNotFound when there is no such user.
func (s *Store) UpdatePasswordHash(ctx context.Context, userID, hash string, now time.Time) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`,
			hash, encTime(now), userID)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return opErr("update password hash", err)
	}
	return nil
}

// mustAffect turns "no row changed" into auth.ErrNotFound.
func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return auth.ErrNotFound
	}
	return nil
}

func scanUser(row *sql.Row) (*auth.User, error) {
	var (
		u                auth.User
		phone            sql.NullString
		created, updated string
	)
	err := row.Scan(&u.ID, &u.Email, &u.EmailVerified, &u.PasswordHash, &phone, &u.PhoneVerified, &created, &updated, &u.DeviceGeneration)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, auth.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	u.Phone = phone.String
	if u.CreatedAt, err = decTime(created); err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	if u.UpdatedAt, err = decTime(updated); err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	return &u, nil
}
