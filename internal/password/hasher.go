package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"github.com/authd/authd/internal/hashpool"
)

// Hasher hashes and verifies passwords on a hashpool.Pool. It is immutable
// after NewHasher and safe for concurrent use. Every method that hashes
// returns at once with an error matching auth.ErrOverloaded (an
// *hashpool.OverloadedError, or hashpool.ErrClosed during shutdown) when the
// pool refuses the job, and ctx.Err() (wrapped) when ctx ends first.
type Hasher struct {
	pool   *hashpool.Pool
	params Params
	dummy  string // PHC hash of a random password, made with params
}

// NewHasher returns a Hasher that makes new hashes with p and runs every
// hash on pool. The caller keeps owning pool (and closes it after the last
// use of the Hasher).
//
// p should have passed Validate (tests may use TestParams). NewHasher
// returns an error if pool is nil, or if Argon2id cannot run with p at all
// or p exceeds the package caps. It computes one hash (the dummy used by
// VerifyDummy) on the calling goroutine, so it takes one hash time.
func NewHasher(pool *hashpool.Pool, p Params) (*Hasher, error) {
	if pool == nil {
		return nil, errors.New("password: NewHasher: nil pool")
	}
	if err := p.computable(); err != nil {
		return nil, fmt.Errorf("password: NewHasher: params: %w", err)
	}
	salt := randomBytes(p.SaltLen)
	key := argon2.IDKey(randomBytes(32), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	return &Hasher{pool: pool, params: p, dummy: Encode(p, salt, key)}, nil
}

// Admit fails fast with an error matching auth.ErrOverloaded when the pool
// would refuse a job submitted now; it reserves nothing. Callers use it to
// refuse a request before any other work.
func (h *Hasher) Admit() error { return h.pool.Admit() }

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of the NFKC form of password, with a fresh
// random salt and the Hasher's params. It blocks until a worker has hashed
// it or ctx ends. Callers check a Policy first; Hash does not.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	p := h.params
	salt := randomBytes(p.SaltLen)
	pw := []byte(norm.NFKC.String(password))
	var key []byte // written by the job; read only when Do returned nil
	err := h.pool.Do(ctx, func() error {
		key = argon2.IDKey(pw, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("password: hash: %w", err)
	}
	return Encode(p, salt, key), nil
}

// Verify reports whether password matches encoded, a stored Argon2id PHC
// string or imported bcrypt hash, comparing in constant time with the
// parameters read from encoded. needsRehash reports that encoded was made
// with parameters weaker in some dimension than the Hasher's, or is bcrypt:
// after a match the caller should store Hash(password) in its place. It
// blocks until a worker has run the check or ctx ends. A malformed or
// over-cap encoded returns an error wrapping ErrMalformed without using the
// pool.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (match, needsRehash bool, err error) {
	if isBcrypt(encoded) {
		return h.verifyBcrypt(ctx, password, encoded)
	}
	p, salt, key, err := Parse(encoded)
	if err != nil {
		return false, false, err
	}
	pw := []byte(norm.NFKC.String(password))
	var ok bool // written by the job; read only when Do returned nil
	err = h.pool.Do(ctx, func() error {
		got := argon2.IDKey(pw, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
		ok = subtle.ConstantTimeCompare(got, key) == 1
		return nil
	})
	if err != nil {
		return false, false, fmt.Errorf("password: verify: %w", err)
	}
	return ok, p.weakerThan(h.params), nil
}

// VerifyDummy does the work of one Verify against a fixed hash made at start
// with the Hasher's params, and discards the result. Call it when the account
// does not exist, so that an unknown email costs the same time and the same
// pool slot as a wrong password. It returns only pool and ctx errors.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

func (h *Hasher) verifyBcrypt(ctx context.Context, password, encoded string) (match, needsRehash bool, err error) {
	hash := []byte(encoded)
	cost, err := bcrypt.Cost(hash)
	if err != nil || len(hash) != 60 {
		return false, false, fmt.Errorf("%w: bad bcrypt hash", ErrMalformed)
	}
	if cost > MaxBcryptCost {
		return false, false, fmt.Errorf("%w: bcrypt cost %d above %d", ErrMalformed, cost, MaxBcryptCost)
	}
	// bcrypt reads at most 72 bytes of the password, as the systems that
	// made these hashes did.
	raw := []byte(password)
	nfkc := []byte(norm.NFKC.String(password))
	var ok bool // written by the job; read only when Do returned nil
	err = h.pool.Do(ctx, func() error {
		err := bcrypt.CompareHashAndPassword(hash, raw)
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) && string(nfkc) != string(raw) {
			err = bcrypt.CompareHashAndPassword(hash, nfkc)
		}
		switch {
		case err == nil:
			ok = true
		case !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return fmt.Errorf("%w: bad bcrypt hash", ErrMalformed)
		}
		return nil
	})
	if err != nil {
		return false, false, fmt.Errorf("password: verify: %w", err)
	}
	return ok, true, nil
}

// randomBytes returns n bytes from crypto/rand, which never fails (it
// crashes the program if the OS cannot supply randomness).
func randomBytes(n uint32) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
