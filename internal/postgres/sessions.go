package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authd/authd/internal/auth"
)

const sessionColumns = `id, user_id, amr, created_at, expires_at, revoked_at`

// CreateSession stores sess and first, the first refresh token of its
// family, in one transaction; first.SessionID is taken from sess.ID. A zero
// sess.CreatedAt is set from the store's clock, a zero first.CreatedAt to
// sess.CreatedAt. It returns an error wrapping auth.ErrNotFound when
// sess.UserID names no account.
func (s *Store) CreateSession(ctx context.Context, sess *auth.Session, first auth.RefreshToken) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if sess.ExpiresAt.IsZero() || first.ExpiresAt.IsZero() || len(first.Hash) == 0 {
		return errors.New("postgres: create session: ExpiresAt and the token hash are required")
	}
	if sess.CreatedAt.IsZero() {
		sess.CreatedAt = utc(s.now())
	}
	if first.CreatedAt.IsZero() {
		first.CreatedAt = sess.CreatedAt
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			sess.ID, sess.UserID, nonNil(sess.AMR), utc(sess.CreatedAt), utc(sess.ExpiresAt), nullTime(sess.RevokedAt))
		if pgCode(err, foreignKeyViolation, "") {
			return fmt.Errorf("user %q: %w", sess.UserID, auth.ErrNotFound)
		}
		if err != nil {
			return err
		}
		return insertToken(ctx, tx, sess.ID, first)
	})
	if err != nil {
		return opErr("create session", err)
	}
	return nil
}

func insertToken(ctx context.Context, q querier, sessionID string, t auth.RefreshToken) error {
	_, err := q.Exec(ctx, `INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		t.Hash, sessionID, utc(t.CreatedAt), utc(t.ExpiresAt))
	return err
}

// RotateRefreshToken spends the token whose hash is oldHash and stores next
// in its family (next.SessionID is ignored), in one transaction. The token is
// spent by a conditional UPDATE, so of concurrent calls with the same oldHash,
// on any number of instances, exactly one succeeds. It returns:
//   - the session and nil on success;
//   - auth.ErrNotFound when there is no such token, the token is expired
//     (and unspent) or its session is expired;
//   - auth.ErrTokenRevoked when the session is revoked;
//   - the session and auth.ErrTokenReused when the token was already spent,
//     whether or not it has since expired: a replayed token is a theft signal.
//
// On any error nothing is written.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, next auth.RefreshToken, now time.Time) (*auth.Session, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if next.ExpiresAt.IsZero() || len(next.Hash) == 0 {
		return nil, errors.New("postgres: rotate refresh token: next needs ExpiresAt and a hash")
	}
	var (
		sess   *auth.Session
		reused bool
	)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var sid string
		err := tx.QueryRow(ctx, `UPDATE refresh_tokens SET used_at = $2
			WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING session_id`,
			oldHash, utc(now)).Scan(&sid)
		if errors.Is(err, pgx.ErrNoRows) {
			// Absent, expired or already spent: tell which.
			var used *time.Time
			err := tx.QueryRow(ctx, `SELECT session_id, used_at FROM refresh_tokens WHERE hash = $1`,
				oldHash).Scan(&sid, &used)
			if errors.Is(err, pgx.ErrNoRows) || (err == nil && used == nil) {
				return auth.ErrNotFound
			}
			if err != nil {
				return err
			}
			if sess, err = sessionByID(ctx, tx, sid, ""); err != nil {
				return err
			}
			reused = true
			return nil // nothing was written
		}
		if err != nil {
			return err
		}
		// FOR SHARE: a concurrent revocation waits for this rotation, or
		// this rotation sees it.
		if sess, err = sessionByID(ctx, tx, sid, " FOR SHARE"); err != nil {
			return err
		}
		if !sess.RevokedAt.IsZero() {
			return auth.ErrTokenRevoked
		}
		if !utc(now).Before(sess.ExpiresAt) {
			return auth.ErrNotFound
		}
		return insertToken(ctx, tx, sid, next)
	})
	if err != nil {
		return nil, opErr("rotate refresh token", err)
	}
	if reused {
		return sess, fmt.Errorf("postgres: rotate refresh token: session %s: %w", sess.ID, auth.ErrTokenReused)
	}
	return sess, nil
}

// SessionByID returns the session, revoked or expired ones included, or an
// error wrapping auth.ErrNotFound.
func (s *Store) SessionByID(ctx context.Context, id string) (*auth.Session, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	sess, err := sessionByID(ctx, s.pool, id, "")
	if err != nil {
		return nil, opErr("session by id", err)
	}
	return sess, nil
}

// sessionByID reads a session; lock is "" or a locking clause.
func sessionByID(ctx context.Context, q querier, id, lock string) (*auth.Session, error) {
	var (
		sess    auth.Session
		revoked *time.Time
	)
	err := q.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`+lock, id).
		Scan(&sess.ID, &sess.UserID, &sess.AMR, &sess.CreatedAt, &sess.ExpiresAt, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, auth.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	sess.CreatedAt, sess.ExpiresAt, sess.RevokedAt = sess.CreatedAt.UTC(), sess.ExpiresAt.UTC(), fromNull(revoked)
	return &sess, nil
}

// RevokeSession sets the session's RevokedAt to now unless it is already
// revoked. An unknown session is not an error.
func (s *Store) RevokeSession(ctx context.Context, id string, now time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`,
		id, utc(now)); err != nil {
		return opErr("revoke session", err)
	}
	return nil
}

// RevokedSessionsSince lists the sessions revoked at or after t (ID, UserID
// and RevokedAt set), oldest first.
func (s *Store) RevokedSessionsSince(ctx context.Context, t time.Time) ([]auth.Session, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, user_id, revoked_at FROM sessions
		WHERE revoked_at IS NOT NULL AND revoked_at >= $1 ORDER BY revoked_at`, utc(t))
	if err != nil {
		return nil, opErr("revoked sessions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.Session, error) {
		var sess auth.Session
		err := r.Scan(&sess.ID, &sess.UserID, &sess.RevokedAt)
		sess.RevokedAt = sess.RevokedAt.UTC()
		return sess, err
	})
	if err != nil {
		return nil, opErr("revoked sessions", err)
	}
	return out, nil
}

// DeleteExpiredSessions deletes at most limit sessions that expired before
// t; their refresh tokens go with them (ON DELETE CASCADE).
func (s *Store) DeleteExpiredSessions(ctx context.Context, t time.Time, limit int) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id IN
		(SELECT id FROM sessions WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, utc(t), limit)
	if err != nil {
		return 0, opErr("delete expired sessions", err)
	}
	return tag.RowsAffected(), nil
}

// RevokeUserSessions revokes every live (unrevoked, unexpired at now) session
// of the user whose ID is not in keep, and returns the revoked IDs, sorted.
// The same statement moves the user's device generation on.
func (s *Store) RevokeUserSessions(ctx context.Context, userID string, now time.Time, keep ...string) ([]string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// keep is never NULL: id <> ALL(NULL) matches nothing.
	rows, err := s.pool.Query(ctx, `WITH devices AS (
			UPDATE users SET device_generation = device_generation + 1 WHERE id = $1)
		UPDATE sessions SET revoked_at = $2
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND id <> ALL($3)
		RETURNING id`, userID, utc(now), nonNil(keep))
	if err != nil {
		return nil, opErr("revoke user sessions", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, opErr("revoke user sessions", err)
	}
	slices.Sort(ids)
	return ids, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
