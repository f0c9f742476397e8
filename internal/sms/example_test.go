package sms_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/sms"
)

// A Twilio sender and one MFA code. Close releases idle connections at
// shutdown.
func ExampleNewTwilio() {
	tw, err := sms.NewTwilio(sms.TwilioParams{
		AccountSID: "AC00000000000000000000000000000001",
		AuthToken:  "…",
		From:       "+15557654321",
	}, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err != nil {
		panic(err)
	}
	defer tw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tw.Deliver(ctx, auth.Message{
		Channel:  auth.ChannelSMS,
		To:       "+15551234567",
		Template: auth.TemplateMFACode,
		Data:     map[string]string{"code": "493817"},
	})
}
