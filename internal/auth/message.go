package auth

import (
	"context"
	"errors"
	"time"
)

// Channel is how a message reaches its recipient.
type Channel string

// The channels the Courier delivers on.
const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
)

// Templates of the messages authd sends. Each names an embedded template
// (text and HTML parts for email, one text for SMS).
const (
	TemplateWelcome         = "welcome"
	TemplateVerifyEmail     = "verify_email"
	TemplateResetPassword   = "reset_password"
	TemplatePasswordChanged = "password_changed"
	TemplateMFACode         = "mfa_code"
)

// Message is one notification for the Courier: to whom, on which channel,
// from which template with which data. Data may hold secrets (a link with a
// token, a code): it is rendered into the message and never logged.
type Message struct {
	Channel  Channel
	To       string // an email address, or an E.164 phone number
	Template string
	Data     map[string]string
	// IdempotencyKey names the message once: queueing the same key twice
	// delivers it once, and it is the outbox row's key.
	IdempotencyKey string
}

// ErrUndeliverable: a provider refused a message for good (an invalid
// address, a permanent SMTP 5xx, a 4xx from an SMS API). A Sender's error
// that wraps it is not retried; any other error is.
var ErrUndeliverable = errors.New("message undeliverable")

// Sender delivers one message to a provider and returns when the provider
// has accepted it or refused it, or ctx ends. It is called off the request
// path, under a deadline (AUTHD_NOTIFY_TIMEOUT), and must honour ctx.
type Sender interface {
	Deliver(ctx context.Context, m Message) error
}

// OutboxMessage is a Message kept in the durable outbox until a provider
// has accepted it.
type OutboxMessage struct {
	ID        string
	Message   Message
	Attempts  int
	CreatedAt time.Time
}
