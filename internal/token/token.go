// Package token issues and verifies authd's access tokens: JWTs signed with
// EdDSA (Ed25519) under keys that live, sealed, in the database and rotate
// without downtime.
//
// Three types divide the work. A Keyring loads the signing keys, creates the
// first one, rotates, publishes the JWKS and keeps itself fresh (Run). An
// Issuer signs access tokens with the ring's current key. A Verifier checks a
// token against an allow-list (EdDSA only, known kid, exact iss and aud, exp,
// nbf and iat within a fixed Leeway) and remembers tokens it has already
// verified, so that the Ed25519 verify is paid once per token rather than once
// per request. Revocation is not this package's business: the session package
// checks it on every request.
package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// Leeway is the fixed clock-skew allowance for exp, nbf and iat: a token
	// is accepted until exp+Leeway and from nbf-Leeway, and its iat may be at
	// most Leeway in the future. 30s covers NTP-synchronised hosts with room
	// to spare while adding little to a 15-minute token's life.
	Leeway = 30 * time.Second

	// MaxTokenSize is the largest raw token, in bytes, that Verify parses.
	// Our tokens are about 500 bytes; anything near the cap is hostile.
	MaxTokenSize = 4 << 10

	// DefaultCacheSize is the number of verified tokens a Verifier keeps when
	// Params.CacheSize is 0.
	DefaultCacheSize = 10_000

	// alg is the only signing algorithm issued or accepted.
	alg = "EdDSA"
)

// Params is the token slice of the configuration.
type Params struct {
	// Issuer is the iss claim of issued tokens and the only one accepted
	// (AUTHD_JWT_ISSUER).
	Issuer string
	// Audience is the aud claim of issued tokens (a single string) and the
	// audience a token must name to verify (AUTHD_JWT_AUDIENCE).
	Audience string
	// AccessTTL is the lifetime of an access token (AUTHD_ACCESS_TOKEN_TTL).
	AccessTTL time.Duration
	// CacheSize bounds the Verifier's cache of verified tokens: 0 means
	// DefaultCacheSize, a negative value disables the cache.
	CacheSize int
}

func (p Params) validate() error {
	switch {
	case p.Issuer == "":
		return errors.New("token: issuer is empty")
	case p.Audience == "":
		return errors.New("token: audience is empty")
	case p.AccessTTL <= 0:
		return fmt.Errorf("token: access TTL %v is not positive", p.AccessTTL)
	}
	return nil
}

// Claims are the claims of an authd access token: the registered ones (iss,
// sub, aud, exp, iat, nbf, jti) plus the session id and the authentication
// methods used at login. A *Claims returned by Verify is the caller's, but
// what it points to (Audience, AMR, the *NumericDate times) is shared with the
// verified-token cache and other callers: read it, never modify it.
type Claims struct {
	jwt.RegisteredClaims
	// SID is the session (refresh-token family) the token was issued for.
	SID string `json:"sid"`
	// AMR lists the authentication methods used at login ("pwd", "otp", ...).
	AMR []string `json:"amr"`
}

// Validate implements jwt.ClaimsValidator. It is called by the parser after
// the signature and the standard checks, and requires the claims that authd
// always issues and that the rest of the service relies on.
func (c *Claims) Validate() error {
	switch {
	case c.Subject == "":
		return errors.New("sub claim is required")
	case c.ID == "":
		return errors.New("jti claim is required")
	case c.SID == "":
		return errors.New("sid claim is required")
	case c.IssuedAt == nil:
		return errors.New("iat claim is required")
	}
	return nil
}

// UnmarshalJSON decodes the claims and refuses an exp, nbf or iat that is
// not a JSON number: jwt.NumericDate alone also takes a numeric string
// ("exp":"9999999999") and null, and RFC 7519 §2 allows neither.
func (c *Claims) UnmarshalJSON(b []byte) error {
	var dates struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(b, &dates); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    json.RawMessage
	}{{"exp", dates.Exp}, {"nbf", dates.Nbf}, {"iat", dates.Iat}} {
		if d.v != nil && !isJSONNumber(d.v) {
			return fmt.Errorf("%s claim must be a number", d.name)
		}
	}
	type plain Claims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

// isJSONNumber reports whether v, one valid JSON value, is a number.
func isJSONNumber(v json.RawMessage) bool {
	return len(v) > 0 && (v[0] == '-' || '0' <= v[0] && v[0] <= '9')
}

// wireClaims is the encoded form: aud as a single string when there is one
// audience, as most relying parties expect, instead of jwt's default array.
type wireClaims struct {
	Issuer    string           `json:"iss,omitempty"`
	Subject   string           `json:"sub,omitempty"`
	Audience  any              `json:"aud,omitempty"`
	ExpiresAt *jwt.NumericDate `json:"exp,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat,omitempty"`
	ID        string           `json:"jti,omitempty"`
	SID       string           `json:"sid,omitempty"`
	AMR       []string         `json:"amr,omitempty"`
}

// MarshalJSON encodes the claims with a single audience as a plain string.
func (c Claims) MarshalJSON() ([]byte, error) {
	w := wireClaims{
		Issuer:    c.Issuer,
		Subject:   c.Subject,
		ExpiresAt: c.ExpiresAt,
		NotBefore: c.NotBefore,
		IssuedAt:  c.IssuedAt,
		ID:        c.ID,
		SID:       c.SID,
		AMR:       c.AMR,
	}
	switch len(c.Audience) {
	case 0:
	case 1:
		w.Audience = c.Audience[0]
	default:
		w.Audience = []string(c.Audience)
	}
	return json.Marshal(w)
}
