package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authd/authd/internal/auth"
)

var _ auth.OutboxStore = (*Store)(nil)

// storeTx is the auth.Tx of InTx: the store's statements on one pgx.Tx.
// Other files of the package add the changes their flows need.
type storeTx struct {
	s  *Store
	tx pgx.Tx
}

var _ auth.Tx = (*storeTx)(nil)

// InTx runs fn in one read-committed transaction, bounded like every call of
// the Store (acquisition, statements and commit together), and commits it if
// fn returns nil. fn's error is returned as it is; a failed begin or commit
// wraps auth.ErrUnavailable when a retry may cure it.
func (s *Store) InTx(ctx context.Context, fn func(tx auth.Tx) error) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return opErr("begin", err)
	}
	if err := fn(&storeTx{s: s, tx: tx}); err != nil {
		if rbErr := tx.Rollback(ctx); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
			return errors.Join(err, opErr("rollback", rbErr))
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return opErr("commit", err)
	}
	return nil
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
	if err := checkMessage(m); err != nil {
		return err
	}
	data := m.Data
	if data == nil {
		data = map[string]string{}
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO outbox (idempotency_key, channel, recipient, template, data, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (idempotency_key) DO NOTHING`,
		m.IdempotencyKey, string(m.Channel), m.To, m.Template, data, utc(now))
	if err != nil {
		return opErr("enqueue", err)
	}
	return nil
}

func checkMessage(m auth.Message) error {
	if m.IdempotencyKey == "" || m.To == "" || m.Template == "" || m.Channel == "" {
		return errors.New("postgres: enqueue: a message needs a channel, a recipient, a template and an idempotency key")
	}
	return nil
}

// ClaimMessages leases due messages to owner: the rows are picked with FOR
// UPDATE SKIP LOCKED, so concurrent claimers (on any instance) skip each
// other's rows instead of waiting for them or taking them too.
func (s *Store) ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]auth.OutboxMessage, error) {
	if owner == "" || lease <= 0 || limit <= 0 {
		return nil, errors.New("postgres: claim messages: an owner, a positive lease and a positive limit are required")
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	now = utc(now)
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT id FROM outbox
			WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1
			  AND (lease_until IS NULL OR lease_until <= $1)
			ORDER BY next_attempt_at, id
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE outbox o SET lease_owner = $3, lease_until = $4, attempts = o.attempts + 1
		FROM due WHERE o.id = due.id
		RETURNING o.id, o.idempotency_key, o.channel, o.recipient, o.template, o.data, o.attempts, o.created_at`,
		now, limit, owner, now.Add(lease))
	if err != nil {
		return nil, opErr("claim messages", err)
	}
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (auth.OutboxMessage, error) {
		var (
			m       auth.OutboxMessage
			id      int64
			channel string
		)
		err := row.Scan(&id, &m.Message.IdempotencyKey, &channel, &m.Message.To, &m.Message.Template,
			&m.Message.Data, &m.Attempts, &m.CreatedAt)
		m.ID = strconv.FormatInt(id, 10)
		m.Message.Channel = auth.Channel(channel)
		m.CreatedAt = m.CreatedAt.UTC()
		return m, err
	})
	if err != nil {
		return nil, opErr("claim messages", err)
	}
	return msgs, nil
}

// MarkSent records the provider's acceptance and clears the message's data.
func (s *Store) MarkSent(ctx context.Context, id, owner string, now time.Time) error {
	return s.finish(ctx, "mark sent", id, owner,
		`UPDATE outbox SET sent_at = $3, data = '{}', lease_owner = NULL, lease_until = NULL, last_error = NULL
		 WHERE id = $1 AND lease_owner = $2 AND sent_at IS NULL AND failed_at IS NULL`, utc(now))
}

// RetryLater gives the message back, due at next.
func (s *Store) RetryLater(ctx context.Context, id, owner string, next time.Time, lastErr string) error {
	return s.finish(ctx, "retry later", id, owner,
		`UPDATE outbox SET next_attempt_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL
		 WHERE id = $1 AND lease_owner = $2 AND sent_at IS NULL AND failed_at IS NULL`, utc(next), lastErr)
}

// GiveUp marks the message failed for good and clears its data.
func (s *Store) GiveUp(ctx context.Context, id, owner string, now time.Time, lastErr string) error {
	return s.finish(ctx, "give up", id, owner,
		`UPDATE outbox SET failed_at = $3, last_error = $4, data = '{}', lease_owner = NULL, lease_until = NULL
		 WHERE id = $1 AND lease_owner = $2 AND sent_at IS NULL AND failed_at IS NULL`, utc(now), lastErr)
}

func (s *Store) finish(ctx context.Context, op, id, owner, query string, args ...any) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fmt.Errorf("postgres: %s: message id %q: %w", op, id, auth.ErrNotFound)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, query, append([]any{n, owner}, args...)...)
	if err == nil && tag.RowsAffected() == 0 {
		err = auth.ErrNotFound
	}
	if err != nil {
		return opErr(op, err)
	}
	return nil
}

// PendingMessages counts the messages neither sent nor given up.
func (s *Store) PendingMessages(ctx context.Context) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL`).Scan(&n); err != nil {
		return 0, opErr("pending messages", err)
	}
	return n, nil
}

// DeleteFinishedMessages deletes at most limit rows sent or given up before t.
func (s *Store) DeleteFinishedMessages(ctx context.Context, t time.Time, limit int) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN (
			SELECT id FROM outbox
			WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL) AND coalesce(sent_at, failed_at) < $1
			LIMIT $2)`, utc(t), limit)
	if err != nil {
		return 0, opErr("delete finished messages", err)
	}
	return tag.RowsAffected(), nil
}
