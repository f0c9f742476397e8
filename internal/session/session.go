// Package session is authd's session service: it starts sessions (a login's
// family of refresh tokens) and hands out token pairs, rotates refresh tokens
// with reuse detection (RFC 9700), authenticates access tokens with one
// revocation round trip to the state store, and revokes: one token, one
// session, or every session of a user.
//
// Durable facts (sessions, refresh-token hashes) live in an auth.SessionStore.
// What must reach every instance at once, for no longer than an access token
// lives, lives in an auth.StateStore: the revoked jti, the revoked session
// ids, and a per-user cut-off. All three keys of one user share a Redis hash
// tag, so the check is one MGET even on Redis Cluster.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/token"
)

// refreshBytes is the entropy of a refresh token: 256 bits.
const refreshBytes = 32

// refreshLen is the length of its base64url (unpadded) text.
var refreshLen = base64.RawURLEncoding.EncodedLen(refreshBytes)

// raceSlack extends the life of session revocations past the last access
// token they must cover, for a refresh that rotated just before the session
// was revoked and signs its access token just after.
const raceSlack = time.Minute

// Params is the session slice of the configuration.
type Params struct {
	// AccessTTL is the access-token lifetime (AUTHD_ACCESS_TOKEN_TTL); it
	// must match the token.Issuer's. Revocations are kept this long (plus
	// token.Leeway and a minute), after which every token they cover has expired.
	AccessTTL time.Duration
	// RefreshTTL is the absolute lifetime of a session and of its refresh
	// tokens (AUTHD_REFRESH_TOKEN_TTL): rotation does not extend it.
	RefreshTTL time.Duration
}

// Pair is what login, MFA and refresh answer with.
type Pair struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"` // always "Bearer"
	ExpiresIn    int    `json:"expires_in"` // seconds
	RefreshToken string `json:"refresh_token"`
}

// Manager is the session service. It is safe for concurrent use and holds
// no goroutines or resources of its own.
type Manager struct {
	sessions auth.SessionStore
	state    auth.StateStore
	issuer   *token.Issuer
	verifier *token.Verifier
	p        Params
	now      func() time.Time

	issued  prometheus.Counter
	revoked prometheus.Counter
}

// NewManager returns a Manager over the given stores, issuing tokens with
// issuer and checking them with verifier. It registers
// authd_tokens_issued_total and authd_tokens_revoked_total on reg.
func NewManager(sessions auth.SessionStore, state auth.StateStore, issuer *token.Issuer, verifier *token.Verifier,
	p Params, now func() time.Time, reg prometheus.Registerer,
) (*Manager, error) {
	switch {
	case sessions == nil || state == nil || issuer == nil || verifier == nil:
		return nil, errors.New("session: a store, issuer or verifier is missing")
	case now == nil || reg == nil:
		return nil, errors.New("session: a clock and a registerer are required")
	case p.AccessTTL <= 0 || p.RefreshTTL <= 0:
		return nil, fmt.Errorf("session: access TTL %v and refresh TTL %v must be positive", p.AccessTTL, p.RefreshTTL)
	}
	m := &Manager{
		sessions: sessions, state: state, issuer: issuer, verifier: verifier, p: p, now: now,
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authd_tokens_issued_total",
			Help: "Access tokens issued (each with a refresh token): logins and refreshes.",
		}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authd_tokens_revoked_total",
			Help: "Revocations: access tokens revoked at logout plus sessions (refresh families) revoked by logout, reuse detection or a password change.",
		}),
	}
	for _, c := range []prometheus.Collector{m.issued, m.revoked} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("session: register metrics: %w", err)
		}
	}
	return m, nil
}

// Start opens a session for userID, who logged in with the methods in amr,
// and returns its first token pair. The session (sid, a UUIDv7) lives
// RefreshTTL; the refresh token is 256 random bits of which only the SHA-256
// is stored. It blocks on the session store.
func (m *Manager) Start(ctx context.Context, userID string, amr []string) (Pair, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Pair{}, fmt.Errorf("session: start: %w", err)
	}
	refresh, hash := newRefreshToken()
	now := m.now()
	s := &auth.Session{ID: id.String(), UserID: userID, AMR: amr, CreatedAt: now, ExpiresAt: now.Add(m.p.RefreshTTL)}
	access, _, err := m.issuer.Issue(userID, s.ID, amr)
	if err != nil {
		return Pair{}, fmt.Errorf("session: start: %w", err)
	}
	first := auth.RefreshToken{Hash: hash, SessionID: s.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt}
	if err := m.sessions.CreateSession(ctx, s, first); err != nil {
		return Pair{}, fmt.Errorf("session: start: %w", err)
	}
	m.issued.Inc()
	return m.pair(access, refresh), nil
}

// Refresh spends refresh and returns a new pair for the same session. The
// error matches auth.ErrUnauthorized when the token is malformed (no store
// is asked), unknown or expired, and auth.ErrTokenRevoked when its session
// was revoked or when the token had already been spent: then the whole
// family is revoked, in the store and in the state store, so the access
// tokens of the session die too. Of concurrent calls with one token exactly
// one succeeds (the others see a reuse). It blocks on both stores.
func (m *Manager) Refresh(ctx context.Context, refresh string) (Pair, error) {
	old, ok := parseRefreshToken(refresh)
	if !ok {
		return Pair{}, fmt.Errorf("session: refresh: malformed token: %w", auth.ErrUnauthorized)
	}
	next, nextHash := newRefreshToken()
	now := m.now()
	s, err := m.sessions.RotateRefreshToken(ctx, old, auth.RefreshToken{Hash: nextHash, CreatedAt: now, ExpiresAt: now.Add(m.p.RefreshTTL)}, now)
	switch {
	case errors.Is(err, auth.ErrTokenReused):
		if s == nil {
			return Pair{}, fmt.Errorf("session: refresh: token reused, family unknown: %w", auth.ErrTokenRevoked)
		}
		if rerr := m.revokeSessions(ctx, s.UserID, []string{s.ID}, now); rerr != nil {
			return Pair{}, fmt.Errorf("session: refresh: revoke reused family %s: %w", s.ID, rerr)
		}
		m.revoked.Inc()
		return Pair{}, fmt.Errorf("session: refresh: token reused, session %s revoked: %w", s.ID, auth.ErrTokenRevoked)
	case errors.Is(err, auth.ErrTokenRevoked):
		return Pair{}, fmt.Errorf("session: refresh: %w", auth.ErrTokenRevoked)
	case errors.Is(err, auth.ErrNotFound):
		return Pair{}, fmt.Errorf("session: refresh: unknown or expired token: %w", auth.ErrUnauthorized)
	case err != nil:
		return Pair{}, fmt.Errorf("session: refresh: %w", err)
	}
	access, _, err := m.issuer.Issue(s.UserID, s.ID, s.AMR)
	if err != nil {
		return Pair{}, fmt.Errorf("session: refresh: %w", err)
	}
	m.issued.Inc()
	return m.pair(access, next), nil
}

// Authenticate verifies bearer (the token alone, without "Bearer ") and
// checks in one state-store round trip that neither the token, nor its
// session, nor (by the user's cut-off) its user's sessions were revoked. The
// error matches auth.ErrUnauthorized for a bad token, auth.ErrTokenRevoked
// for a revoked one, and is the state store's (wrapping auth.ErrUnavailable)
// when it cannot answer: authentication fails closed. The claims are
// read-only (see token.Claims).
func (m *Manager) Authenticate(ctx context.Context, bearer string) (*token.Claims, error) {
	c, err := m.verifier.Verify(ctx, bearer)
	if err != nil {
		return nil, err
	}
	vals, err := m.state.MGet(ctx, jtiKey(c.Subject, c.ID), sidKey(c.Subject, c.SID), cutoffKey(c.Subject))
	if err != nil {
		return nil, fmt.Errorf("session: revocation check: %w", err)
	}
	if len(vals) != 3 {
		return nil, fmt.Errorf("session: revocation check: %d values for 3 keys", len(vals))
	}
	if vals[0] != nil {
		return nil, fmt.Errorf("session: token revoked: %w", auth.ErrTokenRevoked)
	}
	if vals[1] != nil {
		return nil, fmt.Errorf("session: session revoked: %w", auth.ErrTokenRevoked)
	}
	if vals[2] != nil {
		cut, keep, err := parseCutoff(vals[2])
		if err != nil {
			return nil, fmt.Errorf("session: revocation check: %w", err)
		}
		if c.IssuedAt.Unix() < cut && c.SID != keep {
			return nil, fmt.Errorf("session: user sessions revoked: %w", auth.ErrTokenRevoked)
		}
	}
	return c, nil
}

// Logout revokes the access token c (until it expires) and its session, or
// with all every session of c's user: their refresh tokens stop working and
// their access tokens are rejected by Authenticate on every instance. It
// blocks on both stores; an error means the revocation may be incomplete and
// the caller should answer 503 so that the client retries.
func (m *Manager) Logout(ctx context.Context, c *token.Claims, all bool) error {
	now := m.now()
	if c.ExpiresAt != nil {
		if ttl := c.ExpiresAt.Add(token.Leeway).Sub(now); ttl > 0 {
			if err := m.state.Set(ctx, jtiKey(c.Subject, c.ID), []byte{'1'}, ttl); err != nil {
				return fmt.Errorf("session: logout: revoke token: %w", err)
			}
			m.revoked.Inc()
		}
	}
	if !all {
		if err := m.revokeSessions(ctx, c.Subject, []string{c.SID}, now); err != nil {
			return fmt.Errorf("session: logout: %w", err)
		}
		m.revoked.Inc()
		return nil
	}
	if err := m.RevokeUser(ctx, c.Subject, ""); err != nil {
		return fmt.Errorf("session: logout all: %w", err)
	}
	// The session of c is normally among those just revoked; if it had
	// already ended in the store its live access tokens still need its key.
	if err := m.revokeSessions(ctx, c.Subject, []string{c.SID}, now); err != nil {
		return fmt.Errorf("session: logout all: %w", err)
	}
	return nil
}

// RevokeUser revokes every session of userID except keepSID (empty: keep
// none): a password change keeps the caller's session, a reset keeps none.
// Refresh tokens of the revoked sessions stop working, and their access
// tokens, as well as every other token of the user issued before now
// (outside keepSID), are rejected by Authenticate. The session store also
// moves the user's device generation on, so every device token issued
// before stops exempting its device from the account-wide login throttle.
// It blocks on both stores.
func (m *Manager) RevokeUser(ctx context.Context, userID, keepSID string) error {
	now := m.now()
	var keep []string
	if keepSID != "" {
		keep = []string{keepSID}
	}
	ids, err := m.sessions.RevokeUserSessions(ctx, userID, now, keep...)
	if err != nil {
		return fmt.Errorf("session: revoke user: %w", err)
	}
	// The cut-off kills every older token, even of sessions the store no
	// longer counts as live; the session keys also cover tokens issued in
	// the cut-off's own second, which "iat < cut-off" lets through.
	cut := strconv.FormatInt(now.Unix(), 10)
	if keepSID != "" {
		cut += " " + keepSID
	}
	if err := m.state.Set(ctx, cutoffKey(userID), []byte(cut), m.revocationTTL()); err != nil {
		return fmt.Errorf("session: revoke user: cut-off: %w", err)
	}
	if err := m.revokeSessions(ctx, userID, ids, now); err != nil {
		return fmt.Errorf("session: revoke user: %w", err)
	}
	m.revoked.Add(float64(len(ids)))
	return nil
}

// revokeSessions revokes the sessions ids of userID in the store (a no-op
// for those already revoked) and puts their ids on the state store's list.
func (m *Manager) revokeSessions(ctx context.Context, userID string, ids []string, now time.Time) error {
	for _, id := range ids {
		if err := m.sessions.RevokeSession(ctx, id, now); err != nil {
			return err
		}
		if err := m.state.Set(ctx, sidKey(userID, id), []byte{'1'}, m.revocationTTL()); err != nil {
			return fmt.Errorf("revoke session %s: %w", id, err)
		}
	}
	return nil
}

// revocationTTL is how long a session or user revocation must stay in the
// state store: until every access token it covers has expired.
func (m *Manager) revocationTTL() time.Duration { return m.p.AccessTTL + token.Leeway + raceSlack }

// Introspection is the RFC 7662 answer about a token. Inactive answers
// carry only "active": false.
type Introspection struct {
	Active    bool   `json:"active"`
	Subject   string `json:"sub,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	Audience  string `json:"aud,omitempty"`
	ExpiresAt int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	NotBefore int64  `json:"nbf,omitempty"`
	JTI       string `json:"jti,omitempty"`
	SID       string `json:"sid,omitempty"`
	// TokenType is "Bearer", as RFC 7662 §2.2 defines it (the token_type of
	// RFC 6749 §5.1, the same as in a Pair).
	TokenType string `json:"token_type,omitempty"`
}

// Introspect reports whether raw is a live access token, revocation
// included (RFC 7662). Anything that is not (malformed, expired, revoked, a
// refresh token) is {"active": false} with a nil error. A state store that
// cannot answer is an error wrapping auth.ErrUnavailable, not an inactive
// token: the caller cannot tell, and a 503 tells the resource server to
// retry instead of logging a user out.
func (m *Manager) Introspect(ctx context.Context, raw string) (Introspection, error) {
	c, err := m.Authenticate(ctx, raw)
	switch {
	case errors.Is(err, auth.ErrUnauthorized), errors.Is(err, auth.ErrTokenRevoked):
		return Introspection{}, nil
	case err != nil:
		return Introspection{}, err
	}
	in := Introspection{
		Active: true, Subject: c.Subject, Issuer: c.Issuer, JTI: c.ID, SID: c.SID, TokenType: "Bearer",
		ExpiresAt: c.ExpiresAt.Unix(), IssuedAt: c.IssuedAt.Unix(), NotBefore: c.NotBefore.Unix(),
	}
	if len(c.Audience) > 0 {
		in.Audience = c.Audience[0]
	}
	return in, nil
}

func (m *Manager) pair(access, refresh string) Pair {
	return Pair{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(m.p.AccessTTL / time.Second), RefreshToken: refresh}
}

// newRefreshToken returns a fresh refresh token and its SHA-256.
func newRefreshToken() (string, []byte) {
	b := make([]byte, refreshBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	s := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(s))
	return s, h[:]
}

// parseRefreshToken checks that s looks like a token newRefreshToken made
// and returns its hash.
func parseRefreshToken(s string) ([]byte, bool) {
	if len(s) != refreshLen {
		return nil, false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(s); err != nil {
		return nil, false
	}
	h := sha256.Sum256([]byte(s))
	return h[:], true
}

// State-store keys. The {user} hash tag puts a user's keys in one Redis
// Cluster slot, so Authenticate's MGET is legal there.
func jtiKey(userID, jti string) string { return "rev:{" + userID + "}:jti:" + jti }
func sidKey(userID, sid string) string { return "rev:{" + userID + "}:sid:" + sid }
func cutoffKey(userID string) string   { return "rev:{" + userID + "}:cut" }

// parseCutoff reads "UNIX" or "UNIX KEEPSID".
func parseCutoff(v []byte) (int64, string, error) {
	unix, keep, _ := strings.Cut(string(v), " ")
	n, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("bad user cut-off %q: %w", v, err)
	}
	return n, keep, nil
}
