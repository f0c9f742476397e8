package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authd/authd/internal/auth"
)

const userColumns = `id, email, email_verified, password_hash, phone, phone_verified, created_at, updated_at`

// userSelect is what the queries of a user read: the columns CreateUser
// writes, and those only the store moves.
const userSelect = userColumns + `, device_generation`

// CreateUser inserts u. It fills u.CreatedAt (from the store's clock) and
// u.UpdatedAt (= CreatedAt) when zero, and leaves u's times as stored: UTC,
// microseconds. It returns an error wrapping auth.ErrEmailTaken when another
// account has u.Email (SQLSTATE 23505 on users_email_key).
func (s *Store) CreateUser(ctx context.Context, u *auth.User) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now()
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	u.CreatedAt, u.UpdatedAt = utc(u.CreatedAt), utc(u.UpdatedAt)
	if err := createUser(ctx, s.pool, u); err != nil {
		return opErr("create user", err)
	}
	return nil
}

func createUser(ctx context.Context, q querier, u *auth.User) error {
	var phone *string
	if u.Phone != "" {
		phone = &u.Phone
	}
	_, err := q.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		u.ID, u.Email, u.EmailVerified, u.PasswordHash, phone, u.PhoneVerified, u.CreatedAt, u.UpdatedAt)
	if pgCode(err, uniqueViolation, "users_email_key") {
		return auth.ErrEmailTaken
	}
	return err
}

// UserByEmail returns the account with this normalised email, or an error
// wrapping auth.ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (*auth.User, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userSelect+` FROM users WHERE email = $1`, email))
	if err != nil {
		return nil, opErr("user by email", err)
	}
	return u, nil
}

// UserByID returns the account, or an error wrapping auth.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (*auth.User, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userSelect+` FROM users WHERE id = $1`, id))
	if err != nil {
		return nil, opErr("user by id", err)
	}
	return u, nil
}

// UpdatePasswordHash replaces the user's hash and sets UpdatedAt to now. It
// returns an error wrapping auth.ErrNotFound when there is no such user.
func (s *Store) UpdatePasswordHash(ctx context.Context, userID, hash string, now time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1`,
		userID, hash, utc(now))
	if err == nil && tag.RowsAffected() == 0 {
		err = auth.ErrNotFound
	}
	if err != nil {
		return opErr("update password hash", err)
	}
	return nil
}

func scanUser(row pgx.Row) (*auth.User, error) {
	var (
		u     auth.User
		phone *string
	)
	err := row.Scan(&u.ID, &u.Email, &u.EmailVerified, &u.PasswordHash, &phone, &u.PhoneVerified, &u.CreatedAt, &u.UpdatedAt, &u.DeviceGeneration)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, auth.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if phone != nil {
		u.Phone = *phone
	}
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return &u, nil
}
