package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/authd/authd/internal/account"
	"github.com/authd/authd/internal/auth"
)

// Emails is email verification (account.Emails).
type Emails interface {
	// Verify spends a verification token; account.ErrInvalidToken for one
	// unknown, used or expired.
	Verify(ctx context.Context, token string) error
	// Resend queues a new verification email for the user (sent false when
	// the address is already verified); past the per-address limit an
	// error matching auth.ErrRateLimited that knows when to come back.
	Resend(ctx context.Context, userID string) (sent bool, err error)
}

// maxVerifyTokenBytes bounds a verification token; ours are 43.
const maxVerifyTokenBytes = 512

type verifyEmailRequest struct {
	Token auth.Token `json:"token"`
}

func (r verifyEmailRequest) Validate() []FieldError {
	if r.Token == "" || len(r.Token) > maxVerifyTokenBytes {
		return []FieldError{{Field: "token", Message: "token is required and at most 512 bytes"}}
	}
	return nil
}

func handleVerifyEmail(logger *slog.Logger, emails Emails) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[verifyEmailRequest](w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if err := emails.Verify(r.Context(), string(req.Token)); err != nil {
			// Unknown, used and expired are one answer: a bad field.
			if errors.Is(err, account.ErrInvalidToken) {
				err = validationError(FieldError{Field: "token", Message: "token is invalid, expired or already used"})
			}
			writeError(w, r, logger, err)
			return
		}
		writeNoContent(w)
	})
}

type resendEmailResponse struct {
	// Queued is false when the address is already verified: nothing is sent.
	Queued bool `json:"queued"`
}

func handleResendEmail(logger *slog.Logger, emails Emails) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent, err := emails.Resend(r.Context(), claimsFrom(r.Context()).Subject)
		if err != nil {
			// A valid token for a deleted account is no longer a credential.
			if errors.Is(err, auth.ErrNotFound) {
				err = auth.ErrUnauthorized
			}
			writeError(w, r, logger, err)
			return
		}
		encodeJSON(w, http.StatusAccepted, resendEmailResponse{Queued: sent})
	})
}
