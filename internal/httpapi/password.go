package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/authd/authd/internal/account"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/password"
)

// Passwords is password forgot, reset and change (account.Passwords).
type Passwords interface {
	// Admit fails fast, reserving nothing, with an error matching
	// auth.ErrOverloaded when the hash pool would refuse a hash now.
	Admit() error
	Forgot(email string)
	Reset(ctx context.Context, tok auth.Token, pw auth.Password, clientKey string) error
	Change(ctx context.Context, req account.ChangeRequest) error
}

type forgotRequest struct {
	Email string `json:"email"`
}

// Validate checks only the form of the address: whether an account has it
// is never told.
func (r forgotRequest) Validate() []FieldError {
	if err := auth.ValidateEmail(auth.NormalizeEmail(r.Email)); err != nil {
		return []FieldError{{Field: "email", Message: "email " + err.Error()}}
	}
	return nil
}

// forgotResponse is the one answer to every well-formed forgot request.
type forgotResponse struct {
	Status string `json:"status"`
}

// handleForgot answers 202 and the same body whether or not the address
// has an account, and in the same time: the account is looked up off the
// request path (Passwords.Forgot), so the answer does not wait for it.
func handleForgot(logger *slog.Logger, passwords Passwords) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[forgotRequest](w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		passwords.Forgot(auth.NormalizeEmail(req.Email))
		encodeJSON(w, http.StatusAccepted, forgotResponse{Status: "accepted"})
	})
}

type resetRequest struct {
	Token    auth.Token    `json:"token"`
	Password auth.Password `json:"password"`
}

// Validate rejects what cannot be a token or a password at all; the policy
// needs the account's email and is the service's.
func (r resetRequest) Validate() []FieldError {
	var fe []FieldError
	if r.Token == "" || len(r.Token) > 512 {
		fe = append(fe, FieldError{Field: "token", Message: "token is required and at most 512 bytes"})
	}
	if r.Password == "" || len(r.Password) > maxPasswordBytes {
		fe = append(fe, FieldError{Field: "password", Message: "password is required and at most 1024 bytes"})
	}
	return fe
}

func handleReset(logger *slog.Logger, passwords Passwords, clientKey func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[resetRequest](w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		err = passwords.Reset(r.Context(), req.Token, req.Password, clientKey(r))
		if errors.Is(err, account.ErrInvalidResetToken) {
			err = validationError(FieldError{Field: "token", Message: "token is invalid, expired or already used"})
		}
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		writeNoContent(w)
	})
}

type changeRequest struct {
	CurrentPassword auth.Password `json:"current_password"`
	NewPassword     auth.Password `json:"new_password"`
}

func (r changeRequest) Validate() []FieldError {
	var fe []FieldError
	if r.CurrentPassword == "" || len(r.CurrentPassword) > maxPasswordBytes {
		fe = append(fe, FieldError{Field: "current_password", Message: "current_password is required and at most 1024 bytes"})
	}
	if r.NewPassword == "" {
		fe = append(fe, FieldError{Field: "new_password", Message: "new_password is required"})
	}
	return fe
}

// handleChange changes the caller's password. A wrong current password is
// an invalid field (400), not a 401: the bearer token is fine, and a client
// must not take the answer for an expired session.
func handleChange(logger *slog.Logger, passwords Passwords, clientKey func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[changeRequest](w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		c := claimsFrom(r.Context())
		err = passwords.Change(r.Context(), account.ChangeRequest{
			UserID: c.Subject, SessionID: c.SID, Current: req.CurrentPassword, New: req.NewPassword, ClientKey: clientKey(r),
		})
		var pe *password.PolicyError
		switch {
		case errors.Is(err, auth.ErrInvalidCredentials):
			err = validationError(FieldError{Field: "current_password", Message: "current_password is incorrect"})
		case errors.As(err, &pe):
			err = validationError(FieldError{Field: "new_password", Message: pe.Error()})
		}
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		writeNoContent(w)
	})
}
