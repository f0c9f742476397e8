package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/authd/authd/internal/account"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/device"
	"github.com/authd/authd/internal/session"
)

// Accounts is registration and password login (account.Service).
type Accounts interface {
	// AdmitLogin and AdmitRegister fail fast, reserving nothing, with an
	// error matching auth.ErrOverloaded when the hash pool would refuse
	// the hash of a login or a registration now.
	AdmitLogin() error
	AdmitRegister() error
	Register(ctx context.Context, email string, pw auth.Password) (*auth.User, error)
	Login(ctx context.Context, email string, pw auth.Password, clientKey, deviceToken string) (account.LoginResult, error)
}

type registerRequest struct {
	Email    string        `json:"email"`
	Password auth.Password `json:"password"`
}

// Validate checks the email; the password policy, which needs the email and
// the configured minimum length, is the account service's (its
// *password.PolicyError is a validation error on the password field).
func (r registerRequest) Validate() []FieldError {
	if err := auth.ValidateEmail(auth.NormalizeEmail(r.Email)); err != nil {
		return []FieldError{{Field: "email", Message: "email " + err.Error()}}
	}
	return nil
}

type registerResponse struct {
	UserID        string `json:"user_id"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
}

func handleRegister(logger *slog.Logger, accounts Accounts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[registerRequest](w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		u, err := accounts.Register(r.Context(), auth.NormalizeEmail(req.Email), req.Password)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		encodeJSON(w, http.StatusCreated, registerResponse{UserID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified})
	})
}

// maxPasswordBytes bounds what login will hash; the policy allows no longer.
const maxPasswordBytes = 1024

type loginRequest struct {
	Email    string        `json:"email"`
	Password auth.Password `json:"password"`
	// DeviceToken is the device_token of an earlier login from this client.
	DeviceToken auth.Token `json:"device_token"`
}

// loginResponse is the token pair and the client's device token.
type loginResponse struct {
	session.Pair
	DeviceToken auth.Token `json:"device_token"`
}

// Validate only rejects what cannot be a credential at all; anything else
// must take the same path as a wrong password.
func (r loginRequest) Validate() []FieldError {
	var fe []FieldError
	if e := auth.NormalizeEmail(r.Email); e == "" || len(e) > auth.MaxEmailBytes {
		fe = append(fe, FieldError{Field: "email", Message: "email is required and at most 254 bytes"})
	}
	if r.Password == "" || len(r.Password) > maxPasswordBytes {
		fe = append(fe, FieldError{Field: "password", Message: "password is required and at most 1024 bytes"})
	}
	if len(r.DeviceToken) > device.MaxLen {
		fe = append(fe, FieldError{Field: "device_token", Message: "device_token is at most 512 bytes"})
	}
	return fe
}

func handleLogin(logger *slog.Logger, accounts Accounts, clientKey func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[loginRequest](w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		res, err := accounts.Login(r.Context(), auth.NormalizeEmail(req.Email), req.Password, clientKey(r), string(req.DeviceToken))
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		encodeJSON(w, http.StatusOK, loginResponse{Pair: res.Pair, DeviceToken: auth.Token(res.DeviceToken)})
	})
}
