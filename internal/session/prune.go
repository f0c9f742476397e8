package session

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// pruneBatch bounds one delete so that a backlog never holds the database
// (SQLite's single writer above all) for long.
const pruneBatch = 1000

// Prune deletes every session (and its refresh tokens) that expired before
// now, in batches, and returns how many it deleted. It stops early when ctx
// ends.
func (m *Manager) Prune(ctx context.Context) (int64, error) {
	now := m.now()
	var total int64
	for {
		n, err := m.sessions.DeleteExpiredSessions(ctx, now, pruneBatch)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// RunPruner calls Prune every interval until ctx ends, then returns nil.
// Several instances may run it against one database: deletes of the same
// rows are harmless. Errors are logged, never fatal: expired sessions are
// dead whether or not their rows are gone.
func (m *Manager) RunPruner(ctx context.Context, every time.Duration, logger *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := m.Prune(ctx)
		if err != nil && ctx.Err() == nil {
			logger.WarnContext(ctx, "prune expired sessions", "deleted", n, "err", err)
			continue
		}
		if n > 0 {
			logger.InfoContext(ctx, "pruned expired sessions", "deleted", n)
		}
	}
}

// RestoreRevocations re-asserts in the state store the sessions revoked
// recently enough that access tokens they issued may still be live. The
// revocation itself is durable in the database (a logout answered 204 stays
// a logout), but the state store that Authenticate reads may be in-process
// memory that a restart emptied, or a Redis that lost data. run calls it at
// start, before serving. It returns how many sessions it re-asserted.
func (m *Manager) RestoreRevocations(ctx context.Context) (int, error) {
	now := m.now()
	ttl := m.revocationTTL()
	revoked, err := m.sessions.RevokedSessionsSince(ctx, now.Add(-ttl))
	if err != nil {
		return 0, fmt.Errorf("session: restore revocations: %w", err)
	}
	n := 0
	for _, s := range revoked {
		left := s.RevokedAt.Add(ttl).Sub(now)
		if left <= 0 {
			continue
		}
		if err := m.state.Set(ctx, sidKey(s.UserID, s.ID), []byte{'1'}, left); err != nil {
			return n, fmt.Errorf("session: restore revocations: %w", err)
		}
		n++
	}
	return n, nil
}
