package auth

import (
	"fmt"
	"net/mail"
	"strings"
)

// MaxEmailBytes is the longest address we store (RFC 5321 path limit less the brackets).
const MaxEmailBytes = 254

// NormalizeEmail trims and lower-cases an address; it is the form stored and
// looked up. It does not validate; see ValidateEmail.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// ValidateEmail reports why a normalised address is unacceptable, or nil.
// Only a bare addr-spec is accepted: no display name, no angle brackets.
func ValidateEmail(email string) error {
	if email == "" {
		return fmt.Errorf("is required")
	}
	if len(email) > MaxEmailBytes {
		return fmt.Errorf("must be at most %d bytes", MaxEmailBytes)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return fmt.Errorf("is not a valid email address")
	}
	if !strings.Contains(email[strings.LastIndexByte(email, '@'):], ".") {
		return fmt.Errorf("is not a valid email address")
	}
	return nil
}
