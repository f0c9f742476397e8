package mail_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/mail"
)

// A sender for a submission server with STARTTLS and a password, and one
// verification email. The caller builds the link from AUTHD_PUBLIC_URL.
func ExampleNewSender() {
	s, err := mail.NewSender(mail.Params{
		URL:  "smtp://apikey:s3cret%40pw@smtp.example.com:587",
		From: "Example <no-reply@example.com>",
	}, time.Now, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.Deliver(ctx, auth.Message{
		Channel:        auth.ChannelEmail,
		To:             "bob@example.org",
		Template:       auth.TemplateVerifyEmail,
		Data:           map[string]string{"link": "https://auth.example.com/verify?token=…"},
		IdempotencyKey: "verify_email:user-1:1",
	})
	switch {
	case errors.Is(err, auth.ErrUndeliverable):
		// Drop it: no retry can help.
	case err != nil:
		// Retry later.
	}
}
