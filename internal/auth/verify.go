package auth

import (
	"context"
	"time"
)

// EmailVerification is a pending email verification as stored: only the
// SHA-256 of its token ever reaches storage.
type EmailVerification struct {
	Hash      []byte // sha256 of the token string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// EmailVerificationStore spends verification tokens. Implementations:
// sqlite.Store, postgres.Store.
type EmailVerificationStore interface {
	// VerifyEmail spends the live verification whose token hash is hash,
	// marks its user's email verified, and spends the user's other live
	// verifications, in one transaction; it returns the user's ID. Of
	// concurrent calls with one hash exactly one succeeds; the others, and
	// any call on an unknown, spent or expired token (expired at or before
	// now), return ErrNotFound and change nothing.
	VerifyEmail(ctx context.Context, hash []byte, now time.Time) (string, error)
}

// EmailTx is what email verification does inside a store's transaction
// (Transactor.InTx), beside queueing its email: the Tx of sqlite.Store and
// postgres.Store implement it.
type EmailTx interface {
	Tx
	// CreateEmailVerification stores v. It returns ErrNotFound when
	// v.UserID has no account.
	CreateEmailVerification(ctx context.Context, v EmailVerification) error
}
