package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/auth/statetest"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/token"
)

func (e *env) start(t *testing.T, userID string) Pair {
	t.Helper()
	p, err := e.m.Start(t.Context(), userID, []string{"pwd"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return p
}

func (e *env) authOK(t *testing.T, access string) *token.Claims {
	t.Helper()
	c, err := e.m.Authenticate(t.Context(), access)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return c
}

func (e *env) authRevoked(t *testing.T, access, what string) {
	t.Helper()
	if _, err := e.m.Authenticate(t.Context(), access); !errors.Is(err, auth.ErrTokenRevoked) {
		t.Errorf("Authenticate(%s) = %v, want auth.ErrTokenRevoked", what, err)
	}
}

func (e *env) refreshRevoked(t *testing.T, refresh, what string) {
	t.Helper()
	if _, err := e.m.Refresh(t.Context(), refresh); !errors.Is(err, auth.ErrTokenRevoked) {
		t.Errorf("Refresh(%s) = %v, want auth.ErrTokenRevoked", what, err)
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		p := e.start(t, uid)
		if p.TokenType != "Bearer" || p.ExpiresIn != 900 || len(p.RefreshToken) != 43 || p.AccessToken == "" {
			t.Errorf("pair = %+v", p)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(p.RefreshToken); err != nil || len(raw) != 32 {
			t.Errorf("refresh token is not 32 base64url bytes: %v", err)
		}
		c := e.authOK(t, p.AccessToken)
		if c.Subject != uid || c.SID == "" || len(c.AMR) != 1 || c.AMR[0] != "pwd" {
			t.Errorf("claims = %+v", c)
		}
		s, err := e.db.SessionByID(t.Context(), c.SID)
		if err != nil {
			t.Fatalf("SessionByID: %v", err)
		}
		if s.UserID != uid || !s.ExpiresAt.Equal(e.clock.Now().Add(testParams.RefreshTTL)) {
			t.Errorf("session = %+v", s)
		}
		// The pair serialises as API.md's token pair.
		b, _ := json.Marshal(p)
		for _, field := range []string{`"access_token":`, `"token_type":"Bearer"`, `"expires_in":900`, `"refresh_token":`} {
			if !strings.Contains(string(b), field) {
				t.Errorf("pair JSON %s lacks %s", b, field)
			}
		}
		// Only the hash is stored: the store rotates the hash, not the token.
		h := sha256.Sum256([]byte(p.RefreshToken))
		if _, err := e.db.RotateRefreshToken(t.Context(), []byte(p.RefreshToken), auth.RefreshToken{Hash: []byte("x"), ExpiresAt: e.clock.Now().Add(time.Hour)}, e.clock.Now()); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("the plain refresh token is a stored key: %v", err)
		}
		if _, err := e.db.RotateRefreshToken(t.Context(), h[:], auth.RefreshToken{Hash: []byte("y"), ExpiresAt: e.clock.Now().Add(time.Hour)}, e.clock.Now()); err != nil {
			t.Errorf("the SHA-256 of the refresh token is not stored: %v", err)
		}
	})
}

func TestRefreshRotates(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		p1 := e.start(t, uid)
		sid := e.authOK(t, p1.AccessToken).SID
		e.clock.Advance(time.Minute)
		p2, err := e.m.Refresh(t.Context(), p1.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		e.clock.Advance(time.Minute)
		p3, err := e.m.Refresh(t.Context(), p2.RefreshToken)
		if err != nil {
			t.Fatalf("second Refresh: %v", err)
		}
		seen := map[string]bool{}
		for _, p := range []Pair{p1, p2, p3} {
			if seen[p.AccessToken] || seen[p.RefreshToken] {
				t.Fatal("a token was handed out twice")
			}
			seen[p.AccessToken], seen[p.RefreshToken] = true, true
			if c := e.authOK(t, p.AccessToken); c.SID != sid || c.Subject != uid {
				t.Errorf("refreshed claims = %+v, want session %s", c, sid)
			}
		}
	})
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		p1 := e.start(t, uid)
		other := e.start(t, uid) // another login of the same user
		p2, err := e.m.Refresh(t.Context(), p1.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		// The thief (or the victim) replays the spent token.
		e.refreshRevoked(t, p1.RefreshToken, "a spent token")
		e.authRevoked(t, p1.AccessToken, "the family's first access token")
		e.authRevoked(t, p2.AccessToken, "the family's live access token")
		e.refreshRevoked(t, p2.RefreshToken, "the family's live refresh token")
		e.authOK(t, other.AccessToken)
		if _, err := e.m.Refresh(t.Context(), other.RefreshToken); err != nil {
			t.Errorf("another session of the user: %v", err)
		}
	})
}

func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		p := e.start(t, e.user(t))
		const n = 16
		pairs := make([]Pair, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				pairs[i], errs[i] = e.m.Refresh(context.Background(), p.RefreshToken)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
				if pairs[i].AccessToken == "" {
					t.Errorf("winner %d got an empty pair", i)
				}
			case !errors.Is(err, auth.ErrTokenRevoked):
				t.Errorf("loser %d: %v, want auth.ErrTokenRevoked", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d refreshes won, want exactly 1", wins)
		}
	})
}

// countingSessions counts the calls that reach the real session store.
type countingSessions struct {
	auth.SessionStore
	rotations atomic.Int64
}

func (c *countingSessions) RotateRefreshToken(ctx context.Context, old []byte, next auth.RefreshToken, now time.Time) (*auth.Session, error) {
	c.rotations.Add(1)
	return c.SessionStore.RotateRefreshToken(ctx, old, next, now)
}

func TestRefreshRejects(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		counting := &countingSessions{SessionStore: e.db}
		e.m.sessions = counting
		valid := e.start(t, e.user(t)).RefreshToken
		for _, bad := range []string{
			"", "short", valid + "A", valid[:42], valid[:42] + "=", strings.Repeat("!", 43),
			valid[:42] + "B", // non-canonical: the last character carries stray bits
			strings.Repeat("A", 1<<20),
		} {
			if _, err := e.m.Refresh(t.Context(), bad); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("Refresh(malformed %.20q) = %v, want auth.ErrUnauthorized", bad, err)
			}
		}
		if n := counting.rotations.Load(); n != 0 {
			t.Errorf("malformed tokens reached the store %d times", n)
		}
		unknown, _ := newRefreshToken()
		if _, err := e.m.Refresh(t.Context(), unknown); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("Refresh(unknown) = %v, want auth.ErrUnauthorized", err)
		}
		e.clock.Advance(testParams.RefreshTTL)
		if _, err := e.m.Refresh(t.Context(), valid); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("Refresh(expired session) = %v, want auth.ErrUnauthorized", err)
		}
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		p := e.start(t, uid)
		p2, err := e.m.Refresh(t.Context(), p.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		other := e.start(t, uid)
		c := e.authOK(t, p2.AccessToken)
		if err := e.m.Logout(t.Context(), c, false); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		e.authRevoked(t, p2.AccessToken, "the logged-out token")
		e.authRevoked(t, p.AccessToken, "an older token of the session")
		e.refreshRevoked(t, p2.RefreshToken, "the session's refresh token")
		e.authOK(t, other.AccessToken)
		if _, err := e.m.Refresh(t.Context(), other.RefreshToken); err != nil {
			t.Errorf("another session after logout: %v", err)
		}
		// A new login right away (same second) is not caught by anything.
		e.authOK(t, e.start(t, uid).AccessToken)
	})
}

func TestLogoutAll(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		a, b := e.start(t, uid), e.start(t, uid)
		strangers := e.start(t, e.user(t))
		e.clock.Advance(time.Second)
		b2, err := e.m.Refresh(t.Context(), b.RefreshToken) // issued in the cut-off's own second
		if err != nil {
			t.Fatal(err)
		}
		if err := e.m.Logout(t.Context(), e.authOK(t, a.AccessToken), true); err != nil {
			t.Fatalf("Logout(all): %v", err)
		}
		e.authRevoked(t, a.AccessToken, "the caller's token")
		e.authRevoked(t, b.AccessToken, "the other session's old token")
		e.authRevoked(t, b2.AccessToken, "a token issued in the same second")
		e.refreshRevoked(t, a.RefreshToken, "the caller's refresh token")
		e.refreshRevoked(t, b2.RefreshToken, "the other session's refresh token")
		e.authOK(t, strangers.AccessToken)
		// Logging in again right after works: the cut-off is strictly before.
		again := e.start(t, uid)
		e.authOK(t, again.AccessToken)
		if _, err := e.m.Refresh(t.Context(), again.RefreshToken); err != nil {
			t.Errorf("refresh of a new session after logout-all: %v", err)
		}
	})
}

func TestRevokeUser(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		keep, drop := e.start(t, uid), e.start(t, uid)
		e.clock.Advance(time.Minute)
		keepSID := e.authOK(t, keep.AccessToken).SID

		// Password change: every session but the caller's.
		if err := e.m.RevokeUser(t.Context(), uid, keepSID); err != nil {
			t.Fatalf("RevokeUser(keep): %v", err)
		}
		e.authOK(t, keep.AccessToken)
		e.authRevoked(t, drop.AccessToken, "another session's token")
		e.refreshRevoked(t, drop.RefreshToken, "another session's refresh token")
		kept, err := e.m.Refresh(t.Context(), keep.RefreshToken)
		if err != nil {
			t.Fatalf("refresh of the kept session: %v", err)
		}
		e.authOK(t, kept.AccessToken)

		// Password reset: none kept.
		e.clock.Advance(time.Minute)
		if err := e.m.RevokeUser(t.Context(), uid, ""); err != nil {
			t.Fatalf("RevokeUser: %v", err)
		}
		e.authRevoked(t, kept.AccessToken, "the formerly kept session's token")
		e.refreshRevoked(t, kept.RefreshToken, "the formerly kept refresh token")
	})
}

func TestIntrospect(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		uid := e.user(t)
		p := e.start(t, uid)
		in, err := e.m.Introspect(t.Context(), p.AccessToken)
		if err != nil {
			t.Fatalf("Introspect: %v", err)
		}
		now := e.clock.Now().Unix()
		want := Introspection{
			Active: true, Subject: uid, Issuer: "https://authd.test", Audience: "authd", TokenType: "Bearer",
			ExpiresAt: now + 900, IssuedAt: now, NotBefore: now, JTI: in.JTI, SID: in.SID,
		}
		if in != want || in.JTI == "" || in.SID == "" {
			t.Errorf("Introspect = %+v, want %+v", in, want)
		}
		for name, raw := range map[string]string{"garbage": "not.a.token", "refresh token": p.RefreshToken, "empty": ""} {
			if in, err := e.m.Introspect(t.Context(), raw); err != nil || in.Active {
				t.Errorf("Introspect(%s) = %+v, %v: want inactive", name, in, err)
			}
		}
		if err := e.m.Logout(t.Context(), e.authOK(t, p.AccessToken), false); err != nil {
			t.Fatal(err)
		}
		in, err = e.m.Introspect(t.Context(), p.AccessToken)
		if err != nil || in.Active {
			t.Errorf("Introspect(revoked) = %+v, %v", in, err)
		}
		if b, _ := json.Marshal(in); string(b) != `{"active":false}` {
			t.Errorf("inactive answer = %s", b)
		}
	})
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openSQLite(t), statetest.Memory(t, time.Now), clocktest.New(time.Now()))
	counts := func() (issued, revoked float64) {
		mfs, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			v := mf.GetMetric()[0].GetCounter().GetValue()
			switch mf.GetName() {
			case "authd_tokens_issued_total":
				issued = v
			case "authd_tokens_revoked_total":
				revoked = v
			}
		}
		return issued, revoked
	}
	if i, r := counts(); i != 0 || r != 0 {
		t.Fatalf("fresh counters: issued %v revoked %v", i, r)
	}
	uid := e.user(t)
	p := e.start(t, uid)
	if _, err := e.m.Refresh(t.Context(), p.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if i, _ := counts(); i != 2 {
		t.Errorf("issued = %v after a login and a refresh, want 2", i)
	}
	e.refreshRevoked(t, p.RefreshToken, "a reused token")
	if _, r := counts(); r != 1 {
		t.Errorf("revoked = %v after a reuse, want 1", r)
	}
}

func TestNewManagerRegistersOnce(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	e := newEnv(t, db, statetest.Memory(t, time.Now), clocktest.New(time.Now()))
	if _, err := NewManager(db, e.state, e.m.issuer, e.ver, testParams, time.Now, e.reg); err == nil {
		t.Error("a second Manager registered the same metrics on one registry")
	}
	if _, err := NewManager(db, e.state, e.m.issuer, e.ver, Params{AccessTTL: time.Minute}, time.Now, prometheus.NewRegistry()); err == nil {
		t.Error("NewManager accepted a zero refresh TTL")
	}
	if _, err := NewManager(db, e.state, e.m.issuer, e.ver, testParams, nil, prometheus.NewRegistry()); err == nil {
		t.Error("NewManager accepted a nil clock")
	}
}

// TestFailClosed points the state store at a port where nothing listens:
// authentication must fail, fast, with auth.ErrUnavailable, never pass.
func TestFailClosed(t *testing.T) {
	t.Parallel()
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			clock := clocktest.New(time.Now())
			live := newEnv(t, db.open(t), statetest.Memory(t, clock.Now), clock)
			p := live.start(t, live.user(t))
			live.authOK(t, p.AccessToken) // the token is good and cached

			dead := openDeadRedis(t)
			m, err := NewManager(live.db, dead, live.m.issuer, live.ver, testParams, clock.Now, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			c, _ := live.ver.Verify(t.Context(), p.AccessToken)
			began := time.Now()
			checks := map[string]func() error{
				"Authenticate": func() error { _, err := m.Authenticate(t.Context(), p.AccessToken); return err },
				"Introspect":   func() error { _, err := m.Introspect(t.Context(), p.AccessToken); return err },
				"Logout":       func() error { return m.Logout(t.Context(), c, false) },
				"Logout all":   func() error { return m.Logout(t.Context(), c, true) },
				"RevokeUser":   func() error { return m.RevokeUser(t.Context(), c.Subject, "") },
			}
			for name, call := range checks {
				if err := call(); !errors.Is(err, auth.ErrUnavailable) {
					t.Errorf("%s with Redis down = %v, want auth.ErrUnavailable", name, err)
				}
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("%d calls took %v with Redis down: not failing fast", len(checks), d)
			}
		})
	}
}

// TestCutoffCoversEndedSessions: a session that ended in the store (its
// refresh family expired) may still have a live access token. RevokeUser
// does not list that session, so only the user's cut-off can catch it.
func TestCutoffCoversEndedSessions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, e *env) {
		short, err := NewManager(e.db, e.state, e.m.issuer, e.ver, Params{AccessTTL: testParams.AccessTTL, RefreshTTL: 10 * time.Minute}, e.clock.Now, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		uid := e.user(t)
		p, err := short.Start(t.Context(), uid, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(11 * time.Minute) // session over, access token good for 4 more minutes
		e.authOK(t, p.AccessToken)
		if err := short.RevokeUser(t.Context(), uid, ""); err != nil {
			t.Fatalf("RevokeUser: %v", err)
		}
		e.authRevoked(t, p.AccessToken, "a token of an ended session")
	})
}
