package auth

import (
	"context"
	"time"
)

// UserStore keeps accounts. Implementations: sqlite.Store, postgres.Store.
type UserStore interface {
	// CreateUser inserts u. u.ID, u.Email (normalised) and u.PasswordHash are
	// set by the caller; CreatedAt/UpdatedAt are set by the store when zero.
	// It returns ErrEmailTaken when the email is already registered.
	CreateUser(ctx context.Context, u *User) error
	// UserByEmail returns ErrNotFound when no account has this normalised email.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UserByID returns ErrNotFound when there is no such account.
	UserByID(ctx context.Context, id string) (*User, error)
	// UpdatePasswordHash replaces the stored hash (rehash, upgrade, change).
	UpdatePasswordHash(ctx context.Context, userID, hash string, now time.Time) error
}

// SessionStore keeps sessions and their refresh tokens, durably.
type SessionStore interface {
	// CreateSession stores s and the first refresh token of its family in one transaction.
	CreateSession(ctx context.Context, s *Session, first RefreshToken) error
	// RotateRefreshToken spends the token whose hash is oldHash and stores next
	// in the same family, atomically: of two concurrent calls with the same
	// oldHash exactly one succeeds. It returns the session on success;
	// ErrNotFound when no such token exists, or its session or the token expired;
	// ErrTokenRevoked when the session was revoked; and ErrTokenReused (with the
	// session, so the caller can revoke the family) when the token was already spent.
	RotateRefreshToken(ctx context.Context, oldHash []byte, next RefreshToken, now time.Time) (*Session, error)
	// SessionByID returns ErrNotFound when there is no such session.
	SessionByID(ctx context.Context, id string) (*Session, error)
	// RevokeSession marks the session revoked; its refresh tokens stop working.
	// Revoking a revoked or unknown session is not an error.
	RevokeSession(ctx context.Context, id string, now time.Time) error
	// RevokeUserSessions revokes every live session of the user except those
	// listed in keep, and returns the IDs it revoked. In the same
	// transaction it adds 1 to the user's DeviceGeneration, which
	// invalidates every device token issued before.
	RevokeUserSessions(ctx context.Context, userID string, now time.Time, keep ...string) ([]string, error)
	// RevokedSessionsSince lists the sessions revoked at or after t, with
	// only ID, UserID and RevokedAt set, oldest first. Start-up uses it to
	// re-assert recent revocations in a state store that may have lost them.
	RevokedSessionsSince(ctx context.Context, t time.Time) ([]Session, error)
	// DeleteExpiredSessions deletes at most limit sessions that expired
	// before t, with their refresh tokens, and returns how many it deleted.
	// An expired session can no longer be refreshed, so nothing is lost;
	// reuse detection needs a spent token only while its session lives.
	DeleteExpiredSessions(ctx context.Context, t time.Time, limit int) (int64, error)
}

// KeyStore keeps the token signing keys and the service's generated secrets.
type KeyStore interface {
	// SigningKeys returns every stored key, oldest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// AddSigningKey stores k and marks every older current key retired at k.NotBefore.
	AddSigningKey(ctx context.Context, k SigningKey) error
	// DeleteSigningKeysRetiredBefore removes keys whose RetireAt is before t.
	DeleteSigningKeysRetiredBefore(ctx context.Context, t time.Time) error
	// SecretOrCreate returns the secret stored under name, storing value first
	// if there is none: every instance sharing the database gets the same one.
	SecretOrCreate(ctx context.Context, name string, value []byte) ([]byte, error)
}

// StateStore holds shared, expiring state: revocation lists, one-time codes,
// counters. Implementations: memstate.Store (one process) and redis.Store
// (shared between instances). Every method fails fast with an error wrapping
// ErrUnavailable when the backend cannot be reached. A ttl of 0 means no
// expiry; a negative ttl is an error.
type StateStore interface {
	// Get returns ErrNotFound when key is absent or expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// MGet returns one entry per key, nil where absent, in one round trip.
	MGet(ctx context.Context, keys ...string) ([][]byte, error)
	// Set stores value under key for ttl.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// SetNX stores value only if key is absent, and reports whether it did.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Incr adds 1 to the integer at key (0 when absent) and returns the new
	// value; ttl is applied when the key is created and left alone after.
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	// Delete removes the keys; absent keys are not an error.
	Delete(ctx context.Context, keys ...string) error
	// DeleteIfEqual removes key only if it holds value, atomically, and
	// reports whether it did: the owner of a claim (a unique value stored
	// with SetNX) gives it back without freeing a claim taken since by
	// someone else.
	DeleteIfEqual(ctx context.Context, key string, value []byte) (bool, error)
	// Expire gives an existing key a new ttl (0: no expiry) and reports
	// whether the key existed; an absent key is left absent.
	Expire(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Ping checks the backend (readiness).
	Ping(ctx context.Context) error
}
