package main

import (
	"crypto/sha256"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/sqlite"
)

// instanceDB is what the tests plant in an instance's database.
type instanceDB interface {
	auth.Transactor
	auth.ResetStore
}

// openDB opens in's database beside it, as a second process would; the
// test closes it when it ends.
func openDB(t *testing.T, in *instance) instanceDB {
	t.Helper()
	url := in.vars["AUTHD_DATABASE_URL"]
	logger := slog.New(slog.DiscardHandler)
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		st, err := sqlite.Open(t.Context(), path, time.Now, logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	st, err := postgres.Open(t.Context(), url, time.Now, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// plantVerification stores a verification token for userID in the
// database of in, as registration does, and returns it: the log sender
// never shows the emailed one.
func plantVerification(t *testing.T, in *instance, userID string) string {
	t.Helper()
	db := openDB(t, in)
	tok := "planted-" + userID
	h := sha256.Sum256([]byte(tok))
	err := db.InTx(t.Context(), func(tx auth.Tx) error {
		return tx.(auth.EmailTx).CreateEmailVerification(t.Context(), auth.EmailVerification{
			Hash: h[:], UserID: userID, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
		})
	})
	if err != nil {
		t.Fatalf("plant verification: %v", err)
	}
	return tok
}

// With no provider configured, a registration's verification email goes
// through the outbox to the log sender: start-up says so once, the
// delivery is logged, and no line holds the link or its token.
func TestRegistrationEmailIsLoggedWithoutItsLink(t *testing.T) {
	t.Parallel()
	in := start(t, nil)
	c := newConformance(t, in.base)
	c.call(t, "POST", "/v1/register", "application/json", `{"email":"ada@example.com","password":"`+goodPassword+`"}`, "", 201, true)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(in.logs.String(), `"msg":"courier: delivered"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery logged:\n%s", in.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	logs := in.logs.String()
	if n := strings.Count(logs, "no provider is configured for email and SMS"); n != 1 {
		t.Errorf("start-up said %d times that messages go to the log, want once", n)
	}
	if !strings.Contains(logs, `"template":"verify_email"`) {
		t.Errorf("the log does not name the template:\n%s", logs)
	}
	if strings.Contains(logs, "token=") || strings.Contains(logs, "/verify-email") {
		t.Errorf("the log holds the verification link:\n%s", logs)
	}
}
