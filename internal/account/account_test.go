package account_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/authd/authd/internal/account"
	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/app/apptest"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/password"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	svc   *account.Service
	db    app.Stores
	reg   *prometheus.Registry
	logs  *apptest.Logs
	clock *clocktest.Clock // every part's
}

// newFixture builds the service main runs: SQLite in memory, in-process
// state, a real pool hashing with params.
func newFixture(t *testing.T, params password.Params) *fixture {
	t.Helper()
	logs := &apptest.Logs{}
	reg := prometheus.NewRegistry()
	clock := clocktest.New(time.Now())
	svc := apptest.Build(t, apptest.Config(t), slog.New(slog.NewTextHandler(logs, nil)), reg,
		app.WithPasswordParams(params), app.WithClock(clock.Now))
	return &fixture{svc: svc.Accounts, db: svc.DB, reg: reg, logs: logs, clock: clock}
}

// seed stores a user with the given hash, as an import would.
func (f *fixture) seed(t *testing.T, email, hash string) {
	t.Helper()
	now := time.Now()
	u := &auth.User{ID: uuid.Must(uuid.NewV7()).String(), Email: email, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := f.db.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) hashOf(t *testing.T, email string) string {
	t.Helper()
	u, err := f.db.UserByEmail(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

const pw = "correct horse battery staple"

func TestBcryptImportIsUpgradedOnLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, password.TestParams())
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f.seed(t, "imported@example.com", string(b))

	if _, err := f.svc.Login(t.Context(), "imported@example.com", "wrong password!", "c", ""); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if got := f.hashOf(t, "imported@example.com"); got != string(b) {
		t.Fatalf("a failed login changed the hash to %q", got)
	}
	if _, err := f.svc.Login(t.Context(), "imported@example.com", pw, "c", ""); err != nil {
		t.Fatalf("login with the imported bcrypt hash: %v", err)
	}
	got := f.hashOf(t, "imported@example.com")
	if !strings.HasPrefix(got, "$argon2id$v=19$") {
		t.Fatalf("hash after login = %q, want an Argon2id PHC string", got)
	}
	// The upgraded hash verifies, and is not upgraded again.
	if _, err := f.svc.Login(t.Context(), "imported@example.com", pw, "c", ""); err != nil {
		t.Fatal(err)
	}
	if again := f.hashOf(t, "imported@example.com"); again != got {
		t.Errorf("hash changed on a second login: %q → %q", got, again)
	}
}

func TestWeakerArgon2IsRehashed(t *testing.T) {
	t.Parallel()
	weak := password.TestParams()
	strong := weak
	strong.Iterations = 2
	strong.Memory = 64

	// A hash made under weaker parameters.
	fw := newFixture(t, weak)
	if _, err := fw.svc.Register(t.Context(), "ada@example.com", pw); err != nil {
		t.Fatal(err)
	}
	old := fw.hashOf(t, "ada@example.com")

	f := newFixture(t, strong)
	f.seed(t, "ada@example.com", old)
	if _, err := f.svc.Login(t.Context(), "ada@example.com", pw, "c", ""); err != nil {
		t.Fatal(err)
	}
	p, _, _, err := password.Parse(f.hashOf(t, "ada@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Memory != strong.Memory || p.Iterations != strong.Iterations {
		t.Errorf("params after login = %+v, want the configured %+v", p, strong)
	}
}

func TestUnknownEmailAndWrongPasswordLookAlike(t *testing.T) {
	t.Parallel()
	f := newFixture(t, password.TestParams())
	if _, err := f.svc.Register(t.Context(), "ada@example.com", pw); err != nil {
		t.Fatal(err)
	}
	before := f.hashesDone(t)
	_, errWrong := f.svc.Login(t.Context(), "ada@example.com", "not the password", "c", "")
	_, errUnknown := f.svc.Login(t.Context(), "nobody@example.com", "not the password", "c", "")
	if !errors.Is(errWrong, auth.ErrInvalidCredentials) || !errors.Is(errUnknown, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong: %v, unknown: %v", errWrong, errUnknown)
	}
	if errWrong.Error() != errUnknown.Error() {
		t.Errorf("errors differ: %q / %q", errWrong, errUnknown)
	}
	// Both paths hashed exactly once.
	if got := f.hashesDone(t) - before; got != 2 {
		t.Errorf("hash jobs for two failed logins = %v, want 2", got)
	}
	if _, err := f.svc.Register(t.Context(), "ada@example.com", pw); !errors.Is(err, auth.ErrEmailTaken) {
		t.Errorf("duplicate register: %v", err)
	}
	if strings.Contains(f.logs.String(), pw) || strings.Contains(f.logs.String(), "not the password") {
		t.Errorf("a password reached the log")
	}
}

// hashesDone reads authd_hash_jobs_total{outcome="done"}.
func (f *fixture) hashesDone(t *testing.T) float64 {
	t.Helper()
	return f.counter(t, "authd_hash_jobs_total", "outcome", "done")
}

// counter reads the series of the counter name whose label is value.
func (f *fixture) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{%s=%q} not found", name, label, value)
	return 0
}

// TestThrottledLoginCounted checks that account counts the logins its
// throttle refuses in authd_ratelimit_rejections_total{scope="account"},
// the family it shares with the per-client limiter.
func TestThrottledLoginCounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, password.TestParams())
	if _, err := f.svc.Register(t.Context(), "ada@example.com", pw); err != nil {
		t.Fatal(err)
	}
	var throttled int
	for range 10 {
		_, err := f.svc.Login(t.Context(), "ada@example.com", "not the password", "c", "")
		var te *account.ThrottledError
		if errors.As(err, &te) {
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("ten failed logins in a row were never throttled")
	}
	if got := f.counter(t, "authd_ratelimit_rejections_total", "scope", "account"); int(got) != throttled {
		t.Errorf(`authd_ratelimit_rejections_total{scope="account"} = %v, want %d`, got, throttled)
	}
}

// TestRegisterAppliesThePolicyFirst: a password the policy refuses (too
// short for NIST's single-factor 15, or holding the address) is refused
// before any hashing or database work, and nothing is created.
func TestRegisterAppliesThePolicyFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, password.TestParams())
	const email = "margaret.hamilton@example.com"
	for _, tc := range []struct {
		pw   string
		want error
	}{
		{"apollo 11 crew", password.ErrTooShort}, // 14 characters
		{"Margaret.Hamilton", password.ErrContainsUser},
		{"i am margaret.hamilton of nasa", password.ErrContainsUser},
		{"write to margaret.hamilton@example.com", password.ErrContainsUser},
	} {
		before := f.hashesDone(t)
		_, err := f.svc.Register(t.Context(), email, auth.Password(tc.pw))
		var pe *password.PolicyError
		if !errors.Is(err, tc.want) || !errors.As(err, &pe) {
			t.Errorf("Register with %q = %v, want %v", tc.pw, err, tc.want)
		}
		if got := f.hashesDone(t) - before; got != 0 {
			t.Errorf("Register with %q hashed %v times", tc.pw, got)
		}
	}
	if _, err := f.db.UserByEmail(t.Context(), email); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("a refused registration created the account: %v", err)
	}
	if _, err := f.svc.Register(t.Context(), email, "apollo guidance computer"); err != nil {
		t.Fatalf("a good password: %v", err)
	}
}

// TestLoginOutcomeOfAFailingDependency: a login that fails because a
// dependency does is counted outcome="error", and one whose client went away
// "cancelled"; neither is a wrong password ("invalid"), so that an outage does
// not look like a credential-stuffing wave on a dashboard.
func TestLoginOutcomeOfAFailingDependency(t *testing.T) {
	t.Parallel()
	f := newFixture(t, password.TestParams())
	if _, err := f.svc.Register(t.Context(), "ada@example.com", pw); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(t.Context(), "ada@example.com", "not the password", "c", ""); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.svc.Login(gone, "ada@example.com", pw, "c", ""); err == nil {
		t.Fatal("login of a client that is gone succeeded")
	}
	// The database goes down (the service's lifetime closes it again at
	// the end, which a closed database survives).
	closer, ok := f.db.(interface{ Close() error })
	if !ok {
		t.Fatalf("%T cannot be closed", f.db)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Login(t.Context(), "ada@example.com", pw, "c", "")
	if err == nil || errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("login with the database down: %v", err)
	}
	for outcome, want := range map[string]float64{"invalid": 1, "cancelled": 1, "error": 1, "success": 0} {
		if got := f.counter(t, "authd_logins_total", "outcome", outcome); got != want {
			t.Errorf(`authd_logins_total{outcome=%q} = %v, want %v`, outcome, got, want)
		}
	}
}

// TestAbandonedLoginsGiveBackTheirSlot: logins whose client left while the
// password waited for the pool end without a verdict; each gives its
// throttle slot back, so the owner's next login is checked at once instead
// of answered 429 (before, each leaked a claim for AttemptTimeout).
func TestAbandonedLoginsGiveBackTheirSlot(t *testing.T) {
	t.Parallel()
	f := newFixture(t, password.TestParams())
	if _, err := f.svc.Register(t.Context(), "ada@example.com", pw); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	for i := range 20 {
		_, err := f.svc.Login(gone, "ada@example.com", pw, "c", "")
		if err == nil || errors.Is(err, auth.ErrRateLimited) {
			t.Fatalf("abandoned login %d: %v; want the cancellation, not a throttle", i, err)
		}
	}
	if _, err := f.svc.Login(t.Context(), "ada@example.com", pw, "c", ""); err != nil {
		t.Fatalf("owner's login after 20 abandoned ones: %v", err)
	}
}

// TestDeviceTokenEscapesLockout is the lockout lever of issue 9.1 and its
// answer. An attacker spends 200 wrong passwords from varying addresses and
// then one at the end of every window (public in Retry-After): without a
// device token the owner, right password and all, is answered 429 for as
// long as that goes on. With the device token of an earlier login the owner
// is let in at once, every time. The attacker gains nothing from a wrong,
// forged or other account's token, and "logout all" ends the exemption.
func TestDeviceTokenEscapesLockout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newFixture(t, password.TestParams())
	const ada, bob, owner = "ada@example.com", "bob@example.com", "203.0.113.9"
	u, err := f.svc.Register(ctx, ada, pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Register(ctx, bob, pw); err != nil {
		t.Fatal(err)
	}
	login := func(email string, password auth.Password, client, deviceToken string) (account.LoginResult, error) {
		t.Helper()
		return f.svc.Login(ctx, email, password, client, deviceToken)
	}
	first, err := login(ada, pw, owner, "")
	if err != nil || first.DeviceToken == "" {
		t.Fatalf("owner's first login = %+v, %v; want a device token", first, err)
	}
	bobs, err := login(bob, pw, "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}

	guesses := 0
	guess := func(deviceToken string) error {
		t.Helper()
		_, err := login(ada, "wrong guess", fmt.Sprint("198.51.100.", guesses%250), deviceToken)
		var te *account.ThrottledError
		switch {
		case errors.As(err, &te):
			return err
		case errors.Is(err, auth.ErrInvalidCredentials):
			guesses++
			return err
		}
		t.Fatalf("guess: %v", err)
		return nil
	}
	// The attack: 200 wrong passwords, each as soon as the window allows.
	for guesses < 200 {
		var te *account.ThrottledError
		if err := guess(""); errors.As(err, &te) {
			f.clock.Advance(te.Wait)
		}
	}

	token := first.DeviceToken
	forged := []byte(token)
	forged[len(forged)/2] ^= 1
	for round := range 3 {
		// Without its device token the owner is held by the attacker's window.
		if _, err := login(ada, pw, owner, ""); !errors.Is(err, auth.ErrRateLimited) {
			t.Fatalf("round %d: owner without a device token: %v; want 429", round, err)
		}
		// With it, the owner is in at once; the token is renewed.
		res, err := login(ada, pw, owner, token)
		if err != nil {
			t.Fatalf("round %d: owner with a device token: %v", round, err)
		}
		token = res.DeviceToken
		// An attacker's token is no key: a forgery, Bob's, garbage.
		for name, tok := range map[string]string{"forged": string(forged), "bob's": bobs.DeviceToken, "garbage": "x"} {
			if err := guess(tok); !errors.Is(err, auth.ErrRateLimited) {
				t.Fatalf("round %d: attacker with %s token: %v; want 429", round, name, err)
			}
		}
		// The attacker goes on: one guess at the end of each window.
		var te *account.ThrottledError
		if err := guess(""); !errors.As(err, &te) {
			t.Fatalf("round %d: guess inside the window: %v", round, err)
		}
		f.clock.Advance(te.Wait)
		if err := guess(""); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("round %d: guess at the window's end: %v", round, err)
		}
	}

	// "Logout all" (as a password reset does) invalidates every device token.
	if _, err := f.db.RevokeUserSessions(ctx, u.ID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := login(ada, pw, owner, token); !errors.Is(err, auth.ErrRateLimited) {
		t.Fatalf("owner's device token after logout all: %v; want 429 (no exemption)", err)
	}
}
