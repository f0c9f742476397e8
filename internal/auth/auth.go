// Package auth is the domain of authd: the users, sessions and signing keys it
// manages, the errors callers branch on, and the small interfaces the rest of
// the service consumes (accounts storage, shared ephemeral state). It depends
// on nothing but the standard library; storage and transport packages depend
// on it.
package auth

import (
	"errors"
	"time"
)

// Errors that callers branch on with errors.Is. Everything else is wrapped
// with what was being done and becomes a 500 at the edge.
var (
	// ErrNotFound: the thing asked for does not exist (or has expired).
	ErrNotFound = errors.New("not found")
	// ErrEmailTaken: another account already has this normalised email.
	ErrEmailTaken = errors.New("email already registered")
	// ErrInvalidCredentials: wrong email or password, or a bad code.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrUnauthorized: missing, malformed, expired or otherwise invalid bearer token.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrTokenRevoked: a well-formed token that has been revoked (logout,
	// refresh-token reuse, password change).
	ErrTokenRevoked = errors.New("token revoked")
	// ErrOverloaded: the service refused work to protect itself; retry later.
	ErrOverloaded = errors.New("overloaded")
	// ErrUnavailable: a dependency (database, Redis, provider) cannot be reached.
	ErrUnavailable = errors.New("dependency unavailable")
	// ErrRateLimited: the client or account is over its budget.
	ErrRateLimited = errors.New("rate limited")
	// ErrTokenReused: a spent refresh token was presented again (RFC 9700
	// reuse detection); the caller revokes the whole family.
	ErrTokenReused = errors.New("refresh token reused")
)

// User is an account. Email is always normalised (see NormalizeEmail).
type User struct {
	ID            string // time-ordered UUIDv7, text form
	Email         string
	EmailVerified bool
	PasswordHash  string // PHC string (argon2id) or imported bcrypt hash
	Phone         string // E.164, empty when none
	PhoneVerified bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// DeviceGeneration is read from the store, never written through
	// CreateUser: device tokens carry the generation they were issued in,
	// and RevokeUserSessions (logout all, password change or reset) moves
	// it on, so that every earlier device token stops counting.
	DeviceGeneration int64
}

// Session is one login: the family of refresh tokens that descend from it.
// Its ID is the `sid` claim of every access token issued for it.
type Session struct {
	ID        string
	UserID    string
	AMR       []string // authentication methods used at login ("pwd", "otp", ...)
	CreatedAt time.Time
	ExpiresAt time.Time // the refresh family dies here whatever the rotation
	RevokedAt time.Time // zero while live
}

// RefreshToken is the stored form of an opaque refresh token: only the
// SHA-256 of the token ever reaches storage.
type RefreshToken struct {
	Hash      []byte // sha256 of the token string
	SessionID string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SigningKey is an Ed25519 key pair as stored: the private half sealed with
// the service's secret key.
type SigningKey struct {
	ID        string // kid
	PublicKey []byte // ed25519.PublicKey, 32 bytes
	Sealed    []byte // AEAD-sealed ed25519 private key seed
	CreatedAt time.Time
	NotBefore time.Time // instances start signing with it from here
	RetireAt  time.Time // zero while current; after it, verify only until RetireAt + access TTL
}
