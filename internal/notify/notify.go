// Package notify sends what authd tells its users: welcome and verification
// emails now, MFA codes by email and SMS later. This is the seam the Courier
// (asynchronous delivery with bounded concurrency, timeouts, retries and an
// outbox) plugs into; Log is the development default of API.md: messages go
// to the log instead of a provider.
package notify

import (
	"context"
	"errors"
	"log/slog"

	"github.com/authd/authd/internal/auth"
)

// Log writes each message to the log instead of delivering it. It never
// blocks on I/O beyond the log handler and is safe for concurrent use.
type Log struct {
	logger    *slog.Logger
	publicURL string
}

// Params configures a notifier.
type Params struct {
	// PublicURL is the configured base of every link (AUTHD_PUBLIC_URL),
	// never a request's Host header.
	PublicURL string
}

// NewLog returns a Log notifier. It returns an error without a public URL
// or a logger.
func NewLog(p Params, logger *slog.Logger) (*Log, error) {
	if p.PublicURL == "" || logger == nil {
		return nil, errors.New("notify: a public URL and a logger are required")
	}
	return &Log{logger: logger.With("component", "notify"), publicURL: p.PublicURL}, nil
}

// Welcome logs the welcome email that a provider would deliver.
func (l *Log) Welcome(ctx context.Context, u *auth.User) error {
	l.logger.InfoContext(ctx, "email (log delivery)",
		"kind", "welcome", "user_id", u.ID, "to", u.Email,
		"subject", "Welcome to authd", "link", l.publicURL+"/")
	return nil
}
