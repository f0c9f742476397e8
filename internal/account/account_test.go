package account_test

import (
	"context"
	"errors"
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
	"github.com/authd/authd/internal/password"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	svc  *account.Service
	db   app.Stores
	reg  *prometheus.Registry
	logs *apptest.Logs
}

// newFixture builds the service main runs: SQLite in memory, in-process
// state, a real pool hashing with params.
func newFixture(t *testing.T, params password.Params) *fixture {
	t.Helper()
	logs := &apptest.Logs{}
	reg := prometheus.NewRegistry()
	svc := apptest.Build(t, apptest.Config(t), slog.New(slog.NewTextHandler(logs, nil)), reg, app.WithPasswordParams(params))
	return &fixture{svc: svc.Accounts, db: svc.DB, reg: reg, logs: logs}
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

	if _, err := f.svc.Login(t.Context(), "imported@example.com", "wrong password!", "c"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if got := f.hashOf(t, "imported@example.com"); got != string(b) {
		t.Fatalf("a failed login changed the hash to %q", got)
	}
	if _, err := f.svc.Login(t.Context(), "imported@example.com", pw, "c"); err != nil {
		t.Fatalf("login with the imported bcrypt hash: %v", err)
	}
	got := f.hashOf(t, "imported@example.com")
	if !strings.HasPrefix(got, "$argon2id$v=19$") {
		t.Fatalf("hash after login = %q, want an Argon2id PHC string", got)
	}
	// The upgraded hash verifies, and is not upgraded again.
	if _, err := f.svc.Login(t.Context(), "imported@example.com", pw, "c"); err != nil {
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
	if _, err := f.svc.Login(t.Context(), "ada@example.com", pw, "c"); err != nil {
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
	_, errWrong := f.svc.Login(t.Context(), "ada@example.com", "not the password", "c")
	_, errUnknown := f.svc.Login(t.Context(), "nobody@example.com", "not the password", "c")
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
		_, err := f.svc.Login(t.Context(), "ada@example.com", "not the password", "c")
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
	if _, err := f.svc.Login(t.Context(), "ada@example.com", "not the password", "c"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.svc.Login(gone, "ada@example.com", pw, "c"); err == nil {
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
	_, err := f.svc.Login(t.Context(), "ada@example.com", pw, "c")
	if err == nil || errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("login with the database down: %v", err)
	}
	for outcome, want := range map[string]float64{"invalid": 1, "cancelled": 1, "error": 1, "success": 0} {
		if got := f.counter(t, "authd_logins_total", "outcome", outcome); got != want {
			t.Errorf(`authd_logins_total{outcome=%q} = %v, want %v`, outcome, got, want)
		}
	}
}
