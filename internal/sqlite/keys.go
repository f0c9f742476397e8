package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/authd/authd/internal/auth"
)

// SigningKeys returns every stored key, oldest (by CreatedAt, then ID) first.
func (s *Store) SigningKeys(ctx context.Context) ([]auth.SigningKey, error) {
	keys, err := signingKeys(ctx, s.read)
	if err != nil {
		return nil, opErr("signing keys", err)
	}
	return keys, nil
}

func signingKeys(ctx context.Context, q querier) ([]auth.SigningKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT kid, public_key, sealed, created_at, not_before, retire_at
		FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []auth.SigningKey
	for rows.Next() {
		var (
			k                  auth.SigningKey
			created, notBefore string
			retire             sql.NullString
		)
		if err := rows.Scan(&k.ID, &k.PublicKey, &k.Sealed, &created, &notBefore, &retire); err != nil {
			return nil, err
		}
		if k.CreatedAt, err = decTime(created); err != nil {
			return nil, fmt.Errorf("key %s: %w", k.ID, err)
		}
		if k.NotBefore, err = decTime(notBefore); err != nil {
			return nil, fmt.Errorf("key %s: %w", k.ID, err)
		}
		if k.RetireAt, err = decNullTime(retire); err != nil {
			return nil, fmt.Errorf("key %s: %w", k.ID, err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// AddSigningKey stores k and, in the same transaction, sets RetireAt to
// k.NotBefore on every current key (RetireAt zero) created no later than k.
// A zero k.CreatedAt is set from the store's clock, a zero k.NotBefore to
// k.CreatedAt. A duplicate k.ID is an error.
func (s *Store) AddSigningKey(ctx context.Context, k auth.SigningKey) error {
	if k.ID == "" || len(k.PublicKey) == 0 || len(k.Sealed) == 0 {
		return errors.New("sqlite: add signing key: ID, PublicKey and Sealed are required")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	if k.NotBefore.IsZero() {
		k.NotBefore = k.CreatedAt
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retire_at = ?
			WHERE retire_at IS NULL AND created_at <= ?`,
			encTime(k.NotBefore), encTime(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, public_key, sealed, created_at, not_before, retire_at)
			VALUES (?, ?, ?, ?, ?, ?)`,
			k.ID, k.PublicKey, k.Sealed, encTime(k.CreatedAt), encTime(k.NotBefore), encNullTime(k.RetireAt))
		return err
	})
	if err != nil {
		return opErr("add signing key", err)
	}
	return nil
}

// DeleteSigningKeysRetiredBefore removes the keys whose RetireAt is set and
// before t. Current keys are never removed.
func (s *Store) DeleteSigningKeysRetiredBefore(ctx context.Context, t time.Time) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at < ?`, encTime(t))
		return err
	})
	if err != nil {
		return opErr("delete retired signing keys", err)
	}
	return nil
}

// Secret returns the secret stored under name, or auth.ErrNotFound; unlike
// SecretOrCreate it never writes.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	var got []byte
	err := s.read.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlite: secret %q: %w", name, auth.ErrNotFound)
	case err != nil:
		return nil, opErr(fmt.Sprintf("secret %q", name), err)
	}
	return got, nil
}

// SecretOrCreate returns the secret stored under name, storing value first
// when there is none, in one write transaction: every caller, concurrent or
// in another process on the same file, gets the first value stored. value
// must not be empty.
func (s *Store) SecretOrCreate(ctx context.Context, name string, value []byte) ([]byte, error) {
	if len(value) == 0 {
		return nil, errors.New("sqlite: secret or create: empty value")
	}
	var got []byte
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			name, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&got)
	})
	if err != nil {
		return nil, opErr(fmt.Sprintf("secret or create %q", name), err)
	}
	return got, nil
}
