package token_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/authd/authd/internal/sqlite"
	"github.com/authd/authd/internal/token"
)

// The keyring lives in the database; the issuer and the verifier share it.
func Example() {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, ":memory:", time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	secret := []byte("32-byte key sealing signing keys")
	ring, err := token.NewKeyring(ctx, db, secret, token.KeyParams{AccessTTL: 15 * time.Minute}, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	// In the server, ring.Run is one of the parts run starts: it picks up rotations.
	p := token.Params{Issuer: "https://auth.example.com", Audience: "authd", AccessTTL: 15 * time.Minute}
	issuer, err := token.NewIssuer(ring, p, time.Now)
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := token.NewVerifier(ring, p, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}

	raw, _, err := issuer.Issue("user-1", "session-1", []string{"pwd"})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := verifier.Verify(ctx, raw)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Subject, claims.SID, claims.AMR)
	_, err = verifier.Verify(ctx, raw+"x")
	fmt.Println(err != nil)
	// Output:
	// user-1 session-1 [pwd]
	// true
}
