// Package notify sends what authd tells its users: welcome and verification
// emails now, MFA codes by email and SMS later. This is the seam the Courier
// (asynchronous delivery with bounded concurrency, timeouts, retries and an
// outbox) plugs into; Log is the development default of API.md: messages go
// to the log instead of a provider.
package notify

import (
	"context"
	"log/slog"

	"github.com/authd/authd/internal/auth"
)

// Log writes each message to the log instead of delivering it. It never
// blocks on I/O beyond the log handler and is safe for concurrent use.
type Log struct {
	logger    *slog.Logger
	publicURL string
}

// NewLog returns a Log notifier. publicURL is the configured base of every
// link (AUTHD_PUBLIC_URL), never a request's Host header.
func NewLog(logger *slog.Logger, publicURL string) *Log {
	return &Log{logger: logger.With("component", "notify"), publicURL: publicURL}
}

// Welcome logs the welcome email that a provider would deliver.
func (l *Log) Welcome(ctx context.Context, u *auth.User) error {
	l.logger.InfoContext(ctx, "email (log delivery)",
		"kind", "welcome", "user_id", u.ID, "to", u.Email,
		"subject", "Welcome to authd", "link", l.publicURL+"/")
	return nil
}
