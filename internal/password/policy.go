package password

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn/frequency"
	"golang.org/x/text/unicode/norm"
)

// Policy limits (NIST SP 800-63B-4 §3.1.1.2).
const (
	// MinRunes is the least MinLength a Policy may set: the floor NIST
	// allows for a password used with a second factor.
	MinRunes = 8
	// DefaultMinLength is NIST SP 800-63B-4's minimum for a password used as
	// the only factor, which is how authd uses it today.
	DefaultMinLength = 15
	// MaxMinLength is the greatest MinLength a Policy may set: NIST asks
	// verifiers to accept at least 64 characters, so no minimum beyond.
	MaxMinLength = 64
	// MaxBytes is the longest password accepted, in bytes as received: long
	// enough for any passphrase, short enough that hashing stays cheap.
	MaxBytes = 1024
	// MinContextRunes is the shortest email local part that a password may
	// not contain: shorter ones ("al", "bob") occur inside ordinary words
	// and passphrases by chance, and refusing them would refuse good
	// passwords without making any guess harder. A password equal to the
	// local part, or containing the whole address, is refused whatever the
	// length.
	MinContextRunes = 4
)

// PolicyError is a password Policy.Check refuses. Its message is written for
// the user and names no part of the password.
type PolicyError struct {
	msg  string
	kind *PolicyError // the sentinel it matches with errors.Is; nil for a sentinel
}

// Error implements error.
func (e *PolicyError) Error() string { return e.msg }

// Is reports whether e is a refusal of the sentinel target's kind.
func (e *PolicyError) Is(target error) bool { return e.kind != nil && target == e.kind }

// The refusals of Policy.Check; test with errors.Is, or errors.As with a
// *PolicyError for any of them.
var (
	ErrTooShort     = &PolicyError{msg: "password is too short"}
	ErrTooLong      = &PolicyError{msg: "password must be at most 1024 bytes"}
	ErrCommon       = &PolicyError{msg: "password is too common; choose one that is harder to guess"}
	ErrInvalidUTF8  = &PolicyError{msg: "password must be valid UTF-8 text"}
	ErrContainsUser = &PolicyError{msg: "password must not contain the email address or the part before its @"}
)

// Policy is what a new password must satisfy. The zero Policy is not
// valid; use DefaultPolicy or set MinLength.
type Policy struct {
	// MinLength is the least number of characters (Unicode code points,
	// counted after NFKC normalisation), from MinRunes to MaxMinLength.
	MinLength int
}

// DefaultPolicy returns the policy for a password that is the only factor.
func DefaultPolicy() Policy { return Policy{MinLength: DefaultMinLength} }

// Validate reports whether p can be applied.
func (p Policy) Validate() error {
	if p.MinLength < MinRunes || p.MinLength > MaxMinLength {
		return fmt.Errorf("password: minimum length %d is outside %d..%d", p.MinLength, MinRunes, MaxMinLength)
	}
	return nil
}

// Check returns nil if pw may be set as a new password of the account with
// the normalised address email, or an error matching one of ErrTooLong,
// ErrInvalidUTF8, ErrTooShort, ErrContainsUser and ErrCommon. It applies
// NIST SP 800-63B-4: at most MaxBytes bytes, at least p.MinLength
// characters after NFKC normalisation, no context-specific words (the
// address, or its local part: see MinContextRunes), and not in the list of
// common passwords shipped with the binary (zxcvbn's "passwords" frequency
// list). Comparisons are case-insensitive after NFKC, so "ｐａｓｓｗｏｒｄ" is
// "password". There are no composition rules. Safe for concurrent use; the
// first call builds the list's index.
func (p Policy) Check(pw, email string) error {
	if len(pw) > MaxBytes {
		return ErrTooLong
	}
	if !utf8.ValidString(pw) {
		return ErrInvalidUTF8
	}
	n := norm.NFKC.String(pw)
	if utf8.RuneCountInString(n) < p.MinLength {
		return &PolicyError{msg: fmt.Sprintf("password must be at least %d characters", p.MinLength), kind: ErrTooShort}
	}
	lower := strings.ToLower(n)
	if containsUser(lower, strings.ToLower(norm.NFKC.String(email))) {
		return ErrContainsUser
	}
	if _, ok := commonPasswords()[lower]; ok {
		return ErrCommon
	}
	return nil
}

// containsUser reports whether pw, lower case, is the local part of email or
// contains email or (when at least MinContextRunes long) its local part.
func containsUser(pw, email string) bool {
	i := strings.LastIndexByte(email, '@')
	if i <= 0 {
		return false
	}
	local := email[:i]
	switch {
	case pw == local, strings.Contains(pw, email):
		return true
	case utf8.RuneCountInString(local) >= MinContextRunes:
		return strings.Contains(pw, local)
	}
	return false
}

// commonPasswords indexes the entries of the common-password list that the
// length rule does not already refuse. It is immutable once built.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	list := frequency.FrequencyLists["passwords"]
	set := make(map[string]struct{}, len(list)/2)
	for _, w := range list {
		w = strings.ToLower(norm.NFKC.String(w))
		if utf8.RuneCountInString(w) >= MinRunes {
			set[w] = struct{}{}
		}
	}
	return set
})
