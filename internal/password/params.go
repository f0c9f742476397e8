// Package password hashes and verifies passwords with Argon2id, stored as PHC
// strings, and checks new passwords against the NIST SP 800-63B policy.
//
// Every hash and verification runs on a hashpool.Pool, so the number of
// Argon2id computations in flight (and the memory they hold) is bounded by
// the pool's workers whatever the load.
//
// Passwords are Unicode-normalised (NFKC) before they are hashed or checked,
// so the same password typed on different keyboards or input methods (a
// full-width "ｐａｓｓ", a composed or decomposed "é") hashes the same. Imported
// bcrypt hashes are verified against the password as given and, failing
// that, its NFKC form (the foreign system may have done either).
//
// Nothing in this package logs, and no error it returns contains a password
// or a hash.
package password

import "fmt"

// Params are the Argon2id cost parameters of a hash.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32 // passes over memory (argon2 "t")
	Parallelism uint8  // lanes (argon2 "p"); each lane is a goroutine while hashing
	SaltLen     uint32 // bytes
	KeyLen      uint32 // bytes of derived key
}

// OWASP's floor (Password Storage Cheat Sheet): m=19 MiB, t=2, p=1, with a
// 16-byte salt and a 32-byte key.
const (
	minMemory      = 19456
	minIterations  = 2
	minParallelism = 1
	minSaltLen     = 16
	minKeyLen      = 32
)

// Caps on any hash this package will compute, configured or read from
// storage. They keep a hostile or corrupt stored hash from making one
// verification allocate more than 256 MiB or run for more than a few
// seconds, and still leave room for ten times OWASP's floor.
const (
	MaxMemory      = 256 * 1024 // KiB: 256 MiB
	MaxIterations  = 16
	MaxParallelism = 16
	MaxSaltLen     = 64
	MaxKeyLen      = 64
	// MaxBcryptCost bounds imported bcrypt hashes: cost 15 is about two
	// seconds of one core; common imports use 10 to 12.
	MaxBcryptCost = 15
)

// Smallest lengths accepted from storage (imports from other systems may
// use shorter salts and keys than we make; they are rehashed on login).
const (
	storedMinSaltLen = 8
	storedMinKeyLen  = 16
)

// DefaultParams returns OWASP's floor: m=19456 KiB, t=2, p=1, a 16-byte salt
// and a 32-byte key (about 26 ms per hash on one core of a current server).
func DefaultParams() Params {
	return Params{Memory: minMemory, Iterations: minIterations, Parallelism: minParallelism, SaltLen: minSaltLen, KeyLen: minKeyLen}
}

// TestParams returns the cheapest parameters Argon2id accepts (m=8 KiB, t=1,
// p=1, 16-byte salt, 32-byte key), for tests of other packages that need
// real hashes quickly. They fail Validate and must never be configured.
func TestParams() Params {
	return Params{Memory: 8, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
}

// Validate reports an error when p is below OWASP's floor in any dimension
// or above this package's caps. Configuration calls it at start-up.
func (p Params) Validate() error {
	switch {
	case p.Memory < minMemory || p.Memory > MaxMemory:
		return fmt.Errorf("password: argon2 memory %d KiB outside [%d, %d]", p.Memory, minMemory, MaxMemory)
	case p.Iterations < minIterations || p.Iterations > MaxIterations:
		return fmt.Errorf("password: argon2 iterations %d outside [%d, %d]", p.Iterations, minIterations, MaxIterations)
	case p.Parallelism < minParallelism || p.Parallelism > MaxParallelism:
		return fmt.Errorf("password: argon2 parallelism %d outside [%d, %d]", p.Parallelism, minParallelism, MaxParallelism)
	case p.SaltLen < minSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("password: salt length %d outside [%d, %d]", p.SaltLen, minSaltLen, MaxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("password: key length %d outside [%d, %d]", p.KeyLen, minKeyLen, MaxKeyLen)
	}
	return nil
}

// computable reports an error when Argon2id cannot run with p or p exceeds
// the caps: the check for stored hashes and for NewHasher, looser than
// Validate so that weak imports (and TestParams) still verify.
func (p Params) computable() error {
	switch {
	case p.Parallelism < 1 || p.Parallelism > MaxParallelism:
		return fmt.Errorf("parallelism %d outside [1, %d]", p.Parallelism, MaxParallelism)
	case p.Memory < 8*uint32(p.Parallelism) || p.Memory > MaxMemory:
		return fmt.Errorf("memory %d KiB outside [8×p, %d]", p.Memory, MaxMemory)
	case p.Iterations < 1 || p.Iterations > MaxIterations:
		return fmt.Errorf("iterations %d outside [1, %d]", p.Iterations, MaxIterations)
	case p.SaltLen < storedMinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("salt length %d outside [%d, %d]", p.SaltLen, storedMinSaltLen, MaxSaltLen)
	case p.KeyLen < storedMinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("key length %d outside [%d, %d]", p.KeyLen, storedMinKeyLen, MaxKeyLen)
	}
	return nil
}

// weakerThan reports whether p is below q in any dimension: a hash made with
// p should be replaced by one made with q.
func (p Params) weakerThan(q Params) bool {
	return p.Memory < q.Memory || p.Iterations < q.Iterations || p.Parallelism < q.Parallelism ||
		p.SaltLen < q.SaltLen || p.KeyLen < q.KeyLen
}
