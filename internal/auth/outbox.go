package auth

import (
	"context"
	"time"
)

// Tx is one transaction of a store: the account changes that must commit
// together with the messages they cause (a registration and its
// verification email, a reset token and its email). Everything done through
// a Tx commits or rolls back as one; a Tx is used only inside the function
// given to InTx, from one goroutine. Other packages add the changes they need.
type Tx interface {
	// CreateUser is UserStore.CreateUser inside the transaction.
	CreateUser(ctx context.Context, u *User) error
	// Enqueue adds m to the outbox, due at now. A message whose
	// IdempotencyKey is already in the outbox (sent or not) is not added
	// again, and that is not an error: queueing twice delivers once.
	Enqueue(ctx context.Context, m Message, now time.Time) error
}

// Transactor runs account changes and queued messages in one transaction.
// Implementations: sqlite.Store (on its writer connection), postgres.Store.
type Transactor interface {
	// InTx runs fn in a transaction and commits it if fn returns nil; it
	// rolls back and returns fn's error otherwise. Errors of the Tx's
	// methods keep their domain errors (ErrEmailTaken, ErrUnavailable).
	InTx(ctx context.Context, fn func(tx Tx) error) error
}

// OutboxStore is the durable outbox the Courier drains. Several instances
// may share one: a message is claimed by one owner at a time, for a lease;
// an owner that dies leaves its claim to expire and the message to be
// claimed again. Rows are marked sent only after a provider accepted them.
type OutboxStore interface {
	Transactor
	// ClaimMessages leases up to limit due messages (not sent, not given
	// up, next attempt at or before now, no live lease) to owner until
	// now+lease, picking the oldest due (the slice is in no order), and counts the attempt: the returned
	// Attempts is the number of this attempt (1 for the first). Of two
	// concurrent claimers, each gets different rows.
	ClaimMessages(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]OutboxMessage, error)
	// MarkSent records that a provider accepted the message and forgets its
	// data (links and codes are secrets). It returns ErrNotFound when owner
	// no longer holds the message's lease.
	MarkSent(ctx context.Context, id, owner string, now time.Time) error
	// RetryLater gives the message back for another attempt at next, with
	// the error class of the failed attempt. ErrNotFound as for MarkSent.
	RetryLater(ctx context.Context, id, owner string, next time.Time, lastErr string) error
	// GiveUp marks the message failed for good, forgets its data, and keeps
	// the error class. ErrNotFound as for MarkSent.
	GiveUp(ctx context.Context, id, owner string, now time.Time, lastErr string) error
	// PendingMessages counts the messages neither sent nor given up.
	PendingMessages(ctx context.Context) (int64, error)
	// DeleteFinishedMessages deletes at most limit messages sent or given
	// up before t and returns how many it deleted. Their idempotency keys
	// are forgotten with them.
	DeleteFinishedMessages(ctx context.Context, t time.Time, limit int) (int64, error)
}
