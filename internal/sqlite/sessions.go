package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/authd/authd/internal/auth"
)

const sessionColumns = `id, user_id, amr, created_at, expires_at, revoked_at`

// CreateSession stores sess and first, the first refresh token of its
// family, in one transaction; first.SessionID is taken from sess.ID. A zero
// sess.CreatedAt is set from the store's clock, a zero first.CreatedAt to
// sess.CreatedAt. It returns an error wrapping auth.ErrNotFound when
// sess.UserID names no account.
func (s *Store) CreateSession(ctx context.Context, sess *auth.Session, first auth.RefreshToken) error {
	if sess.ExpiresAt.IsZero() || first.ExpiresAt.IsZero() || len(first.Hash) == 0 {
		return errors.New("sqlite: create session: ExpiresAt and the token hash are required")
	}
	if sess.CreatedAt.IsZero() {
		sess.CreatedAt = utc(s.now())
	}
	if first.CreatedAt.IsZero() {
		first.CreatedAt = sess.CreatedAt
	}
	amr, err := json.Marshal(nonNil(sess.AMR))
	if err != nil {
		return fmt.Errorf("sqlite: create session: %w", err)
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			sess.ID, sess.UserID, string(amr), encTime(sess.CreatedAt), encTime(sess.ExpiresAt), encNullTime(sess.RevokedAt))
		if constraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, "") {
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
	_, err := q.ExecContext(ctx, `INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		t.Hash, sessionID, encTime(t.CreatedAt), encTime(t.ExpiresAt))
	return err
}

// RotateRefreshToken spends the token whose hash is oldHash and stores next
// in its family (next.SessionID is ignored), in one write transaction. Of
// concurrent calls with the same oldHash exactly one succeeds. It returns:
//   - the session and nil on success;
//   - auth.ErrNotFound when there is no such token, the token is expired
//     (and unspent) or its session is expired;
//   - auth.ErrTokenRevoked when the session is revoked;
//   - the session and auth.ErrTokenReused when the token was already spent,
//     whether or not it has since expired: a replayed token is a theft signal.
//
// On any error nothing is written.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, next auth.RefreshToken, now time.Time) (*auth.Session, error) {
	if next.ExpiresAt.IsZero() || len(next.Hash) == 0 {
		return nil, errors.New("sqlite: rotate refresh token: next needs ExpiresAt and a hash")
	}
	var (
		sess   *auth.Session
		reused bool
	)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		ts := encTime(now)
		var sid string
		err := tx.QueryRowContext(ctx, `UPDATE refresh_tokens SET used_at = ?
			WHERE hash = ? AND used_at IS NULL AND expires_at > ? RETURNING session_id`,
			ts, oldHash, ts).Scan(&sid)
		if errors.Is(err, sql.ErrNoRows) {
			// Absent, expired or already spent: tell which.
			var used sql.NullString
			err := tx.QueryRowContext(ctx, `SELECT session_id, used_at FROM refresh_tokens WHERE hash = ?`,
				oldHash).Scan(&sid, &used)
			if errors.Is(err, sql.ErrNoRows) || (err == nil && !used.Valid) {
				return auth.ErrNotFound
			}
			if err != nil {
				return err
			}
			if sess, err = sessionByID(ctx, tx, sid); err != nil {
				return err
			}
			reused = true
			return nil // nothing was written
		}
		if err != nil {
			return err
		}
		if sess, err = sessionByID(ctx, tx, sid); err != nil {
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
		return sess, fmt.Errorf("sqlite: rotate refresh token: session %s: %w", sess.ID, auth.ErrTokenReused)
	}
	return sess, nil
}

// SessionByID returns the session, revoked or expired ones included, or an
// error wrapping auth.ErrNotFound.
func (s *Store) SessionByID(ctx context.Context, id string) (*auth.Session, error) {
	sess, err := sessionByID(ctx, s.read, id)
	if err != nil {
		return nil, opErr("session by id", err)
	}
	return sess, nil
}

func sessionByID(ctx context.Context, q querier, id string) (*auth.Session, error) {
	var (
		sess                  auth.Session
		amr, created, expires string
		revoked               sql.NullString
	)
	err := q.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id).
		Scan(&sess.ID, &sess.UserID, &amr, &created, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, auth.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(amr), &sess.AMR); err != nil {
		return nil, fmt.Errorf("session %s: amr: %w", id, err)
	}
	if sess.CreatedAt, err = decTime(created); err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	if sess.ExpiresAt, err = decTime(expires); err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	if sess.RevokedAt, err = decNullTime(revoked); err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	return &sess, nil
}

// RevokeSession sets the session's RevokedAt to now unless it is already
// revoked. An unknown session is not an error.
func (s *Store) RevokeSession(ctx context.Context, id string, now time.Time) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`,
			encTime(now), id)
		return err
	})
	if err != nil {
		return opErr("revoke session", err)
	}
	return nil
}

// RevokedSessionsSince lists the sessions revoked at or after t (ID, UserID
// and RevokedAt set), oldest first.
func (s *Store) RevokedSessionsSince(ctx context.Context, t time.Time) ([]auth.Session, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, user_id, revoked_at FROM sessions
		WHERE revoked_at IS NOT NULL AND revoked_at >= ? ORDER BY revoked_at`, encTime(t))
	if err != nil {
		return nil, opErr("revoked sessions", err)
	}
	defer rows.Close()
	var out []auth.Session
	for rows.Next() {
		var (
			sess    auth.Session
			revoked string
		)
		if err := rows.Scan(&sess.ID, &sess.UserID, &revoked); err != nil {
			return nil, opErr("revoked sessions", err)
		}
		if sess.RevokedAt, err = decTime(revoked); err != nil {
			return nil, opErr("revoked sessions", err)
		}
		out = append(out, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, opErr("revoked sessions", err)
	}
	return out, nil
}

// DeleteExpiredSessions deletes at most limit sessions that expired before
// t; their refresh tokens go with them (ON DELETE CASCADE).
func (s *Store) DeleteExpiredSessions(ctx context.Context, t time.Time, limit int) (int64, error) {
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id IN
			(SELECT id FROM sessions WHERE expires_at < ? LIMIT ?)`, encTime(t), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, opErr("delete expired sessions", err)
	}
	return n, nil
}

// RevokeUserSessions revokes every live (unrevoked, unexpired at now) session
// of the user whose ID is not in keep, and returns the revoked IDs, sorted.
// It also moves the user's device generation on, in the same transaction.
func (s *Store) RevokeUserSessions(ctx context.Context, userID string, now time.Time, keep ...string) ([]string, error) {
	keepJSON, err := json.Marshal(nonNil(keep)) // never "null": NOT IN (NULL) matches nothing
	if err != nil {
		return nil, fmt.Errorf("sqlite: revoke user sessions: %w", err)
	}
	var ids []string
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		ts := encTime(now)
		if _, err := tx.ExecContext(ctx, `UPDATE users SET device_generation = device_generation + 1 WHERE id = ?`, userID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE sessions SET revoked_at = ?
			WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
			  AND id NOT IN (SELECT value FROM json_each(?))
			RETURNING id`, ts, userID, ts, string(keepJSON))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
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
