// Package authtest holds the behaviour suite that every implementation of
// auth.UserStore, auth.SessionStore and auth.KeyStore must pass, so that the
// SQLite and PostgreSQL stores are held to one contract. It is imported only
// from tests.
package authtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authd/authd/internal/auth"
)

// Stores is what a storage backend provides.
type Stores interface {
	auth.UserStore
	auth.SessionStore
	auth.KeyStore
	auth.OutboxStore
	auth.EmailVerificationStore
}

// t0 is the suite's clock: every time is passed in explicitly. Its zone and
// nanoseconds check that stores return UTC truncated to microseconds.
var t0 = time.Date(2030, 3, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+2", 2*60*60))

// RunStoreSuite runs the behaviour suite. open is called once per subtest,
// from that subtest, and must return empty stores (their own database, schema
// or file) that it closes with t.Cleanup. Subtests run in parallel, and some
// call the stores from 16 goroutines at once.
func RunStoreSuite(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("users", func(t *testing.T) {
		t.Parallel()
		runUsers(t, open)
	})
	t.Run("sessions", func(t *testing.T) {
		t.Parallel()
		runSessions(t, open)
	})
	t.Run("keys", func(t *testing.T) {
		t.Parallel()
		runKeys(t, open)
	})
	t.Run("outbox", func(t *testing.T) {
		t.Parallel()
		runOutbox(t, open)
	})
	t.Run("email verification", func(t *testing.T) {
		t.Parallel()
		runEmailVerification(t, open)
	})
}

func runUsers(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("create and look up", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		u := &auth.User{
			ID: newID(t), Email: "ada@example.com", EmailVerified: true,
			PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Phone: "+14155550100",
			PhoneVerified: true, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute),
		}
		want := *u
		if err := st.CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		byEmail, err := st.UserByEmail(t.Context(), "ada@example.com")
		if err != nil {
			t.Fatalf("UserByEmail: %v", err)
		}
		checkUser(t, byEmail, &want)
		byID, err := st.UserByID(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("UserByID: %v", err)
		}
		checkUser(t, byID, &want)
	})

	t.Run("store sets creation time", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		u := &auth.User{ID: newID(t), Email: "bob@example.com", PasswordHash: "h"}
		if err := st.CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		got, err := st.UserByID(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("UserByID: %v", err)
		}
		if got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
			t.Errorf("CreatedAt %v, UpdatedAt %v: want both set and equal", got.CreatedAt, got.UpdatedAt)
		}
		checkTime(t, "CreatedAt", got.CreatedAt, u.CreatedAt)
		if got.Phone != "" || got.EmailVerified || got.PhoneVerified {
			t.Errorf("got %+v: want no phone, nothing verified", got)
		}
	})

	t.Run("duplicate email", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		first := createUser(t, st, "dup@example.com")
		err := st.CreateUser(t.Context(), &auth.User{ID: newID(t), Email: "dup@example.com", PasswordHash: "other", CreatedAt: t0})
		if !errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("second CreateUser: %v, want ErrEmailTaken", err)
		}
		got, err := st.UserByEmail(t.Context(), "dup@example.com")
		if err != nil || got.ID != first.ID {
			t.Fatalf("UserByEmail = %+v, %v: want the first account", got, err)
		}
	})

	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		createUser(t, st, "here@example.com")
		for name, f := range map[string]func() error{
			"UserByEmail": func() error { _, err := st.UserByEmail(t.Context(), "absent@example.com"); return err },
			"UserByID":    func() error { _, err := st.UserByID(t.Context(), newID(t)); return err },
			"UpdatePasswordHash": func() error {
				return st.UpdatePasswordHash(t.Context(), newID(t), "h", t0)
			},
		} {
			if err := f(); !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
	})

	t.Run("update password hash", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		u := createUser(t, st, "pw@example.com")
		other := createUser(t, st, "other@example.com")
		later := t0.Add(time.Hour)
		if err := st.UpdatePasswordHash(t.Context(), u.ID, "new-hash", later); err != nil {
			t.Fatalf("UpdatePasswordHash: %v", err)
		}
		got, err := st.UserByID(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("UserByID: %v", err)
		}
		if got.PasswordHash != "new-hash" {
			t.Errorf("PasswordHash = %q, want new-hash", got.PasswordHash)
		}
		checkTime(t, "UpdatedAt", got.UpdatedAt, later)
		checkTime(t, "CreatedAt", got.CreatedAt, t0)
		if o, err := st.UserByID(t.Context(), other.ID); err != nil || o.PasswordHash != other.PasswordHash {
			t.Errorf("other user = %+v, %v: want untouched", o, err)
		}
	})
}

// sessionTest is one test of the session part of the suite. It gets empty
// stores of its own and runs in parallel with the others.
type sessionTest struct {
	name string
	run  func(t *testing.T, st Stores)
}

func runSessions(t *testing.T, open func(t *testing.T) Stores) {
	tests := []sessionTest{
		{"create and look up", testSessionCreateAndLookUp},
		{"create for unknown user", testSessionForUnknownUser},
		{"rotate and reuse", testRotateAndReuse},
	}
	for _, rr := range rotateRefusals() {
		tests = append(tests, sessionTest{rr.name, rr.test})
	}
	tests = append(tests,
		sessionTest{"reuse of an expired spent token", testReuseOfExpiredSpentToken},
		sessionTest{"concurrent rotation", testConcurrentRotation},
		sessionTest{"revoke session", testRevokeSession},
		sessionTest{"revoked sessions since", testRevokedSessionsSince},
		sessionTest{"delete expired sessions", testDeleteExpiredSessions},
		sessionTest{"revoke user sessions", testRevokeUserSessions},
	)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

// testSessionCreateAndLookUp: a created session reads back as stored; an
// unknown id is ErrNotFound.
func testSessionCreateAndLookUp(t *testing.T, st Stores) {
	u := createUser(t, st, "s@example.com")
	s := &auth.Session{ID: newID(t), UserID: u.ID, AMR: []string{"pwd", "otp"}, CreatedAt: t0, ExpiresAt: t0.Add(720 * time.Hour)}
	want := *s
	if err := st.CreateSession(t.Context(), s, token("a", t0.Add(time.Hour))); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	got, err := st.SessionByID(t.Context(), s.ID)
	if err != nil {
		t.Fatalf("SessionByID: %v", err)
	}
	checkSession(t, got, &want)
	if _, err := st.SessionByID(t.Context(), newID(t)); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("SessionByID(unknown): %v, want ErrNotFound", err)
	}
}

// testSessionForUnknownUser: a session for a user that does not exist is
// ErrNotFound and is not stored.
func testSessionForUnknownUser(t *testing.T, st Stores) {
	s := &auth.Session{ID: newID(t), UserID: newID(t), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := st.CreateSession(t.Context(), s, token("a", t0.Add(time.Hour))); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("CreateSession for an unknown user: %v, want ErrNotFound", err)
	}
	if _, err := st.SessionByID(t.Context(), s.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("SessionByID: %v, want ErrNotFound", err)
	}
}

// testRotateAndReuse: each refresh token rotates once; a spent one is
// ErrTokenReused with its session, stores nothing and leaves the live token
// alone.
func testRotateAndReuse(t *testing.T, st Stores) {
	s := createSession(t, st, "a", t0.Add(720*time.Hour), t0.Add(time.Hour))
	now := t0.Add(time.Minute)
	got, err := st.RotateRefreshToken(t.Context(), hash("a"), token("b", now.Add(time.Hour)), now)
	if err != nil {
		t.Fatalf("rotate a: %v", err)
	}
	checkSession(t, got, s)
	if _, err := st.RotateRefreshToken(t.Context(), hash("b"), token("c", now.Add(time.Hour)), now); err != nil {
		t.Fatalf("rotate b: %v", err)
	}
	got, err = st.RotateRefreshToken(t.Context(), hash("a"), token("d", now.Add(time.Hour)), now)
	if !errors.Is(err, auth.ErrTokenReused) {
		t.Fatalf("rotate a again: %v, want ErrTokenReused", err)
	}
	if got == nil || got.ID != s.ID {
		t.Fatalf("rotate a again returned session %+v, want %s", got, s.ID)
	}
	rotateWant(t, st, "d", now, auth.ErrNotFound) // the reuse stored nothing
	rotateWant(t, st, "c", now, nil)              // and left the live token alone
	rotateWant(t, st, "absent", now, auth.ErrNotFound)
}

// rotateRefusal is a rotation that must fail and write nothing.
type rotateRefusal struct {
	name       string
	sessionTTL time.Duration // from t0
	tokenTTL   time.Duration // from t0
	revoke     bool
	rotateAt   time.Duration // from t0
	want       error
	thenAt     time.Duration // the same token rotated again at t0+thenAt ...
	thenWant   error         // ... gives this: shows the failure wrote nothing
}

func rotateRefusals() []rotateRefusal {
	return []rotateRefusal{
		{name: "expired token", sessionTTL: 10 * time.Hour, tokenTTL: time.Hour, rotateAt: time.Hour, want: auth.ErrNotFound,
			thenAt: time.Hour - time.Microsecond, thenWant: nil},
		{name: "expired session", sessionTTL: time.Hour, tokenTTL: 10 * time.Hour, rotateAt: 2 * time.Hour, want: auth.ErrNotFound,
			thenAt: time.Minute, thenWant: nil},
		{name: "revoked session", sessionTTL: 10 * time.Hour, tokenTTL: 10 * time.Hour, revoke: true, rotateAt: time.Hour,
			want: auth.ErrTokenRevoked, thenAt: time.Hour, thenWant: auth.ErrTokenRevoked},
	}
}

func (rr rotateRefusal) test(t *testing.T, st Stores) {
	s := createSession(t, st, "a", t0.Add(rr.sessionTTL), t0.Add(rr.tokenTTL))
	if rr.revoke {
		if err := st.RevokeSession(t.Context(), s.ID, t0.Add(time.Second)); err != nil {
			t.Fatalf("RevokeSession: %v", err)
		}
	}
	rotateWant(t, st, "a", t0.Add(rr.rotateAt), rr.want)
	rotateWant(t, st, "next-a", t0.Add(rr.rotateAt), auth.ErrNotFound) // not stored
	rotateWant(t, st, "a", t0.Add(rr.thenAt), rr.thenWant)
}

// testReuseOfExpiredSpentToken: a spent token replayed after its expiry is
// still reported as reuse.
func testReuseOfExpiredSpentToken(t *testing.T, st Stores) {
	s := createSession(t, st, "a", t0.Add(720*time.Hour), t0.Add(time.Hour))
	rotateWant(t, st, "a", t0, nil)
	got, err := st.RotateRefreshToken(t.Context(), hash("a"), token("x", t0.Add(3*time.Hour)), t0.Add(2*time.Hour))
	if !errors.Is(err, auth.ErrTokenReused) || got == nil || got.ID != s.ID {
		t.Fatalf("replay after expiry = %+v, %v: want the session and ErrTokenReused", got, err)
	}
}

// testConcurrentRotation: of 16 simultaneous rotations of one token exactly
// one wins; the others see reuse.
func testConcurrentRotation(t *testing.T, st Stores) {
	s := createSession(t, st, "a", t0.Add(720*time.Hour), t0.Add(time.Hour))
	const n = 16
	errs := make([]error, n)
	sessions := make([]*auth.Session, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			sessions[i], errs[i] = st.RotateRefreshToken(t.Context(), hash("a"),
				token(fmt.Sprintf("next-%d", i), t0.Add(time.Hour)), t0.Add(time.Minute))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("callers %d and %d both rotated the token", winner, i)
			}
			winner = i
		case errors.Is(err, auth.ErrTokenReused):
			if sessions[i] == nil || sessions[i].ID != s.ID {
				t.Errorf("caller %d: reuse returned session %+v, want %s", i, sessions[i], s.ID)
			}
		default:
			t.Errorf("caller %d: %v, want nil or ErrTokenReused", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no caller rotated the token")
	}
	for i := range n {
		want := auth.ErrNotFound
		if i == winner {
			want = nil
		}
		rotateWant(t, st, fmt.Sprintf("next-%d", i), t0.Add(2*time.Minute), want)
	}
}

// testRevokeSession: revocation keeps the first time, and revoking an unknown
// session is no error.
func testRevokeSession(t *testing.T, st Stores) {
	s := createSession(t, st, "a", t0.Add(720*time.Hour), t0.Add(time.Hour))
	at := t0.Add(time.Minute)
	for i, when := range []time.Time{at, at.Add(time.Hour)} { // the second changes nothing
		if err := st.RevokeSession(t.Context(), s.ID, when); err != nil {
			t.Fatalf("RevokeSession #%d: %v", i+1, err)
		}
	}
	got, err := st.SessionByID(t.Context(), s.ID)
	if err != nil {
		t.Fatalf("SessionByID: %v", err)
	}
	checkTime(t, "RevokedAt", got.RevokedAt, at)
	if err := st.RevokeSession(t.Context(), newID(t), at); err != nil {
		t.Errorf("RevokeSession(unknown): %v, want nil", err)
	}
}

// testRevokedSessionsSince: lists only the sessions revoked at or after the
// given time.
func testRevokedSessionsSince(t *testing.T, st Stores) {
	u := createUser(t, st, "revoked@example.com")
	var ids []string
	for i := range 3 {
		s := &auth.Session{ID: newID(t), UserID: u.ID, AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: t0.Add(48 * time.Hour)}
		if err := st.CreateSession(t.Context(), s, token(fmt.Sprintf("rv%d", i), s.ExpiresAt)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	// ids[0] revoked long ago, ids[1] recently, ids[2] never.
	if err := st.RevokeSession(t.Context(), ids[0], t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeSession(t.Context(), ids[1], t0.Add(10*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := st.RevokedSessionsSince(t.Context(), t0.Add(9*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != ids[1] || got[0].UserID != u.ID {
		t.Fatalf("RevokedSessionsSince = %+v, want only %s", got, ids[1])
	}
	checkTime(t, "RevokedAt", got[0].RevokedAt, t0.Add(10*time.Hour))
}

// testDeleteExpiredSessions: deletes expired sessions and their tokens, at
// most limit at a time, and never a live one.
func testDeleteExpiredSessions(t *testing.T, st Stores) {
	u := createUser(t, st, "prune@example.com")
	session := func(tok string, expires time.Time) *auth.Session {
		s := &auth.Session{ID: newID(t), UserID: u.ID, AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: expires}
		if err := st.CreateSession(t.Context(), s, token(tok, expires)); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		return s
	}
	old := session("old", t0.Add(time.Hour))
	old2 := session("old2", t0.Add(2*time.Hour))
	live := session("live", t0.Add(48*time.Hour))
	now := t0.Add(24 * time.Hour)
	n, err := st.DeleteExpiredSessions(t.Context(), now, 1)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredSessions(limit 1) = %d, %v; want 1", n, err)
	}
	n, err = st.DeleteExpiredSessions(t.Context(), now, 100)
	if err != nil || n != 1 {
		t.Fatalf("second DeleteExpiredSessions = %d, %v; want the other 1", n, err)
	}
	for _, s := range []*auth.Session{old, old2} {
		if _, err := st.SessionByID(t.Context(), s.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("expired session %s still there: %v", s.ID, err)
		}
	}
	rotateWant(t, st, "old", now, auth.ErrNotFound)
	if _, err := st.SessionByID(t.Context(), live.ID); err != nil {
		t.Errorf("live session deleted: %v", err)
	}
	rotateWant(t, st, "live", now, nil)
	if n, err := st.DeleteExpiredSessions(t.Context(), now, 100); err != nil || n != 0 {
		t.Errorf("nothing left to delete: %d, %v", n, err)
	}
}

// testRevokeUserSessions: revokes a user's live sessions except the kept one,
// and returns their ids.
func testRevokeUserSessions(t *testing.T, st Stores) {
	u := createUser(t, st, "many@example.com")
	other := createUser(t, st, "other@example.com")
	now := t0.Add(time.Hour)
	mk := func(userID, tok string, expires time.Time) string {
		s := &auth.Session{ID: newID(t), UserID: userID, CreatedAt: t0, ExpiresAt: expires}
		if err := st.CreateSession(t.Context(), s, token(tok, expires)); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		return s.ID
	}
	live1 := mk(u.ID, "l1", t0.Add(24*time.Hour))
	live2 := mk(u.ID, "l2", t0.Add(24*time.Hour))
	kept := mk(u.ID, "k", t0.Add(24*time.Hour))
	expired := mk(u.ID, "e", now)
	revoked := mk(u.ID, "r", t0.Add(24*time.Hour))
	if err := st.RevokeSession(t.Context(), revoked, t0); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	others := mk(other.ID, "o", t0.Add(24*time.Hour))

	generation := func(id string) int64 {
		t.Helper()
		u, err := st.UserByID(t.Context(), id)
		if err != nil {
			t.Fatalf("UserByID: %v", err)
		}
		return u.DeviceGeneration
	}
	if g := generation(u.ID); g != 0 {
		t.Fatalf("DeviceGeneration of a new user = %d, want 0", g)
	}
	got, err := st.RevokeUserSessions(t.Context(), u.ID, now, kept)
	if err != nil {
		t.Fatalf("RevokeUserSessions: %v", err)
	}
	// Device tokens die with the sessions, of this user only.
	if g, o := generation(u.ID), generation(other.ID); g != 1 || o != 0 {
		t.Errorf("DeviceGeneration after RevokeUserSessions = %d (other user %d), want 1 (0)", g, o)
	}
	if byEmail, err := st.UserByEmail(t.Context(), u.Email); err != nil || byEmail.DeviceGeneration != 1 {
		t.Errorf("UserByEmail after RevokeUserSessions = %+v, %v; want DeviceGeneration 1", byEmail, err)
	}
	want := []string{live1, live2}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("revoked %v, want %v", got, want)
	}
	for id, wantRevokedAt := range map[string]time.Time{
		live1: now, live2: now, kept: {}, expired: {}, revoked: t0, others: {},
	} {
		s, err := st.SessionByID(t.Context(), id)
		if err != nil {
			t.Fatalf("SessionByID: %v", err)
		}
		checkTime(t, "RevokedAt of "+id, s.RevokedAt, wantRevokedAt)
	}
	rotateWant(t, st, "l1", now, auth.ErrTokenRevoked)
	rotateWant(t, st, "k", now, nil)
	if got, err := st.RevokeUserSessions(t.Context(), u.ID, now.Add(time.Minute)); err != nil || !slices.Equal(got, []string{kept}) {
		t.Errorf("RevokeUserSessions without keep = %v, %v: want [%s]", got, err, kept)
	}
	if got, err := st.RevokeUserSessions(t.Context(), u.ID, now.Add(time.Minute)); err != nil || len(got) != 0 {
		t.Errorf("RevokeUserSessions again = %v, %v: want none", got, err)
	}
	// Even with no session left to revoke, the generation moves on.
	if g := generation(u.ID); g != 3 {
		t.Errorf("DeviceGeneration after three RevokeUserSessions = %d, want 3", g)
	}
}

func runKeys(t *testing.T, open func(t *testing.T) Stores) {
	key := func(id string, created, notBefore time.Time) auth.SigningKey {
		pub := sha256.Sum256([]byte("pub " + id))
		return auth.SigningKey{ID: id, PublicKey: pub[:], Sealed: []byte("sealed " + id), CreatedAt: created, NotBefore: notBefore}
	}

	t.Run("add retires the current key", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		keys, err := st.SigningKeys(t.Context())
		if err != nil || len(keys) != 0 {
			t.Fatalf("SigningKeys on an empty store = %v, %v", keys, err)
		}
		k1 := key("k1", t0, t0)
		k2 := key("k2", t0.Add(24*time.Hour), t0.Add(24*time.Hour+5*time.Minute))
		k3 := key("k3", t0.Add(48*time.Hour), t0.Add(48*time.Hour+5*time.Minute))
		for _, k := range []auth.SigningKey{k1, k2, k3} {
			if err := st.AddSigningKey(t.Context(), k); err != nil {
				t.Fatalf("AddSigningKey(%s): %v", k.ID, err)
			}
		}
		k1.RetireAt, k2.RetireAt = k2.NotBefore, k3.NotBefore
		checkKeys(t, st, k1, k2, k3)
		if err := st.AddSigningKey(t.Context(), key("k1", t0.Add(72*time.Hour), t0.Add(72*time.Hour))); err == nil {
			t.Error("AddSigningKey with a duplicate ID succeeded")
		}
		checkKeys(t, st, k1, k2, k3) // the failed add changed nothing
	})

	t.Run("listed oldest first", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		newer := key("b-newer", t0.Add(time.Hour), t0.Add(time.Hour))
		older := key("a-older", t0, t0) // added last, created first: retires nothing newer
		for _, k := range []auth.SigningKey{newer, older} {
			if err := st.AddSigningKey(t.Context(), k); err != nil {
				t.Fatalf("AddSigningKey(%s): %v", k.ID, err)
			}
		}
		checkKeys(t, st, older, newer)
	})

	t.Run("delete retired", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		k1 := key("k1", t0, t0)
		k2 := key("k2", t0.Add(time.Hour), t0.Add(time.Hour))
		k3 := key("k3", t0.Add(2*time.Hour), t0.Add(2*time.Hour))
		for _, k := range []auth.SigningKey{k1, k2, k3} {
			if err := st.AddSigningKey(t.Context(), k); err != nil {
				t.Fatalf("AddSigningKey(%s): %v", k.ID, err)
			}
		}
		k1.RetireAt, k2.RetireAt = k2.NotBefore, k3.NotBefore
		steps := []struct {
			before time.Time
			want   []auth.SigningKey
		}{
			{k1.RetireAt, []auth.SigningKey{k1, k2, k3}}, // strictly before
			{k1.RetireAt.Add(time.Microsecond), []auth.SigningKey{k2, k3}},
			{t0.Add(1000 * time.Hour), []auth.SigningKey{k3}}, // never the current key
		}
		for _, step := range steps {
			if err := st.DeleteSigningKeysRetiredBefore(t.Context(), step.before); err != nil {
				t.Fatalf("DeleteSigningKeysRetiredBefore: %v", err)
			}
			checkKeys(t, st, step.want...)
		}
	})

	t.Run("secret or create", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		got, err := st.SecretOrCreate(t.Context(), "secret-key", []byte("first"))
		if err != nil || string(got) != "first" {
			t.Fatalf("SecretOrCreate = %q, %v: want first", got, err)
		}
		got, err = st.SecretOrCreate(t.Context(), "secret-key", []byte("second"))
		if err != nil || string(got) != "first" {
			t.Fatalf("SecretOrCreate again = %q, %v: want first", got, err)
		}

		const n = 16
		results := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = st.SecretOrCreate(t.Context(), "raced", fmt.Appendf(nil, "value-%d", i))
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if !bytes.Equal(results[i], results[0]) {
				t.Errorf("caller %d got %q, caller 0 got %q: want one value", i, results[i], results[0])
			}
		}
		if !bytes.HasPrefix(results[0], []byte("value-")) {
			t.Errorf("raced secret = %q, want one of the values offered", results[0])
		}
	})
}

// newID returns a fresh time-ordered UUID, as the service makes them.
func newID(t testing.TB) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatalf("uuid: %v", err)
	}
	return id.String()
}

// hash is the stored form of the refresh token named name.
func hash(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

// token returns the refresh token named name, created at t0.
func token(name string, expires time.Time) auth.RefreshToken {
	return auth.RefreshToken{Hash: hash(name), CreatedAt: t0, ExpiresAt: expires}
}

func createUser(t *testing.T, st Stores, email string) *auth.User {
	t.Helper()
	u := &auth.User{ID: newID(t), Email: email, PasswordHash: "hash of " + email, CreatedAt: t0, UpdatedAt: t0}
	if err := st.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

// createSession creates a user and a session for it whose first refresh
// token is named tok.
func createSession(t *testing.T, st Stores, tok string, sessionExpires, tokenExpires time.Time) *auth.Session {
	t.Helper()
	u := createUser(t, st, "owner@example.com")
	s := &auth.Session{ID: newID(t), UserID: u.ID, AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: sessionExpires}
	want := *s
	if err := st.CreateSession(t.Context(), s, token(tok, tokenExpires)); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return &want
}

// rotateWant rotates the token named tok into "next-"+tok and checks the error.
func rotateWant(t *testing.T, st Stores, tok string, now time.Time, want error) {
	t.Helper()
	_, err := st.RotateRefreshToken(t.Context(), hash(tok), token("next-"+tok, now.Add(time.Hour)), now)
	if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
		t.Errorf("rotate %s at %v: %v, want %v", tok, now, err, want)
	}
}

// checkTime checks that got is want as stored: UTC, truncated to microseconds.
func checkTime(t *testing.T, name string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want zero", name, got)
		}
		return
	}
	want = want.UTC().Truncate(time.Microsecond)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %v (UTC, microseconds)", name, got, want)
	}
}

func checkUser(t *testing.T, got, want *auth.User) {
	t.Helper()
	if got.ID != want.ID || got.Email != want.Email || got.EmailVerified != want.EmailVerified ||
		got.PasswordHash != want.PasswordHash || got.Phone != want.Phone || got.PhoneVerified != want.PhoneVerified {
		t.Errorf("user = %+v, want %+v", got, want)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

func checkSession(t *testing.T, got, want *auth.Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || !slices.Equal(got.AMR, want.AMR) {
		t.Errorf("session = %+v, want %+v", got, want)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTime(t, "RevokedAt", got.RevokedAt, want.RevokedAt)
}

func checkKeys(t *testing.T, st Stores, want ...auth.SigningKey) {
	t.Helper()
	got, err := st.SigningKeys(t.Context())
	if err != nil {
		t.Fatalf("SigningKeys: %v", err)
	}
	ids := func(ks []auth.SigningKey) []string {
		var s []string
		for _, k := range ks {
			s = append(s, k.ID)
		}
		return s
	}
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("SigningKeys = %v, want %v", ids(got), ids(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !bytes.Equal(g.PublicKey, w.PublicKey) || !bytes.Equal(g.Sealed, w.Sealed) {
			t.Errorf("key %s: bytes differ: got %x/%q, want %x/%q", w.ID, g.PublicKey, g.Sealed, w.PublicKey, w.Sealed)
		}
		checkTime(t, w.ID+" CreatedAt", g.CreatedAt, w.CreatedAt)
		checkTime(t, w.ID+" NotBefore", g.NotBefore, w.NotBefore)
		checkTime(t, w.ID+" RetireAt", g.RetireAt, w.RetireAt)
	}
}

// RunStoreBenchmarks measures the hot paths of st, a store opened by the
// caller: the login lookup, registration, and refresh-token rotation.
func RunStoreBenchmarks(b *testing.B, st Stores) {
	ctx := b.Context()
	u := &auth.User{ID: newID(b), Email: "bench@example.com", PasswordHash: "h", CreatedAt: t0}
	if err := st.CreateUser(ctx, u); err != nil {
		b.Fatalf("CreateUser: %v", err)
	}
	b.Run("UserByEmail", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.UserByEmail(ctx, u.Email); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CreateUser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			id := newID(b)
			nu := &auth.User{ID: id, Email: id + "@example.com", PasswordHash: "h", CreatedAt: t0}
			if err := st.CreateUser(ctx, nu); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RotateRefreshToken", func(b *testing.B) {
		b.ReportAllocs()
		prefix := newID(b)
		s := &auth.Session{ID: newID(b), UserID: u.ID, AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
		if err := st.CreateSession(ctx, s, token(prefix+"-0", t0.Add(time.Hour))); err != nil {
			b.Fatal(err)
		}
		i := 0
		for b.Loop() {
			next := token(fmt.Sprintf("%s-%d", prefix, i+1), t0.Add(time.Hour))
			if _, err := st.RotateRefreshToken(ctx, hash(fmt.Sprintf("%s-%d", prefix, i)), next, t0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// RunRegistrationBenchmarks measures what the outbox costs a registration: a
// bare CreateUser against the registration transaction authd runs (InTx:
// CreateUser, the email verification row, Enqueue of its email). The
// "outbox-vs-plain" benchmark alternates the two in one loop, so that a
// machine whose background load drifts slows both alike, and reports each
// one's ns and their ratio (tx/plain).
func RunRegistrationBenchmarks(b *testing.B, st Stores) {
	ctx := b.Context()
	plain := func(b *testing.B) {
		id := newID(b)
		if err := st.CreateUser(ctx, &auth.User{ID: id, Email: id + "@example.com", PasswordHash: "h", CreatedAt: t0}); err != nil {
			b.Fatal(err)
		}
	}
	outbox := func(b *testing.B) {
		id := newID(b)
		err := st.InTx(ctx, func(tx auth.Tx) error {
			etx, ok := tx.(auth.EmailTx)
			if !ok {
				return fmt.Errorf("the store's Tx %T is not an auth.EmailTx", tx)
			}
			u := &auth.User{ID: id, Email: id + "@example.com", PasswordHash: "h", CreatedAt: t0}
			if err := etx.CreateUser(ctx, u); err != nil {
				return err
			}
			if err := etx.CreateEmailVerification(ctx, auth.EmailVerification{
				Hash: hash(id), UserID: id, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour),
			}); err != nil {
				return err
			}
			return etx.Enqueue(ctx, message("verify_email:"+id), t0)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("CreateUser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			plain(b)
		}
	})
	b.Run("RegisterTx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			outbox(b)
		}
	})
	b.Run("outbox-vs-plain", func(b *testing.B) {
		var tPlain, tTx time.Duration
		for b.Loop() {
			s := time.Now()
			plain(b)
			m := time.Now()
			outbox(b)
			tTx += time.Since(m)
			tPlain += m.Sub(s)
		}
		n := float64(b.N)
		b.ReportMetric(float64(tPlain.Nanoseconds())/n, "plain-ns/op")
		b.ReportMetric(float64(tTx.Nanoseconds())/n, "tx-ns/op")
		if tPlain > 0 {
			b.ReportMetric(float64(tTx)/float64(tPlain), "tx/plain")
		}
	})
}
