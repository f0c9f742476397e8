package auth

import (
	"context"
	"time"
)

// PasswordReset is a pending password reset as stored: only the SHA-256 of
// its token ever reaches storage.
type PasswordReset struct {
	Hash      []byte // sha256 of the token string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until spent
}

// ResetStore keeps password reset tokens. Implementations: sqlite.Store,
// postgres.Store.
type ResetStore interface {
	// CreatePasswordReset stores r (UsedAt must be zero). It returns an
	// error wrapping ErrNotFound when r.UserID has no account.
	CreatePasswordReset(ctx context.Context, r PasswordReset) error
	// PasswordReset returns the live reset whose token hash is hash: it
	// returns ErrNotFound when there is none, or it has been spent, or it
	// expired at or before now. It only looks.
	PasswordReset(ctx context.Context, hash []byte, now time.Time) (*PasswordReset, error)
	// ResetPassword spends the live reset whose token hash is hash and
	// stores passwordHash as its user's password, in one transaction, and
	// returns the user's ID. Every other live reset of that user is spent
	// with it. Of concurrent calls with one hash exactly one succeeds; the
	// others, and any call on an unknown, spent or expired reset, return
	// ErrNotFound and change nothing.
	ResetPassword(ctx context.Context, hash []byte, passwordHash string, now time.Time) (userID string, err error)
}

// PasswordTx is what the password flows do inside a store's transaction
// (Transactor.InTx), beside queueing their email: the Tx of sqlite.Store and
// postgres.Store implement it.
type PasswordTx interface {
	Tx
	// CreatePasswordReset is ResetStore.CreatePasswordReset inside the transaction.
	CreatePasswordReset(ctx context.Context, r PasswordReset) error
	// ChangePassword stores passwordHash as the user's password and spends
	// every live reset of the user: a reset link sent before a change must
	// not undo it. It returns ErrNotFound when there is no such user.
	ChangePassword(ctx context.Context, userID, passwordHash string, now time.Time) error
}
