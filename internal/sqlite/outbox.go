package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/authd/authd/internal/auth"
)

var _ auth.OutboxStore = (*Store)(nil)

// storeTx is the auth.Tx of InTx: the store's statements on one transaction
// of the writer connection. Other files of the package add the changes
// their flows need.
type storeTx struct {
	s  *Store
	tx *sql.Tx
}

var _ auth.Tx = (*storeTx)(nil)

// InTx runs fn in one transaction on the writer connection (BEGIN
// IMMEDIATE: it holds the write lock from the start, so nothing it reads
// changes under it) and commits it if fn returns nil. fn's error is
// returned as it is. Keep fn short: every other write waits for it.
func (s *Store) InTx(ctx context.Context, fn func(tx auth.Tx) error) error {
	var fnErr error
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		fnErr = fn(&storeTx{s: s, tx: tx})
		return fnErr
	})
	if err != nil && fnErr == nil {
		return opErr("transaction", err)
	}
	return err
}

// CreateUser is Store.CreateUser inside the transaction.
func (t *storeTx) CreateUser(ctx context.Context, u *auth.User) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = t.s.now()
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	u.CreatedAt, u.UpdatedAt = utc(u.CreatedAt), utc(u.UpdatedAt)
	if err := createUser(ctx, t.tx, u); err != nil {
		return opErr("create user", err)
	}
	return nil
}

// Enqueue adds m to the outbox, due at now; a known idempotency key is a no-op.
func (t *storeTx) Enqueue(ctx context.Context, m auth.Message, now time.Time) error {
	if m.IdempotencyKey == "" || m.To == "" || m.Template == "" || m.Channel == "" {
		return errors.New("sqlite: enqueue: a message needs a channel, a recipient, a template and an idempotency key")
	}
	data := m.Data
	if data == nil {
		data = map[string]string{}
	}
	js, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("sqlite: enqueue: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO outbox (idempotency_key, channel, recipient, template, data, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
		m.IdempotencyKey, string(m.Channel), m.To, m.Template, string(js), encTime(now), encTime(now))
	if err != nil {
		return opErr("enqueue", err)
	}
	return nil
}

// ClaimMessages leases due messages to owner with one UPDATE ... RETURNING
// on the single writer: claims of this process are serialised by the writer
// connection, those of other processes on the file by the write lock.
func (s *Store) ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]auth.OutboxMessage, error) {
	if owner == "" || lease <= 0 || limit <= 0 {
		return nil, errors.New("sqlite: claim messages: an owner, a positive lease and a positive limit are required")
	}
	var msgs []auth.OutboxMessage
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1
			WHERE id IN (
				SELECT id FROM outbox
				WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?
				  AND (lease_until IS NULL OR lease_until <= ?)
				ORDER BY next_attempt_at, id
				LIMIT ?)
			RETURNING id, idempotency_key, channel, recipient, template, data, attempts, created_at`,
			owner, encTime(now.Add(lease)), encTime(now), encTime(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				m                      auth.OutboxMessage
				id                     int64
				channel, data, created string
			)
			if err := rows.Scan(&id, &m.Message.IdempotencyKey, &channel, &m.Message.To, &m.Message.Template,
				&data, &m.Attempts, &created); err != nil {
				return err
			}
			m.ID = strconv.FormatInt(id, 10)
			m.Message.Channel = auth.Channel(channel)
			if err := json.Unmarshal([]byte(data), &m.Message.Data); err != nil {
				return fmt.Errorf("message %d: data: %w", id, err)
			}
			if m.CreatedAt, err = decTime(created); err != nil {
				return fmt.Errorf("message %d: %w", id, err)
			}
			msgs = append(msgs, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, opErr("claim messages", err)
	}
	return msgs, nil
}

// MarkSent records the provider's acceptance and clears the message's data.
func (s *Store) MarkSent(ctx context.Context, id, owner string, now time.Time) error {
	return s.finish(ctx, "mark sent", id, owner,
		`UPDATE outbox SET sent_at = ?, data = '{}', lease_owner = NULL, lease_until = NULL, last_error = NULL
		 WHERE id = ? AND lease_owner = ? AND sent_at IS NULL AND failed_at IS NULL`, encTime(now))
}

// RetryLater gives the message back, due at next.
func (s *Store) RetryLater(ctx context.Context, id, owner string, next time.Time, lastErr string) error {
	return s.finish(ctx, "retry later", id, owner,
		`UPDATE outbox SET next_attempt_at = ?, last_error = ?, lease_owner = NULL, lease_until = NULL
		 WHERE id = ? AND lease_owner = ? AND sent_at IS NULL AND failed_at IS NULL`, encTime(next), lastErr)
}

// GiveUp marks the message failed for good and clears its data.
func (s *Store) GiveUp(ctx context.Context, id, owner string, now time.Time, lastErr string) error {
	return s.finish(ctx, "give up", id, owner,
		`UPDATE outbox SET failed_at = ?, last_error = ?, data = '{}', lease_owner = NULL, lease_until = NULL
		 WHERE id = ? AND lease_owner = ? AND sent_at IS NULL AND failed_at IS NULL`, encTime(now), lastErr)
}

// finish runs query with args followed by the message id and owner.
func (s *Store) finish(ctx context.Context, op, id, owner, query string, args ...any) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fmt.Errorf("sqlite: %s: message id %q: %w", op, id, auth.ErrNotFound)
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, append(args, n, owner)...)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return opErr(op, err)
	}
	return nil
}

// PendingMessages counts the messages neither sent nor given up.
func (s *Store) PendingMessages(ctx context.Context) (int64, error) {
	var n int64
	err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL`).Scan(&n)
	if err != nil {
		return 0, opErr("pending messages", err)
	}
	return n, nil
}

// DeleteFinishedMessages deletes at most limit rows sent or given up before t.
func (s *Store) DeleteFinishedMessages(ctx context.Context, t time.Time, limit int) (int64, error) {
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id IN (
				SELECT id FROM outbox
				WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL) AND coalesce(sent_at, failed_at) < ?
				LIMIT ?)`, encTime(t), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, opErr("delete finished messages", err)
	}
	return n, nil
}
