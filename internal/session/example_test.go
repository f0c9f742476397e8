package session_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/memstate"
	"github.com/authd/authd/internal/session"
	"github.com/authd/authd/internal/sqlite"
	"github.com/authd/authd/internal/token"
)

// A login, a protected request, a logout.
func Example() {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, ":memory:", time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := db.CreateUser(ctx, &auth.User{ID: "user-1", Email: "ada@example.com", PasswordHash: "…"}); err != nil {
		log.Fatal(err)
	}
	ttl := 15 * time.Minute
	ring, err := token.NewKeyring(ctx, db, []byte("32-byte key sealing signing keys"), token.KeyParams{AccessTTL: ttl}, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	tp := token.Params{Issuer: "https://auth.example.com", Audience: "authd", AccessTTL: ttl}
	issuer, err := token.NewIssuer(ring, tp, time.Now)
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := token.NewVerifier(ring, tp, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	state, err := memstate.New(memstate.Params{}, time.Now)
	if err != nil {
		log.Fatal(err)
	}
	m, err := session.NewManager(db, state, issuer, verifier,
		session.Params{AccessTTL: ttl, RefreshTTL: 720 * time.Hour}, time.Now, prometheus.NewRegistry())
	if err != nil {
		log.Fatal(err)
	}

	pair, err := m.Start(ctx, "user-1", []string{"pwd"}) // after the password checked out
	if err != nil {
		log.Fatal(err)
	}
	claims, err := m.Authenticate(ctx, pair.AccessToken) // every protected request
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Subject, pair.TokenType, pair.ExpiresIn)

	if err := m.Logout(ctx, claims, false); err != nil {
		log.Fatal(err)
	}
	_, err = m.Authenticate(ctx, pair.AccessToken)
	fmt.Println(errors.Is(err, auth.ErrTokenRevoked))
	_, err = m.Refresh(ctx, pair.RefreshToken)
	fmt.Println(errors.Is(err, auth.ErrTokenRevoked))
	// Output:
	// user-1 Bearer 900
	// true
	// true
}
