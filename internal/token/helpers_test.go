package token

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/clocktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClock() *clocktest.Clock { return clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

// keyStore is a tiny in-memory auth.KeyStore for the pure unit tests of this
// package (the real stores are exercised in store_test.go). It follows the
// interface contract: AddSigningKey retires the older current keys.
type keyStore struct {
	mu    sync.Mutex
	keys  []auth.SigningKey
	reads atomic.Int64
}

var _ auth.KeyStore = (*keyStore)(nil)

func (s *keyStore) SigningKeys(context.Context) ([]auth.SigningKey, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]auth.SigningKey, len(s.keys))
	for i, k := range s.keys {
		k.PublicKey, k.Sealed = bytes.Clone(k.PublicKey), bytes.Clone(k.Sealed)
		out[i] = k
	}
	return out, nil
}

func (s *keyStore) AddSigningKey(_ context.Context, k auth.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.keys {
		if s.keys[i].RetireAt.IsZero() {
			s.keys[i].RetireAt = k.NotBefore
		}
	}
	s.keys = append(s.keys, k)
	return nil
}

func (s *keyStore) DeleteSigningKeysRetiredBefore(_ context.Context, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = slices.DeleteFunc(s.keys, func(k auth.SigningKey) bool { return !k.RetireAt.IsZero() && k.RetireAt.Before(t) })
	return nil
}

func (s *keyStore) SecretOrCreate(context.Context, string, []byte) ([]byte, error) {
	panic("not used by package token")
}

func (s *keyStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

var testSecret = bytes.Repeat([]byte{7}, 32)

var testParams = Params{Issuer: "https://authd.test", Audience: "authd", AccessTTL: 15 * time.Minute}

// fixture is a keyring with an issuer and a verifier on one fake clock.
type fixture struct {
	clock *clocktest.Clock
	store auth.KeyStore
	ring  *Keyring
	iss   *Issuer
	ver   *Verifier
}

func newFixture(t testing.TB, store auth.KeyStore, p Params, kp KeyParams) *fixture {
	t.Helper()
	return newFixtureAt(t, newClock(), store, p, kp)
}

// newFixtureAt is newFixture on a given clock, for instances sharing one.
func newFixtureAt(t testing.TB, clock *clocktest.Clock, store auth.KeyStore, p Params, kp KeyParams) *fixture {
	t.Helper()
	f := &fixture{clock: clock, store: store}
	if kp.AccessTTL == 0 {
		kp.AccessTTL = p.AccessTTL
	}
	var err error
	f.ring, err = NewKeyring(context.Background(), store, testSecret, kp, f.clock.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	f.iss, err = NewIssuer(f.ring, p, f.clock.Now)
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	f.ver, err = NewVerifier(f.ring, p, f.clock.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return f
}

func (f *fixture) issue(t testing.TB) (string, Claims) {
	t.Helper()
	raw, c, err := f.iss.Issue("0190c0de-0000-7000-8000-000000000001", "0190c0de-0000-7000-8000-0000000000a1", []string{"pwd"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return raw, c
}
