package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authd/authd/internal/auth"
)

// SigningKeys returns every stored key, oldest (by CreatedAt, then ID) first.
func (s *Store) SigningKeys(ctx context.Context) ([]auth.SigningKey, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT kid, public_key, sealed, created_at, not_before, retire_at
		FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, opErr("signing keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (auth.SigningKey, error) {
		var (
			k      auth.SigningKey
			retire *time.Time
		)
		err := row.Scan(&k.ID, &k.PublicKey, &k.Sealed, &k.CreatedAt, &k.NotBefore, &retire)
		k.CreatedAt, k.NotBefore, k.RetireAt = k.CreatedAt.UTC(), k.NotBefore.UTC(), fromNull(retire)
		return k, err
	})
	if err != nil {
		return nil, opErr("signing keys", err)
	}
	return keys, nil
}

// AddSigningKey stores k and, in the same transaction, sets RetireAt to
// k.NotBefore on every current key (RetireAt zero) created no later than k.
// Concurrent additions, from any instance, are serialised. A zero k.CreatedAt
// is set from the store's clock, a zero k.NotBefore to k.CreatedAt. A
// duplicate k.ID is an error.
func (s *Store) AddSigningKey(ctx context.Context, k auth.SigningKey) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if k.ID == "" || len(k.PublicKey) == 0 || len(k.Sealed) == 0 {
		return errors.New("postgres: add signing key: ID, PublicKey and Sealed are required")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	if k.NotBefore.IsZero() {
		k.NotBefore = k.CreatedAt
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// EXCLUSIVE lets readers in but not another adder, whose UPDATE would
		// otherwise miss the key inserted here and leave two current keys.
		if _, err := tx.Exec(ctx, `LOCK TABLE signing_keys IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retire_at = $1 WHERE retire_at IS NULL AND created_at <= $2`,
			utc(k.NotBefore), utc(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (kid, public_key, sealed, created_at, not_before, retire_at)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			k.ID, k.PublicKey, k.Sealed, utc(k.CreatedAt), utc(k.NotBefore), nullTime(k.RetireAt))
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
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `DELETE FROM signing_keys WHERE retire_at < $1`, utc(t)); err != nil {
		return opErr("delete retired signing keys", err)
	}
	return nil
}

// SecretOrCreate returns the secret stored under name, storing value first
// when there is none: every caller, concurrent or on another instance, gets
// the first value stored. value must not be empty.
func (s *Store) SecretOrCreate(ctx context.Context, name string, value []byte) ([]byte, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if len(value) == 0 {
		return nil, errors.New("postgres: secret or create: empty value")
	}
	// Two statements, not one: a single statement's snapshot could miss a
	// row committed by a concurrent caller that its ON CONFLICT waited for.
	if _, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		name, value); err != nil {
		return nil, opErr(fmt.Sprintf("secret or create %q", name), err)
	}
	var got []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&got); err != nil {
		return nil, opErr(fmt.Sprintf("secret or create %q", name), err)
	}
	return got, nil
}
