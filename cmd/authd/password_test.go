package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
)

// plantReset stores a password reset token for userID in in's database, as
// a forgot request would (whose email goes to a provider the test cannot
// read), and returns the token.
func plantReset(t *testing.T, in *instance, userID string) string {
	t.Helper()
	db := openDB(t, in)
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	err := db.CreatePasswordReset(t.Context(), auth.PasswordReset{
		Hash: h[:], UserID: userID, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(30 * time.Minute),
	})
	if err != nil {
		t.Fatalf("plant reset: %v", err)
	}
	return tok
}
