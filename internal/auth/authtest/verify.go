package authtest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
)

func addVerification(t *testing.T, st Stores, userID, tok string, expires time.Time) error {
	t.Helper()
	return st.InTx(t.Context(), func(tx auth.Tx) error {
		etx, ok := tx.(auth.EmailTx)
		if !ok {
			t.Fatalf("the store's Tx %T is not an auth.EmailTx", tx)
		}
		return etx.CreateEmailVerification(t.Context(), auth.EmailVerification{
			Hash: hash(tok), UserID: userID, CreatedAt: t0, ExpiresAt: expires,
		})
	})
}

func runEmailVerification(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("verify once", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		u := createUser(t, st, "ada@example.com")
		for _, tok := range []string{"first", "second"} {
			if err := addVerification(t, st, u.ID, tok, t0.Add(24*time.Hour)); err != nil {
				t.Fatalf("CreateEmailVerification: %v", err)
			}
		}
		id, err := st.VerifyEmail(t.Context(), hash("second"), t0.Add(time.Hour))
		if err != nil || id != u.ID {
			t.Fatalf("VerifyEmail = %q, %v; want %s", id, err, u.ID)
		}
		got, err := st.UserByID(t.Context(), u.ID)
		if err != nil || !got.EmailVerified {
			t.Fatalf("user after verification: %+v, %v; want email_verified", got, err)
		}
		checkTime(t, "UpdatedAt", got.UpdatedAt, t0.Add(time.Hour))
		for _, tok := range []string{"second", "first", "unknown"} {
			if _, err := st.VerifyEmail(t.Context(), hash(tok), t0.Add(time.Hour)); !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("VerifyEmail(%s) after the verification: %v, want ErrNotFound", tok, err)
			}
		}
	})

	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		u := createUser(t, st, "ada@example.com")
		if err := addVerification(t, st, u.ID, "tok", t0.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.VerifyEmail(t.Context(), hash("tok"), t0.Add(24*time.Hour)); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("VerifyEmail at expiry: %v, want ErrNotFound", err)
		}
		if got, _ := st.UserByID(t.Context(), u.ID); got == nil || got.EmailVerified {
			t.Errorf("user after a refused verification: %+v", got)
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		if err := addVerification(t, st, newID(t), "tok", t0.Add(time.Hour)); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("CreateEmailVerification for no user: %v, want ErrNotFound", err)
		}
	})

	t.Run("concurrent uses: one wins", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		u := createUser(t, st, "ada@example.com")
		if err := addVerification(t, st, u.ID, "tok", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		var (
			wins atomic.Int64
			wg   sync.WaitGroup
		)
		for range 8 {
			wg.Go(func() {
				_, err := st.VerifyEmail(t.Context(), hash("tok"), t0)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, auth.ErrNotFound):
					t.Errorf("VerifyEmail: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d verifications succeeded, want 1", wins.Load())
		}
	})
}
