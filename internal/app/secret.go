package app

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/token"
)

// secretName is where the generated development secret lives in the database.
const secretName = "secret_key"

// loadSecret returns AUTHD_SECRET_KEY, or in its absence a random secret
// generated once and kept in the database (shared by every instance on it),
// with a warning: a secret stored beside what it protects protects little.
// config.Parse allows the absence only with SQLite (development): with
// PostgreSQL it refuses to start.
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

// storedSecret returns the generated secret an SQLite database holds in
// place of AUTHD_SECRET_KEY, without creating one.
func storedSecret(ctx context.Context, db Stores) ([]byte, error) {
	r, ok := db.(interface {
		Secret(ctx context.Context, name string) ([]byte, error)
	})
	if !ok {
		return nil, errors.New("keys rotate: AUTHD_SECRET_KEY is required")
	}
	secret, err := r.Secret(ctx, secretName)
	if errors.Is(err, auth.ErrNotFound) {
		return nil, errors.New("keys rotate: AUTHD_SECRET_KEY is not set and the database holds no generated one: set the key its signing keys were sealed with")
	}
	if err != nil {
		return nil, fmt.Errorf("keys rotate: %w", err)
	}
	return secret, nil
}

// purposeKeys are the keys derived from the service secret, one per use, so
// that no two uses ever share a key.
type purposeKeys struct {
	seal     []byte // seals signing keys' private seeds at rest (token)
	throttle []byte // HMAC key of the per-account throttle's counter names
	device   []byte // HMAC key of device tokens (internal/device)
}

// deriveKeys derives every per-purpose key from the service secret with
// HKDF-SHA256, each under its own info string. Changing an info string
// changes that key: stored data made with the old key becomes unreadable.
func deriveKeys(secret []byte) (purposeKeys, error) {
	var k purposeKeys
	var err error
	// The info strings are those of the first releases: keys sealed then
	// must still open.
	if k.seal, err = hkdf.Key(sha256.New, secret, nil, "authd signing key v1", token.SealKeySize); err != nil {
		return k, fmt.Errorf("derive sealing key: %w", err)
	}
	if k.throttle, err = hkdf.Key(sha256.New, secret, nil, "authd throttle keys v1", 32); err != nil {
		return k, fmt.Errorf("derive throttle key: %w", err)
	}
	if k.device, err = hkdf.Key(sha256.New, secret, nil, "authd device tokens v1", 32); err != nil {
		return k, fmt.Errorf("derive device token key: %w", err)
	}
	return k, nil
}
