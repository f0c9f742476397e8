package session

import (
	"context"
	"errors"
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

// DefaultPruneEvery is how often a Pruner prunes when PrunerParams.Every is 0.
const DefaultPruneEvery = time.Hour

// PrunerParams configures a Pruner.
type PrunerParams struct {
	// Every is how often expired sessions are deleted (0: DefaultPruneEvery).
	Every time.Duration
}

// Pruner deletes expired sessions and their refresh tokens from the
// database periodically. Several instances may run one against one
// database: deletes of the same rows are harmless.
type Pruner struct {
	m      *Manager
	every  time.Duration
	logger *slog.Logger
}

// NewPruner returns a Pruner of m's sessions. It returns an error for a nil
// manager or logger or a negative period.
func NewPruner(m *Manager, p PrunerParams, logger *slog.Logger) (*Pruner, error) {
	switch {
	case m == nil || logger == nil:
		return nil, errors.New("session: a pruner needs a manager and a logger")
	case p.Every < 0:
		return nil, fmt.Errorf("session: prune period %v is negative", p.Every)
	case p.Every == 0:
		p.Every = DefaultPruneEvery
	}
	return &Pruner{m: m, every: p.Every, logger: logger}, nil
}

// Run calls Prune every PrunerParams.Every until ctx ends, then returns nil.
// Errors are logged, never fatal: expired sessions are dead whether or not
// their rows are gone.
func (p *Pruner) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := p.m.Prune(ctx)
		if err != nil && ctx.Err() == nil {
			p.logger.WarnContext(ctx, "prune expired sessions", "deleted", n, "err", err)
			continue
		}
		if n > 0 {
			p.logger.InfoContext(ctx, "pruned expired sessions", "deleted", n)
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
