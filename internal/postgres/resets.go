package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authd/authd/internal/auth"
)

var _ auth.ResetStore = (*Store)(nil)

// purposeReset marks the rows of account_tokens (migration 00004) that are
// password reset tokens.
const purposeReset = "reset_password"

// CreatePasswordReset stores r. It returns an error wrapping
// auth.ErrNotFound when r.UserID has no account.
func (s *Store) CreatePasswordReset(ctx context.Context, r auth.PasswordReset) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := createPasswordReset(ctx, s.pool, r); err != nil {
		return opErr("create password reset", err)
	}
	return nil
}

func createPasswordReset(ctx context.Context, q querier, r auth.PasswordReset) error {
	_, err := q.Exec(ctx, `INSERT INTO account_tokens (hash, purpose, user_id, created_at, expires_at, used_at)
		VALUES ($1, $6, $2, $3, $4, $5)`, r.Hash, r.UserID, utc(r.CreatedAt), utc(r.ExpiresAt), nullTime(r.UsedAt), purposeReset)
	if pgCode(err, foreignKeyViolation, "") {
		return fmt.Errorf("user %s: %w", r.UserID, auth.ErrNotFound)
	}
	return err
}

// PasswordReset returns the live reset whose token hash is hash, or an
// error wrapping auth.ErrNotFound when there is none, it is spent, or it
// expired at or before now.
func (s *Store) PasswordReset(ctx context.Context, hash []byte, now time.Time) (*auth.PasswordReset, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	r := auth.PasswordReset{Hash: hash}
	err := s.pool.QueryRow(ctx, `SELECT user_id, created_at, expires_at FROM account_tokens
		WHERE hash = $1 AND purpose = $3 AND used_at IS NULL AND expires_at > $2`, hash, utc(now), purposeReset).Scan(&r.UserID, &r.CreatedAt, &r.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		err = auth.ErrNotFound
	}
	if err != nil {
		return nil, opErr("password reset", err)
	}
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	return &r, nil
}

// ResetPassword spends the live reset whose token hash is hash, spends
// every other live reset of its user, and stores passwordHash as the user's
// password, in one transaction; it returns the user's ID. The reset is spent
// by one conditional UPDATE: a concurrent call waits for the row lock, finds
// used_at set when it re-checks the row, and returns an error wrapping
// auth.ErrNotFound.
func (s *Store) ResetPassword(ctx context.Context, hash []byte, passwordHash string, now time.Time) (string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var userID string
	err := s.tx(ctx, func(tx pgx.Tx) error {
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
	at := utc(now)
	var userID string
	err := q.QueryRow(ctx, `UPDATE account_tokens SET used_at = $2
		WHERE hash = $1 AND purpose = $3 AND used_at IS NULL AND expires_at > $2 RETURNING user_id`, hash, at, purposeReset).Scan(&userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", auth.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	if _, err := q.Exec(ctx, `UPDATE account_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = $3 AND used_at IS NULL`, userID, at, purposeReset); err != nil {
		return "", err
	}
	tag, err := q.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1`, userID, passwordHash, at)
	if err != nil {
		return "", err
	}
	if tag.RowsAffected() == 0 {
		return "", auth.ErrNotFound
	}
	return userID, nil
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
	at := utc(now)
	tag, err := t.tx.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1`, userID, passwordHash, at)
	if err == nil && tag.RowsAffected() == 0 {
		err = auth.ErrNotFound
	}
	if err == nil {
		_, err = t.tx.Exec(ctx, `UPDATE account_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = $3 AND used_at IS NULL`, userID, at, purposeReset)
	}
	if err != nil {
		return opErr("change password", err)
	}
	return nil
}
