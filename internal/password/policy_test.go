package password

import (
	"errors"
	"strings"
	"testing"
)

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
			err := CheckPolicy(tc.pw)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("CheckPolicy(%q) = %v, want %v", tc.pw, err, tc.want)
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
		_ = CheckPolicy("Correct Horse Battery Staple")
	}
}
