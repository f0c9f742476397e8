package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/sqlite"
)

// plantReset stores a password reset token for userID in in's database, as
// a forgot request would (whose email goes to a provider the test cannot
// read), and returns the token.
func plantReset(t *testing.T, in *instance, userID string) string {
	t.Helper()
	var (
		db  auth.ResetStore
		url = in.vars["AUTHD_DATABASE_URL"]
	)
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		st, err := sqlite.Open(t.Context(), path, time.Now, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		db = st
	} else {
		st, err := postgres.Open(t.Context(), url, time.Now, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		db = st
	}
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
