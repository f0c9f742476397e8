package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authd/authd/internal/auth"
)

// Reasons a token is rejected before or around the library's own checks.
var (
	errEmpty      = errors.New("empty token")
	errTooLarge   = fmt.Errorf("token larger than %d bytes", MaxTokenSize)
	errNoKID      = errors.New("kid header is required")
	errUnknownKID = errors.New("unknown or retired kid")
	errCrit       = errors.New("crit header is not supported")
)

// Verifier checks access tokens and caches the ones that pass. Safe for
// concurrent use.
type Verifier struct {
	ring   *Keyring
	now    func() time.Time
	parser *jwt.Parser
	cache  *cache // nil when disabled
}

// NewVerifier returns a Verifier accepting only EdDSA tokens signed by a key
// of ring, issued by p.Issuer for p.Audience. A nil now means time.Now.
func NewVerifier(ring *Keyring, p Params, now func() time.Time) (*Verifier, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		ring: ring,
		now:  now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{alg}),
			jwt.WithIssuer(p.Issuer),
			jwt.WithAudience(p.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithNotBeforeRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(Leeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}
	size := p.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		v.cache = newCache(size)
	}
	return v, nil
}

// Verify checks raw, a compact JWS without the "Bearer " prefix, and returns
// its claims. Accepted: at most MaxTokenSize bytes; header alg EdDSA (nothing
// else, "none" included), a kid naming a key of the ring that still verifies,
// no crit; a valid Ed25519 signature; iss and aud exactly as configured; exp,
// nbf, iat, sub, jti and sid present; now < exp+Leeway, nbf-Leeway <= now,
// iat <= now+Leeway. Every rejection wraps auth.ErrUnauthorized.
//
// Tokens that pass are cached until their exp; a cached token is returned
// without the signature check as long as it has not expired and its key is
// still in the ring, so a hit costs a map lookup. Revocation is not checked
// here. Verify blocks only when the kid is unknown: the ring reloads from
// the store (at most once per KeyParams.MinReloadGap, shared by concurrent
// callers) and Verify waits for it or for ctx.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	switch {
	case raw == "":
		return nil, reject(errEmpty)
	case len(raw) > MaxTokenSize:
		return nil, reject(errTooLarge)
	}
	now := v.now()
	if v.cache != nil {
		if c, ok := v.cache.get(raw, now, v.ring); ok {
			return c, nil
		}
	}
	claims := &Claims{}
	var kid string
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errCrit
		}
		kid, _ = t.Header["kid"].(string)
		if kid == "" {
			return nil, errNoKID
		}
		k := v.ring.verifier(ctx, kid, now)
		if k == nil {
			return nil, errUnknownKID
		}
		return k.pub, nil
	})
	if err != nil {
		return nil, reject(err)
	}
	if v.cache != nil {
		v.cache.put(raw, claims, kid, now)
	}
	c := *claims
	return &c, nil
}

func reject(err error) error {
	return fmt.Errorf("token: %w: %w", auth.ErrUnauthorized, err)
}
