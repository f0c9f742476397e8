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

var _ auth.ResetStore = (*Store)(nil)

// purposeReset marks the rows of account_tokens (migration 00004) that are
// password reset tokens.
const purposeReset = "reset_password"

// CreatePasswordReset stores r. It returns an error wrapping
// auth.ErrNotFound when r.UserID has no account.
func (s *Store) CreatePasswordReset(ctx context.Context, r auth.PasswordReset) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error { return createPasswordReset(ctx, tx, r) })
	if err != nil {
		return opErr("create password reset", err)
	}
	return nil
}

func createPasswordReset(ctx context.Context, q querier, r auth.PasswordReset) error {
	_, err := q.ExecContext(ctx, `INSERT INTO account_tokens (hash, purpose, user_id, created_at, expires_at, used_at)
		VALUES (?, ?, ?, ?, ?, ?)`, r.Hash, purposeReset, r.UserID, encTime(r.CreatedAt), encTime(r.ExpiresAt), encNullTime(r.UsedAt))
	if constraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, "") {
		return fmt.Errorf("user %s: %w", r.UserID, auth.ErrNotFound)
	}
	return err
}

// PasswordReset returns the live reset whose token hash is hash, or an
// error wrapping auth.ErrNotFound when there is none, it is spent, or it
// expired at or before now.
func (s *Store) PasswordReset(ctx context.Context, hash []byte, now time.Time) (*auth.PasswordReset, error) {
	var (
		r                auth.PasswordReset
		created, expires string
	)
	err := s.read.QueryRowContext(ctx, `SELECT user_id, created_at, expires_at FROM account_tokens
		WHERE hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?`, hash, purposeReset, encTime(now)).Scan(&r.UserID, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		err = auth.ErrNotFound
	}
	if err != nil {
		return nil, opErr("password reset", err)
	}
	r.Hash = hash
	if r.CreatedAt, err = decTime(created); err != nil {
		return nil, opErr("password reset", err)
	}
	if r.ExpiresAt, err = decTime(expires); err != nil {
		return nil, opErr("password reset", err)
	}
	return &r, nil
}

// ResetPassword spends the live reset whose token hash is hash, spends
// every other live reset of its user, and stores passwordHash as the user's
// password, in one write transaction; it returns the user's ID. Writes are
// serialised on the one writer connection, so of concurrent calls with one
// hash the first spends the reset and the others find it spent: they return
// an error wrapping auth.ErrNotFound.
func (s *Store) ResetPassword(ctx context.Context, hash []byte, passwordHash string, now time.Time) (string, error) {
	var userID string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		userID, err = resetPassword(ctx, tx, hash, passwordHash, now)
		return err
	})
	if err != nil {
		return "", opErr("reset password", err)
	}
	return userID, nil
}

func resetPassword(ctx context.Context, q querier, hash []byte, passwordHash string, now time.Time) (string, error) {
	at := encTime(now)
	var userID string
	err := q.QueryRowContext(ctx, `UPDATE account_tokens SET used_at = ?
		WHERE hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id`, at, hash, purposeReset, at).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", auth.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	if _, err := q.ExecContext(ctx, `UPDATE account_tokens SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL`, at, userID, purposeReset); err != nil {
		return "", err
	}
	res, err := q.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`, passwordHash, at, userID)
	if err != nil {
		return "", err
	}
	return userID, mustAffect(res)
}

var _ auth.PasswordTx = (*storeTx)(nil)

// CreatePasswordReset is Store.CreatePasswordReset inside the transaction.
func (t *storeTx) CreatePasswordReset(ctx context.Context, r auth.PasswordReset) error {
	if err := createPasswordReset(ctx, t.tx, r); err != nil {
		return opErr("create password reset", err)
	}
	return nil
}

// ChangePassword stores passwordHash as the user's password and spends
// every live reset of the user, inside the transaction. It returns an error
// wrapping auth.ErrNotFound when there is no such user.
func (t *storeTx) ChangePassword(ctx context.Context, userID, passwordHash string, now time.Time) error {
	at := encTime(now)
	res, err := t.tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`, passwordHash, at, userID)
	if err == nil {
		err = mustAffect(res)
	}
	if err == nil {
		_, err = t.tx.ExecContext(ctx, `UPDATE account_tokens SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL`, at, userID, purposeReset)
	}
	if err != nil {
		return opErr("change password", err)
	}
	return nil
}
