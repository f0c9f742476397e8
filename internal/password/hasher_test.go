package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/hashpool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestPool returns a real pool closed at cleanup.
func newTestPool(t testing.TB, cfg hashpool.Params) *hashpool.Pool {
	t.Helper()
	pool, err := hashpool.New(cfg, time.Now, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pool.Close(context.Background()); err != nil {
			t.Errorf("pool.Close: %v", err)
		}
	})
	return pool
}

func newTestHasher(t testing.TB, p Params) *Hasher {
	t.Helper()
	return newHasherOn(t, newTestPool(t, hashpool.Params{Workers: 2, Queue: 16}), p)
}

func newHasherOn(t testing.TB, pool *hashpool.Pool, p Params) *Hasher {
	t.Helper()
	h, err := NewHasher(pool, p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashVerify(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, TestParams())
	ctx := context.Background()
	for _, pw := range []string{"correct horse battery staple", "ünïcödé pässwörd", "🔑🔑🔑🔑🔑🔑🔑🔑", strings.Repeat("x", MaxBytes)} {
		t.Run(pw[:min(len(pw), 12)], func(t *testing.T) {
			t.Parallel()
			enc, err := h.Hash(ctx, pw)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(enc, "$argon2id$v=19$m=8,t=1,p=1$") {
				t.Errorf("Hash = %q", enc)
			}
			if strings.Contains(enc, pw) {
				t.Errorf("hash contains the password")
			}
			again, err := h.Hash(ctx, pw)
			if err != nil {
				t.Fatal(err)
			}
			if again == enc {
				t.Error("two hashes of one password are equal: salt not random")
			}
			for _, tc := range []struct {
				name  string
				pw    string
				match bool
			}{
				{"right", pw, true},
				{"wrong", pw + "!", false},
				{"empty", "", false},
			} {
				match, rehash, err := h.Verify(ctx, tc.pw, enc)
				if err != nil || match != tc.match || rehash {
					t.Errorf("%s: Verify = %v, %v, %v; want %v, false, nil", tc.name, match, rehash, err, tc.match)
				}
			}
		})
	}
}

func TestHashNormalisesNFKC(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, TestParams())
	ctx := context.Background()
	enc, err := h.Hash(ctx, "ｓｅｃｒｅｔ－ｃａｆé") // full-width, composed é
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"secret-café", "secret-cafe\u0301"} { // ASCII + composed, decomposed
		if match, _, err := h.Verify(ctx, pw, enc); err != nil || !match {
			t.Errorf("Verify(%q) = %v, %v; want a match (NFKC)", pw, match, err)
		}
	}
}

func TestVerifyRehash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	weak := TestParams()
	strong := weak
	strong.Iterations = 2
	hWeak := newTestHasher(t, weak)
	hStrong := newTestHasher(t, strong)
	encWeak, err := hWeak.Hash(ctx, "pw-weak-params")
	if err != nil {
		t.Fatal(err)
	}
	encStrong, err := hStrong.Hash(ctx, "pw-strong-params")
	if err != nil {
		t.Fatal(err)
	}
	salt, key := make([]byte, 16), make([]byte, 32)
	for _, tc := range []struct {
		name   string
		h      *Hasher
		pw     string
		enc    string
		rehash bool
	}{
		{"same params", hWeak, "pw-weak-params", encWeak, false},
		{"stored weaker t", hStrong, "pw-weak-params", encWeak, true},
		{"stored stronger", hWeak, "pw-strong-params", encStrong, false},
		// Only the rehash flag matters below; these never match.
		{"stored weaker m", newHasherOn(t, newTestPool(t, hashpool.Params{Workers: 1}), Params{Memory: 16, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}), "x", Encode(weak, salt, key), true},
		{"stored weaker salt", hWeak, "x", Encode(weak, salt[:8], key), true},
		{"stored weaker key", hWeak, "x", Encode(weak, salt, key[:16]), true},
		{"stored weaker p", newHasherOn(t, newTestPool(t, hashpool.Params{Workers: 1}), Params{Memory: 16, Iterations: 1, Parallelism: 2, SaltLen: 16, KeyLen: 32}), "x", Encode(weak, salt, key), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rehash, err := tc.h.Verify(ctx, tc.pw, tc.enc)
			if err != nil || rehash != tc.rehash {
				t.Errorf("Verify: rehash %v, err %v; want %v, nil", rehash, err, tc.rehash)
			}
		})
	}
	if match, _, _ := hStrong.Verify(ctx, "pw-weak-params", encWeak); !match {
		t.Error("a hash with weaker params no longer verifies")
	}
}

func TestVerifyBcrypt(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, TestParams())
	ctx := context.Background()
	gen := func(pw string) string {
		t.Helper()
		b, err := bcrypt.GenerateFromPassword([]byte(pw)[:min(len(pw), 72)], bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	long := strings.Repeat("0123456789", 8) // 80 bytes; bcrypt used the first 72
	a := gen("imported-secret")
	full := gen("ｆｕｌｌ-width") // a foreign system that did not normalise
	for _, tc := range []struct {
		name, pw, enc string
		match         bool
	}{
		{"2a right", "imported-secret", a, true},
		{"2a wrong", "imported-secreT", a, false},
		{"2b", "imported-secret", "$2b$" + a[4:], true},
		{"2y", "imported-secret", "$2y$" + a[4:], true},
		{"over 72 bytes", long, gen(long), true},
		{"raw form", "ｆｕｌｌ-width", full, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			match, rehash, err := h.Verify(ctx, tc.pw, tc.enc)
			if err != nil || match != tc.match || !rehash {
				t.Errorf("Verify = %v, %v, %v; want %v, true, nil", match, rehash, err, tc.match)
			}
		})
	}

	t.Run("upgrade", func(t *testing.T) {
		t.Parallel()
		match, rehash, err := h.Verify(ctx, "imported-secret", a)
		if err != nil || !match || !rehash {
			t.Fatalf("Verify = %v, %v, %v", match, rehash, err)
		}
		enc, err := h.Hash(ctx, "imported-secret")
		if err != nil {
			t.Fatal(err)
		}
		match, rehash, err = h.Verify(ctx, "imported-secret", enc)
		if err != nil || !match || rehash {
			t.Errorf("after upgrade Verify = %v, %v, %v; want true, false, nil", match, rehash, err)
		}
	})

	for _, tc := range []struct{ name, enc string }{
		{"2x variant", "$2x$" + a[4:]},
		{"truncated", a[:59]},
		{"cost above cap", a[:4] + "16" + a[6:]},
		{"bad cost", a[:4] + "xx" + a[6:]},
		{"bad salt", a[:7] + "!!!!" + a[11:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := h.Verify(ctx, "imported-secret", tc.enc)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Verify = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	t.Parallel()
	h := newTestHasher(t, TestParams())
	if err := h.VerifyDummy(context.Background(), "whatever-password"); err != nil {
		t.Fatal(err)
	}
	// The dummy is a real hash with the configured params: unknown email and
	// wrong password do the same work.
	p, _, _, err := Parse(h.dummy)
	if err != nil {
		t.Fatal(err)
	}
	if p != TestParams() {
		t.Errorf("dummy params %+v, want %+v", p, TestParams())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.VerifyDummy(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("VerifyDummy on a cancelled ctx = %v", err)
	}
}

func TestPoolErrorsPassThrough(t *testing.T) {
	t.Parallel()
	// The hash to verify comes from a pool with a queue: with none, a job
	// submitted before the worker waits on the queue is refused.
	enc, err := newTestHasher(t, TestParams()).Hash(context.Background(), "something-long")
	if err != nil {
		t.Fatal(err)
	}
	pool := newTestPool(t, hashpool.Params{Workers: 1, Queue: 0})
	h := newHasherOn(t, pool, TestParams())
	// Hold the only worker (retrying until it waits on the queue); with no
	// queue every hash is then refused at once.
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			err := pool.Do(context.Background(), func() error { close(started); <-release; return nil })
			if !errors.Is(err, auth.ErrOverloaded) {
				return
			}
		}
	})
	<-started
	defer func() { close(release); wg.Wait() }()

	ctx := context.Background()
	_, err = h.Hash(ctx, "x")
	checkOverloaded(t, "Hash", err)
	_, _, err = h.Verify(ctx, "x", enc)
	checkOverloaded(t, "Verify", err)
	checkOverloaded(t, "VerifyDummy", h.VerifyDummy(ctx, "x"))
}

func checkOverloaded(t *testing.T, what string, err error) {
	t.Helper()
	var oe *hashpool.OverloadedError
	if !errors.Is(err, auth.ErrOverloaded) || !errors.As(err, &oe) || oe.RetryAfter() < time.Second {
		t.Errorf("%s on a full pool = %v; want an *hashpool.OverloadedError matching auth.ErrOverloaded", what, err)
	}
}

func TestNewHasherRefusesImpossibleParams(t *testing.T) {
	t.Parallel()
	pool := newTestPool(t, hashpool.Params{Workers: 1})
	for _, p := range []Params{
		{},
		{Memory: 64, Iterations: 1, Parallelism: 0, SaltLen: 16, KeyLen: 32},
		{Memory: MaxMemory + 1, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32},
	} {
		if _, err := NewHasher(pool, p); err == nil {
			t.Errorf("NewHasher(%+v) succeeded", p)
		}
	}
	if _, err := NewHasher(nil, TestParams()); err == nil {
		t.Error("NewHasher(nil pool) succeeded")
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("DefaultParams: %v", err)
	}
	if err := TestParams().Validate(); err == nil {
		t.Error("TestParams passes Validate")
	}
	for _, tc := range []struct {
		name string
		mod  func(*Params)
	}{
		{"memory below floor", func(p *Params) { p.Memory = 19455 }},
		{"memory above cap", func(p *Params) { p.Memory = MaxMemory + 1 }},
		{"t below floor", func(p *Params) { p.Iterations = 1 }},
		{"t above cap", func(p *Params) { p.Iterations = MaxIterations + 1 }},
		{"p zero", func(p *Params) { p.Parallelism = 0 }},
		{"p above cap", func(p *Params) { p.Parallelism = MaxParallelism + 1 }},
		{"salt short", func(p *Params) { p.SaltLen = 15 }},
		{"salt long", func(p *Params) { p.SaltLen = MaxSaltLen + 1 }},
		{"key short", func(p *Params) { p.KeyLen = 31 }},
		{"key long", func(p *Params) { p.KeyLen = MaxKeyLen + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := DefaultParams()
			tc.mod(&p)
			if err := p.Validate(); err == nil {
				t.Errorf("Validate(%+v) = nil", p)
			}
		})
	}
	stronger := Params{Memory: 65536, Iterations: 3, Parallelism: 4, SaltLen: 32, KeyLen: 64}
	if err := stronger.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", stronger, err)
	}
}
