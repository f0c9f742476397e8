package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/token"
)

// secretName is where the generated development secret lives in the database.
const secretName = "secret_key"

// loadSecret returns AUTHD_SECRET_KEY, or in its absence a random secret
// generated once and kept in the database (shared by every instance on it),
// with a warning: a secret stored beside what it protects protects little.
func loadSecret(ctx context.Context, cfg *config.Config, keys auth.KeyStore, logger *slog.Logger) ([]byte, error) {
	if cfg.SecretKey != "" {
		return []byte(cfg.SecretKey), nil
	}
	gen := make([]byte, 32)
	if _, err := rand.Read(gen); err != nil {
		return nil, fmt.Errorf("generate secret key: %w", err)
	}
	secret, err := keys.SecretOrCreate(ctx, secretName, gen)
	if err != nil {
		return nil, fmt.Errorf("load generated secret key: %w", err)
	}
	logger.Warn("AUTHD_SECRET_KEY is not set: using a generated key stored in the database; set it in production")
	return secret, nil
}

// runKeys is `authd keys rotate [flags]`: it adds a new signing key to the
// database. Every instance signs with it once it has picked it up (within a
// minute, or at once on meeting a token with its kid); the old key keeps
// verifying until every token it signed has expired.
func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return fmt.Errorf("%w: authd keys rotate [flags]", errUsage)
	}
	cfg, err := config.Parse(args[1:], getenv, stdout)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	db, _, closeDB, err := openDatabase(ctx, cfg, logger, time.Now)
	if err != nil {
		return err
	}
	defer closeDB()
	secret, err := loadSecret(ctx, cfg, db, logger)
	if err != nil {
		return err
	}
	ring, err := token.NewKeyring(ctx, db, secret, keyParams(cfg), time.Now, logger)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	kid, err := ring.Rotate(ctx)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintf(stdout, "new signing key %s\n", kid)
	return nil
}

func keyParams(cfg *config.Config) token.KeyParams {
	return token.KeyParams{AccessTTL: cfg.AccessTokenTTL, ReloadEvery: cfg.KeyReloadInterval}
}
