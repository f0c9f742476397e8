package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	p      Params
	now    func() time.Time
	logger *slog.Logger
	parser *jwt.Parser
	cache  *cache // nil when disabled
}

// NewVerifier returns a Verifier accepting only EdDSA tokens signed by a key
// of ring, issued by p.Issuer for p.Audience. A token refused for its
// issuer or audience is logged at debug level with the expected and the
// presented value, so that an operator can find a mis-set instance.
func NewVerifier(ring *Keyring, p Params, now func() time.Time, logger *slog.Logger) (*Verifier, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if ring == nil || now == nil || logger == nil {
		return nil, errors.New("token: verifier needs a keyring, a clock and a logger")
	}
	v := &Verifier{
		ring:   ring,
		p:      p,
		now:    now,
		logger: logger,
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
		v.explain(ctx, err, claims)
		return nil, reject(err)
	}
	if v.cache != nil {
		v.cache.put(raw, claims, kid, now)
	}
	c := *claims
	return &c, nil
}

// explain logs at debug level why a validly signed token was refused for
// its issuer or audience: the usual sign of two instances set up with
// different AUTHD_JWT_ISSUER or AUTHD_JWT_AUDIENCE.
func (v *Verifier) explain(ctx context.Context, err error, c *Claims) {
	switch {
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		v.logger.DebugContext(ctx, "token refused: issuer is not ours", "want", v.p.Issuer, "got", c.Issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		v.logger.DebugContext(ctx, "token refused: audience is not ours", "want", v.p.Audience, "got", []string(c.Audience))
	}
}

func reject(err error) error {
	return fmt.Errorf("token: %w: %w", auth.ErrUnauthorized, err)
}
