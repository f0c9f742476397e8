package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every error Parse returns, and by Verify for a
// stored hash that is neither a valid Argon2id PHC string within the caps
// nor a supported bcrypt hash. The wrapping error says what was wrong but
// never quotes the hash.
var ErrMalformed = errors.New("password: malformed hash")

const phcPrefix = "$argon2id$v=19$m="

// b64 is the PHC alphabet: standard base64 without padding, and Strict so
// that exactly one string decodes to given bytes.
var b64 = base64.RawStdEncoding.Strict()

// Encode returns the PHC string of an Argon2id hash:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, salt and key in unpadded
// standard base64. Only p's Memory, Iterations and Parallelism are used; the
// lengths are those of salt and key.
func Encode(p Params, salt, key []byte) string {
	b := make([]byte, 0, len(phcPrefix)+32+b64.EncodedLen(len(salt))+b64.EncodedLen(len(key)))
	b = append(b, phcPrefix...)
	b = strconv.AppendUint(b, uint64(p.Memory), 10)
	b = append(b, ",t="...)
	b = strconv.AppendUint(b, uint64(p.Iterations), 10)
	b = append(b, ",p="...)
	b = strconv.AppendUint(b, uint64(p.Parallelism), 10)
	b = append(b, '$')
	b = b64.AppendEncode(b, salt)
	b = append(b, '$')
	b = b64.AppendEncode(b, key)
	return string(b)
}

// Parse reads an Argon2id PHC string as Encode writes it. It is strict, so
// that every string it accepts is exactly what Encode(p, salt, key) returns:
// version 19 only, the parameters m, t, p in that order as decimals without
// sign or leading zeros, no optional fields, canonical unpadded base64. It
// rejects parameters Argon2id cannot run and anything above the package
// caps (MaxMemory, MaxIterations, MaxParallelism, MaxSaltLen, MaxKeyLen), so
// a stored hash can never make a verification allocate more than MaxMemory.
// Errors wrap ErrMalformed. Parse never panics.
func Parse(s string) (p Params, salt, key []byte, err error) {
	rest, ok := strings.CutPrefix(s, phcPrefix)
	if !ok {
		return Params{}, nil, nil, fmt.Errorf("%w: not an argon2id v=19 PHC string", ErrMalformed)
	}
	m, rest, ok := cutNumber(rest, ",t=")
	if !ok {
		return Params{}, nil, nil, fmt.Errorf("%w: bad m", ErrMalformed)
	}
	t, rest, ok := cutNumber(rest, ",p=")
	if !ok {
		return Params{}, nil, nil, fmt.Errorf("%w: bad t", ErrMalformed)
	}
	par, rest, ok := cutNumber(rest, "$")
	if !ok || par > 255 {
		return Params{}, nil, nil, fmt.Errorf("%w: bad p", ErrMalformed)
	}
	saltB64, keyB64, ok := strings.Cut(rest, "$")
	if !ok {
		return Params{}, nil, nil, fmt.Errorf("%w: missing key", ErrMalformed)
	}
	// Bound the lengths before decoding anything.
	if len(saltB64) > b64.EncodedLen(MaxSaltLen) || len(keyB64) > b64.EncodedLen(MaxKeyLen) {
		return Params{}, nil, nil, fmt.Errorf("%w: salt or key too long", ErrMalformed)
	}
	if salt, err = decode(saltB64); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: salt: %v", ErrMalformed, err)
	}
	if key, err = decode(keyB64); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: key: %v", ErrMalformed, err)
	}
	p = Params{
		Memory:      m,
		Iterations:  t,
		Parallelism: uint8(par),
		SaltLen:     uint32(len(salt)),
		KeyLen:      uint32(len(key)),
	}
	if err := p.computable(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return p, salt, key, nil
}

// cutNumber reads a canonical decimal uint32 from the start of s, which must
// be followed by sep, and returns it and what follows sep.
func cutNumber(s, sep string) (n uint32, rest string, ok bool) {
	digits, rest, ok := strings.Cut(s, sep)
	if !ok || digits == "" || len(digits) > 10 || (digits[0] == '0' && len(digits) > 1) {
		return 0, "", false
	}
	var v uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, "", false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > 1<<32-1 {
		return 0, "", false
	}
	return uint32(v), rest, true
}

// decode decodes canonical unpadded base64. The decoder skips '\r' and '\n';
// the length check rejects strings that contain them.
func decode(s string) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, errors.New("bad base64")
	}
	if b64.EncodedLen(len(b)) != len(s) {
		return nil, errors.New("bad base64")
	}
	return b, nil
}

// isBcrypt reports whether s is one of the bcrypt variants accepted for
// import: $2a$, $2b$ or $2y$.
func isBcrypt(s string) bool {
	if len(s) < 4 {
		return false
	}
	switch s[:4] {
	case "$2a$", "$2b$", "$2y$":
		return true
	}
	return false
}
