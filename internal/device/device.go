// Package device issues and checks device tokens: OWASP's device cookies
// for an API. A successful password login hands the client a token naming
// its account and a device id; a later login that presents it is throttled
// by the counts of that (account, device) pair alone, so an attacker's
// failures on the account cannot lock the owner's known devices out.
//
// A token is verifiable without storage: an HMAC-SHA-256 over the account
// id, a random device id, an expiry and the account's device generation.
// The generation is kept with the account in the database and moves on with
// every "logout all" (and password change or reset), which invalidates all
// tokens issued before; the expiry bounds each token's life by itself.
// Tokens are opaque to clients: base64url, about 135 characters for a
// UUID account id.
package device

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// DefaultTTL is how long a device token counts: a year, renewed by every
// login that presents it.
const DefaultTTL = 365 * 24 * time.Hour

// MaxLen bounds a token's text; longer input is not a token.
const MaxLen = 512

// version is the first byte of every token: a new format or key gets a new one.
const version = 1

const (
	idBytes  = 16
	macBytes = sha256.Size
	// fixed is the layout before the account id: version, device id,
	// expiry (unix seconds), generation.
	fixed = 1 + idBytes + 8 + 8
)

// ErrInvalid is returned by Parse for anything that is not a live token
// made with this key: malformed, forged, or expired.
var ErrInvalid = errors.New("device: invalid token")

// Claims is what a valid token says.
type Claims struct {
	UserID     string
	Device     string // the device id: 32 hex digits
	Generation int64
	ExpiresAt  time.Time
}

// Tokens issues and parses device tokens with one key. It is safe for
// concurrent use and holds no resources.
type Tokens struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// New returns Tokens signing with key (at least 32 bytes; derive it from the
// service secret), valid for ttl (DefaultTTL when not positive), on the
// clock now.
func New(key []byte, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("device: key of %d bytes, want at least 32", len(key))
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Tokens{key: key, ttl: ttl, now: now}, nil
}

// Issue returns a token for userID in device generation gen, valid for the
// configured ttl from now. device is the id of a token being renewed, or ""
// for a new device (a fresh random id).
func (t *Tokens) Issue(userID string, gen int64, device string) string {
	id, err := hex.DecodeString(device)
	if err != nil || len(id) != idBytes {
		id = make([]byte, idBytes)
		_, _ = rand.Read(id) // crypto/rand.Read never fails (it crashes the program instead)
	}
	b := make([]byte, fixed, fixed+len(userID)+macBytes)
	b[0] = version
	copy(b[1:], id)
	binary.BigEndian.PutUint64(b[1+idBytes:], uint64(t.now().Add(t.ttl).Unix()))
	binary.BigEndian.PutUint64(b[1+idBytes+8:], uint64(gen))
	b = append(b, userID...)
	b = t.mac(b, b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Parse checks s and returns its claims, or an error wrapping ErrInvalid.
// It does not check the generation: the caller compares it with the
// account's.
func (t *Tokens) Parse(s string) (Claims, error) {
	if len(s) > MaxLen {
		return Claims{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < fixed+1+macBytes || b[0] != version {
		return Claims{}, fmt.Errorf("%w: malformed", ErrInvalid)
	}
	body, sum := b[:len(b)-macBytes], b[len(b)-macBytes:]
	if !hmac.Equal(sum, t.mac(nil, body)) {
		return Claims{}, fmt.Errorf("%w: bad signature", ErrInvalid)
	}
	c := Claims{
		Device:     hex.EncodeToString(body[1 : 1+idBytes]),
		ExpiresAt:  time.Unix(int64(binary.BigEndian.Uint64(body[1+idBytes:])), 0),
		Generation: int64(binary.BigEndian.Uint64(body[1+idBytes+8:])),
		UserID:     string(body[fixed:]),
	}
	if !t.now().Before(c.ExpiresAt) {
		return Claims{}, fmt.Errorf("%w: expired", ErrInvalid)
	}
	return c, nil
}

// mac appends the HMAC of msg to dst.
func (t *Tokens) mac(dst, msg []byte) []byte {
	h := hmac.New(sha256.New, t.key)
	h.Write([]byte("authd device token\x00"))
	h.Write(msg)
	return h.Sum(dst)
}
