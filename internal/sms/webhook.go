package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/authd/authd/internal/auth"
)

// WebhookParams configures a Webhook.
type WebhookParams struct {
	// URL receives a POST per message (AUTHD_SMS_WEBHOOK_URL): https, or
	// http to a loopback host.
	URL string
	// Token, if set, is sent as "Authorization: Bearer <Token>"
	// (AUTHD_SMS_WEBHOOK_TOKEN).
	Token string
}

// Webhook delivers SMS by posting {"to": "+E.164", "body": "..."} as JSON
// to an operator's gateway, with an Idempotency-Key header when the
// message has one. A 2xx answer means accepted. It is safe for concurrent
// use; Close releases its idle connections.
type Webhook struct {
	*base
	url   string
	token string
}

var _ auth.Sender = (*Webhook)(nil)

// NewWebhook returns a Webhook for p. It returns an error when the URL is
// missing, not https (except to loopback) or carries credentials, or the
// logger is nil.
func NewWebhook(p WebhookParams, logger *slog.Logger) (*Webhook, error) {
	u, err := checkURL("AUTHD_SMS_WEBHOOK_URL", p.URL)
	if err != nil {
		return nil, err
	}
	b, err := newBase("webhook", logger)
	if err != nil {
		return nil, err
	}
	return &Webhook{base: b, url: u.String(), token: p.Token}, nil
}

type webhookBody struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

// Deliver posts m to the webhook and returns when it answered or ctx
// ended. An error wrapping auth.ErrUndeliverable (a message that cannot be
// rendered, a 4xx other than 401, 403, 408, 429) is not worth retrying;
// any other error is.
func (w *Webhook) Deliver(ctx context.Context, m auth.Message) error {
	return w.deliver(ctx, m, func() error {
		text, err := w.render(m)
		if err != nil {
			return err
		}
		payload, err := json.Marshal(webhookBody{To: m.To, Body: text})
		if err != nil {
			return fmt.Errorf("sms: webhook: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("sms: webhook: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "authd")
		if w.token != "" {
			req.Header.Set("Authorization", "Bearer "+w.token)
		}
		if m.IdempotencyKey != "" {
			req.Header.Set("Idempotency-Key", m.IdempotencyKey)
		}
		status, _, err := w.do(req)
		if err != nil {
			return err
		}
		if status/100 == 2 {
			return nil
		}
		return statusError("webhook", status, "")
	})
}
