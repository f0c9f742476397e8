package password

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckPolicy checks the rules at the lowest minimum a Policy may set.
func TestCheckPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pw   string
		want error
	}{
		{"empty", "", ErrTooShort},
		{"seven", "abcdefg", ErrTooShort},
		{"eight", "xq7!vlz#", nil},
		{"passphrase", "correct horse battery staple", nil},
		{"common", "password", ErrCommon},
		{"common upper case", "PassWord", ErrCommon},
		{"common digits", "12345678", ErrCommon},
		{"common long", "qwertyuiop", ErrCommon},
		{"full-width common", "ｐａｓｓｗｏｒｄ", ErrCommon},
		{"eight emoji", "🔥🔥🔥🔥🔥🔥🔥🔥", nil},
		{"seven emoji", "🔥🔥🔥🔥🔥🔥🔥", ErrTooShort},
		// Eight code points before NFKC, seven after: "e" + combining acute
		// composes to one "é".
		{"counts after NFKC", "cafe\u0301xyz", ErrTooShort},
		{"ligature expands", "ﬁﬁﬁﬁ", nil}, // each ﬁ is "fi" under NFKC: 8 runes
		{"no composition rules", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", nil},
		{"1024 bytes", strings.Repeat("ab", 512), nil},
		{"1025 bytes", strings.Repeat("ab", 512) + "c", ErrTooLong},
		{"1025 bytes of emoji and ascii", strings.Repeat("🔥", 256) + "x", ErrTooLong},
		{"invalid UTF-8", "abcdefgh\xff", ErrInvalidUTF8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Policy{MinLength: MinRunes}.Check(tc.pw, "someone@example.com")
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Check(%q) = %v, want %v", tc.pw, err, tc.want)
			}
			if err != nil {
				var pe *PolicyError
				if !errors.As(err, &pe) {
					t.Errorf("%v is not a *PolicyError", err)
				}
				if tc.pw != "" && tc.pw != "password" && strings.Contains(err.Error(), tc.pw) {
					t.Errorf("error %q quotes the password", err)
				}
			}
		})
	}
}

func TestMinLength(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	if p.MinLength != 15 {
		t.Fatalf("DefaultPolicy().MinLength = %d, want NIST's 15 for a single factor", p.MinLength)
	}
	for _, tc := range []struct {
		pw   string
		want error
	}{
		{"xq7!vlz#abcdef", ErrTooShort}, // 14
		{"xq7!vlz#abcdefg", nil},        // 15
		{"🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥", ErrTooShort},
		{"🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥", nil},
	} {
		err := p.Check(tc.pw, "someone@example.com")
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("Check(%q) = %v, want %v", tc.pw, err, tc.want)
		}
	}
	if err := p.Check("short", ""); err == nil || !strings.Contains(err.Error(), "at least 15 characters") {
		t.Errorf("the refusal %v does not say the minimum", err)
	}
	for _, n := range []int{0, 7, 65} {
		if err := (Policy{MinLength: n}).Validate(); err == nil {
			t.Errorf("Policy{MinLength: %d}.Validate() = nil", n)
		}
	}
	for _, n := range []int{8, 15, 64} {
		if err := (Policy{MinLength: n}).Validate(); err != nil {
			t.Errorf("Policy{MinLength: %d}.Validate() = %v", n, err)
		}
	}
}

// TestContextSpecificWords: NIST's context-specific words, here the email
// address and its local part.
func TestContextSpecificWords(t *testing.T) {
	t.Parallel()
	p := Policy{MinLength: MinRunes}
	for _, tc := range []struct {
		name, email, pw string
		want            error
	}{
		{"equal to the local part", "margaret.hamilton@example.com", "margaret.hamilton", ErrContainsUser},
		{"equal to the local part, other case", "margaret.hamilton@example.com", "Margaret.Hamilton", ErrContainsUser},
		{"local part inside", "margaret.hamilton@example.com", "my name is margaret.hamilton!", ErrContainsUser},
		{"full-width local part", "margaret@example.com", "ｍａｒｇａｒｅｔ2024!", ErrContainsUser},
		{"the whole address", "al@example.com", "al@example.com", ErrContainsUser},
		{"the whole address inside", "al@example.com", "xx al@example.com xx", ErrContainsUser},
		{"four-rune local part inside", "adam@example.com", "iamadam-really", ErrContainsUser},
		{"short local part inside is allowed", "al@example.com", "always a lantern", nil},
		{"short local part, equal", "bobby@x.io", "bobby", ErrTooShort}, // too short first
		{"unrelated", "margaret@example.com", "correct horse battery staple", nil},
		{"domain alone is allowed", "ada@lovelace-example.com", "lovelace-example.com", nil},
		{"no email", "", "correct horse battery staple", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := p.Check(tc.pw, tc.email)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Check(%q, %q) = %v, want %v", tc.pw, tc.email, err, tc.want)
			}
		})
	}
}

func TestCommonListIsLoaded(t *testing.T) {
	t.Parallel()
	set := commonPasswords()
	if len(set) < 10000 {
		t.Fatalf("common-password index has %d entries; want the zxcvbn list", len(set))
	}
	for w := range set {
		if w != strings.ToLower(w) {
			t.Fatalf("entry %q not lower case", w)
		}
	}
}

func BenchmarkCheckPolicy(b *testing.B) {
	commonPasswords()
	b.ReportAllocs()
	for b.Loop() {
		_ = DefaultPolicy().Check("Correct Horse Battery Staple", "ada.lovelace@example.com")
	}
}
