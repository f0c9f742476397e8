package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	_, err := t.tx.Exec(ctx, `INSERT INTO account_tokens (hash, purpose, user_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, v.Hash, purposeVerifyEmail, v.UserID, utc(v.CreatedAt), utc(v.ExpiresAt))
	if pgCode(err, foreignKeyViolation, "") {
		err = fmt.Errorf("user %s: %w", v.UserID, auth.ErrNotFound)
	}
	if err != nil {
		return opErr("create email verification", err)
	}
	return nil
}

// VerifyEmail spends the live verification whose token hash is hash and
// marks its user's email verified, in one transaction. The spend is one
// conditional UPDATE: of concurrent calls with one hash exactly one finds
// the token unspent.
func (s *Store) VerifyEmail(ctx context.Context, hash []byte, now time.Time) (string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	now = utc(now)
	var userID string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE account_tokens SET used_at = $1
			WHERE hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 RETURNING user_id`,
			now, hash, purposeVerifyEmail).Scan(&userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return auth.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE account_tokens SET used_at = $1
			WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL`, now, userID, purposeVerifyEmail); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE users SET email_verified = true, updated_at = $1 WHERE id = $2`, now, userID)
		if err == nil && tag.RowsAffected() == 0 {
			err = auth.ErrNotFound
		}
		return err
	})
	if err != nil {
		return "", opErr("verify email", err)
	}
	return userID, nil
}
