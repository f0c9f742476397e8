package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Issuer signs access tokens with the keyring's current key. Safe for
// concurrent use; Issue never blocks on I/O.
type Issuer struct {
	ring *Keyring
	p    Params
	now  func() time.Time
}

// NewIssuer returns an Issuer for p.Issuer and p.Audience whose tokens live
// p.AccessTTL.
func NewIssuer(ring *Keyring, p Params, now func() time.Time) (*Issuer, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if ring == nil || now == nil {
		return nil, errors.New("token: issuer needs a keyring and a clock")
	}
	return &Issuer{ring: ring, p: p, now: now}, nil
}

// Issue signs an access token for userID in session sid: header alg EdDSA
// and the signing key's kid; claims iss, sub, aud, exp (now + AccessTTL),
// iat, nbf (now), jti (a fresh UUIDv7), sid and amr. It returns the compact
// token and its claims.
func (i *Issuer) Issue(userID, sid string, amr []string) (string, Claims, error) {
	if userID == "" || sid == "" {
		return "", Claims{}, fmt.Errorf("token: issue: user id and session id are required")
	}
	k, err := i.ring.signer()
	if err != nil {
		return "", Claims{}, err
	}
	jti, err := uuid.NewV7()
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: issue: jti: %w", err)
	}
	now := i.now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.p.Issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{i.p.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(i.p.AccessTTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti.String(),
		},
		SID: sid,
		AMR: amr,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = k.kid
	raw, err := t.SignedString(k.priv)
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: issue: sign: %w", err)
	}
	return raw, c, nil
}
