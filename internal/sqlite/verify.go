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

var (
	_ auth.EmailVerificationStore = (*Store)(nil)
	_ auth.EmailTx                = (*storeTx)(nil)
)

// purposeVerifyEmail marks the rows of account_tokens (migration 00004)
// that are email verification tokens.
const purposeVerifyEmail = "verify_email"

// CreateEmailVerification stores v inside the transaction.
func (t *storeTx) CreateEmailVerification(ctx context.Context, v auth.EmailVerification) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO account_tokens (hash, purpose, user_id, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`, v.Hash, purposeVerifyEmail, v.UserID, encTime(v.CreatedAt), encTime(v.ExpiresAt))
	if constraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, "") {
		err = fmt.Errorf("user %s: %w", v.UserID, auth.ErrNotFound)
	}
	if err != nil {
		return opErr("create email verification", err)
	}
	return nil
}

// VerifyEmail spends the live verification whose token hash is hash and
// marks its user's email verified, in one write transaction (serialised on
// the writer: of concurrent calls with one hash, the first wins).
func (s *Store) VerifyEmail(ctx context.Context, hash []byte, now time.Time) (string, error) {
	at := encTime(now)
	var userID string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE account_tokens SET used_at = ?
			WHERE hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id`,
			at, hash, purposeVerifyEmail, at).Scan(&userID)
		if errors.Is(err, sql.ErrNoRows) {
			return auth.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE account_tokens SET used_at = ?
			WHERE user_id = ? AND purpose = ? AND used_at IS NULL`, at, userID, purposeVerifyEmail); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET email_verified = 1, updated_at = ? WHERE id = ?`, at, userID)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return "", opErr("verify email", err)
	}
	return userID, nil
}
