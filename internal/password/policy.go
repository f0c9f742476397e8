package password

import (
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn/frequency"
	"golang.org/x/text/unicode/norm"
)

// Policy limits (NIST SP 800-63B §3.1.1.2).
const (
	// MinRunes is the least number of characters (Unicode code points,
	// counted after NFKC normalisation) a new password may have.
	MinRunes = 8
	// MaxBytes is the longest password accepted, in bytes as received: long
	// enough for any passphrase, short enough that hashing stays cheap.
	MaxBytes = 1024
)

// PolicyError is a password CheckPolicy refuses. Its message is written for
// the user and names no part of the password.
type PolicyError struct{ msg string }

// Error implements error.
func (e *PolicyError) Error() string { return e.msg }

// The refusals of CheckPolicy; test with errors.Is, or errors.As with a
// *PolicyError for any of them.
var (
	ErrTooShort    = &PolicyError{"password must be at least 8 characters"}
	ErrTooLong     = &PolicyError{"password must be at most 1024 bytes"}
	ErrCommon      = &PolicyError{"password is too common; choose one that is harder to guess"}
	ErrInvalidUTF8 = &PolicyError{"password must be valid UTF-8 text"}
)

// CheckPolicy returns nil if pw may be set as a new password, or one of
// ErrTooLong, ErrInvalidUTF8, ErrTooShort and ErrCommon. It applies NIST SP
// 800-63B: at most MaxBytes bytes, at least MinRunes characters after NFKC
// normalisation, and not in the list of common passwords shipped with the
// binary (zxcvbn's "passwords" frequency list, compared case-insensitively
// after NFKC, so "ｐａｓｓｗｏｒｄ" is "password"). There are no composition
// rules. Safe for concurrent use; the first call builds the list's index.
func CheckPolicy(pw string) error {
	if len(pw) > MaxBytes {
		return ErrTooLong
	}
	if !utf8.ValidString(pw) {
		return ErrInvalidUTF8
	}
	n := norm.NFKC.String(pw)
	if utf8.RuneCountInString(n) < MinRunes {
		return ErrTooShort
	}
	if _, ok := commonPasswords()[strings.ToLower(n)]; ok {
		return ErrCommon
	}
	return nil
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
