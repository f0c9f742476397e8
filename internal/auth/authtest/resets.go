package authtest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
)

// ResetStores is what a backend with password resets provides.
type ResetStores interface {
	Stores
	auth.ResetStore
}

// RunResetSuite runs the behaviour suite of auth.ResetStore. open is as for
// RunStoreSuite.
func RunResetSuite(t *testing.T, open func(t *testing.T) ResetStores) {
	for _, tt := range []struct {
		name string
		test func(t *testing.T, st ResetStores)
	}{
		{"create and look up", testResetCreateAndLookUp},
		{"unknown user", testResetUnknownUser},
		{"spend", testResetSpend},
		{"expiry", testResetExpiry},
		{"concurrent spend", testResetConcurrent},
		{"in a transaction with its email", testResetInTx},
		{"change spends resets", testChangePasswordInTx},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.test(t, open(t))
		})
	}
}

func reset(u *auth.User, name string) auth.PasswordReset {
	return auth.PasswordReset{Hash: hash(name), UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Minute)}
}

func createReset(t *testing.T, st ResetStores, r auth.PasswordReset) {
	t.Helper()
	if err := st.CreatePasswordReset(t.Context(), r); err != nil {
		t.Fatalf("CreatePasswordReset: %v", err)
	}
}

func testResetCreateAndLookUp(t *testing.T, st ResetStores) {
	u := createUser(t, st, "ada@example.com")
	createReset(t, st, reset(u, "r1"))
	got, err := st.PasswordReset(t.Context(), hash("r1"), t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("PasswordReset: %v", err)
	}
	if got.UserID != u.ID || string(got.Hash) != string(hash("r1")) || !got.UsedAt.IsZero() {
		t.Errorf("got %+v, want user %s, hash of r1, unused", got, u.ID)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, t0)
	checkTime(t, "ExpiresAt", got.ExpiresAt, t0.Add(30*time.Minute))
	if _, err := st.PasswordReset(t.Context(), hash("absent"), t0); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("PasswordReset(absent) = %v, want ErrNotFound", err)
	}
}

func testResetUnknownUser(t *testing.T, st ResetStores) {
	err := st.CreatePasswordReset(t.Context(), reset(&auth.User{ID: newID(t)}, "r1"))
	if !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("CreatePasswordReset for no user = %v, want ErrNotFound", err)
	}
}

// testResetSpend: a reset sets the password once; the user's other resets
// die with it, another user's live on.
func testResetSpend(t *testing.T, st ResetStores) {
	u := createUser(t, st, "ada@example.com")
	other := createUser(t, st, "bob@example.com")
	createReset(t, st, reset(u, "r1"))
	createReset(t, st, reset(u, "r2"))
	createReset(t, st, reset(other, "r3"))
	now := t0.Add(time.Minute)
	id, err := st.ResetPassword(t.Context(), hash("r1"), "new hash", now)
	if err != nil || id != u.ID {
		t.Fatalf("ResetPassword = %q, %v: want %s", id, err, u.ID)
	}
	got, err := st.UserByID(t.Context(), u.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	if got.PasswordHash != "new hash" {
		t.Errorf("password hash %q, want the new one", got.PasswordHash)
	}
	checkTime(t, "UpdatedAt", got.UpdatedAt, now)
	for _, name := range []string{"r1", "r2"} {
		if _, err := st.PasswordReset(t.Context(), hash(name), now); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("PasswordReset(%s) after the reset = %v, want ErrNotFound", name, err)
		}
		if _, err := st.ResetPassword(t.Context(), hash(name), "again", now); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("ResetPassword(%s) again = %v, want ErrNotFound", name, err)
		}
	}
	if got, _ := st.UserByID(t.Context(), u.ID); got.PasswordHash != "new hash" {
		t.Errorf("a spent reset changed the password to %q", got.PasswordHash)
	}
	if _, err := st.PasswordReset(t.Context(), hash("r3"), now); err != nil {
		t.Errorf("another user's reset: %v, want it live", err)
	}
}

func testResetExpiry(t *testing.T, st ResetStores) {
	u := createUser(t, st, "ada@example.com")
	createReset(t, st, reset(u, "r1"))
	end := t0.Add(30 * time.Minute)
	if _, err := st.PasswordReset(t.Context(), hash("r1"), end); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("PasswordReset at expiry = %v, want ErrNotFound", err)
	}
	if _, err := st.ResetPassword(t.Context(), hash("r1"), "new hash", end); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("ResetPassword at expiry = %v, want ErrNotFound", err)
	}
	if got, _ := st.UserByID(t.Context(), u.ID); got.PasswordHash == "new hash" {
		t.Error("an expired reset changed the password")
	}
	if _, err := st.ResetPassword(t.Context(), hash("r1"), "new hash", end.Add(-time.Microsecond)); err != nil {
		t.Errorf("ResetPassword just before expiry: %v", err)
	}
}

// testResetConcurrent: of 16 simultaneous spends of one reset exactly one
// wins, and its password is the one stored.
func testResetConcurrent(t *testing.T, st ResetStores) {
	u := createUser(t, st, "ada@example.com")
	createReset(t, st, reset(u, "r1"))
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = st.ResetPassword(t.Context(), hash("r1"), fmt.Sprintf("hash-%d", i), t0.Add(time.Minute))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("callers %d and %d both spent the reset", winner, i)
			}
			winner = i
		case !errors.Is(err, auth.ErrNotFound):
			t.Errorf("caller %d: %v, want nil or ErrNotFound", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no caller spent the reset")
	}
	got, err := st.UserByID(t.Context(), u.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	if want := fmt.Sprintf("hash-%d", winner); got.PasswordHash != want {
		t.Errorf("password hash %q, want the winner's %q", got.PasswordHash, want)
	}
}

// passwordTx runs fn with the store's transaction as an auth.PasswordTx.
func passwordTx(t *testing.T, st ResetStores, fn func(tx auth.PasswordTx) error) error {
	t.Helper()
	return st.InTx(t.Context(), func(tx auth.Tx) error {
		ptx, ok := tx.(auth.PasswordTx)
		if !ok {
			t.Fatalf("the Tx %T is not an auth.PasswordTx", tx)
		}
		return fn(ptx)
	})
}

// testResetInTx: the reset and its email commit together, or neither does.
func testResetInTx(t *testing.T, st ResetStores) {
	u := createUser(t, st, "ada@example.com")
	boom := errors.New("boom")
	err := passwordTx(t, st, func(tx auth.PasswordTx) error {
		if err := tx.CreatePasswordReset(t.Context(), reset(u, "r1")); err != nil {
			return err
		}
		if err := tx.Enqueue(t.Context(), message("m1"), t0); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want fn's error", err)
	}
	if _, err := st.PasswordReset(t.Context(), hash("r1"), t0); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("reset of a rolled back transaction: %v, want ErrNotFound", err)
	}
	claimNone(t, st, "a", t0)

	err = passwordTx(t, st, func(tx auth.PasswordTx) error {
		if err := tx.CreatePasswordReset(t.Context(), reset(u, "r2")); err != nil {
			return err
		}
		return tx.Enqueue(t.Context(), message("m2"), t0)
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if _, err := st.PasswordReset(t.Context(), hash("r2"), t0); err != nil {
		t.Errorf("reset of a committed transaction: %v", err)
	}
	if m := claimOne(t, st, "a", t0); m.Message.IdempotencyKey != "m2" {
		t.Errorf("claimed %+v, want m2", m)
	}
	err = passwordTx(t, st, func(tx auth.PasswordTx) error {
		return tx.CreatePasswordReset(t.Context(), reset(&auth.User{ID: newID(t)}, "r3"))
	})
	if !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("CreatePasswordReset in a Tx for no user = %v, want ErrNotFound", err)
	}
}

// testChangePasswordInTx: a change stores the hash and kills every live
// reset link of the user.
func testChangePasswordInTx(t *testing.T, st ResetStores) {
	u := createUser(t, st, "ada@example.com")
	createReset(t, st, reset(u, "r1"))
	now := t0.Add(time.Minute)
	if err := passwordTx(t, st, func(tx auth.PasswordTx) error {
		return tx.ChangePassword(t.Context(), u.ID, "changed", now)
	}); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	got, err := st.UserByID(t.Context(), u.ID)
	if err != nil || got.PasswordHash != "changed" {
		t.Fatalf("UserByID = %+v, %v: want the changed hash", got, err)
	}
	if _, err := st.ResetPassword(t.Context(), hash("r1"), "reset", now); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("a reset sent before the change: %v, want ErrNotFound", err)
	}
	err = passwordTx(t, st, func(tx auth.PasswordTx) error {
		return tx.ChangePassword(t.Context(), newID(t), "changed", now)
	})
	if !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("ChangePassword of no user = %v, want ErrNotFound", err)
	}
}
