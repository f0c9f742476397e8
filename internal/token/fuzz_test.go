package token

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authd/authd/internal/auth"
)

// FuzzVerify feeds arbitrary input to Verify: it must never panic, and
// whatever it accepts must carry the claims authd relies on.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, &keyStore{}, testParams, KeyParams{})
	valid, _ := fx.issue(f)
	parts := strings.Split(valid, ".")
	none := jwt.NewWithClaims(jwt.SigningMethodNone, fx.claimsMap())
	noneRaw, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		valid, noneRaw, "", ".", "..", "...", parts[0] + "..", parts[0] + "." + parts[1] + ".",
		valid[:len(valid)-1], valid + "A", "eyJhbGciOiJFZERTQSJ9.e30.",
		"eyJhbGciOiJFZERTQSIsImtpZCI6W119.e30.AAAA", strings.Repeat("eyJ", 2000),
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := fx.ver.Verify(ctx, raw)
		if err != nil {
			if c != nil || !errors.Is(err, auth.ErrUnauthorized) {
				t.Fatalf("Verify(%q) = %v, %v", raw, c, err)
			}
			return
		}
		if c.Subject == "" || c.ID == "" || c.SID == "" || c.ExpiresAt == nil {
			t.Fatalf("Verify(%q) accepted incomplete claims %+v", raw, c)
		}
	})
}
