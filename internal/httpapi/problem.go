package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/password"
)

// Problem is an RFC 9457 problem details body with our stable code.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Code   string       `json:"code"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid field of a request body.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Codes, as fixed in API.md.
const (
	codeValidation   = "validation_failed"
	codeMalformed    = "malformed_request"
	codeInvalidCreds = "invalid_credentials"
	codeUnauthorized = "unauthorized"
	codeTokenRevoked = "token_revoked"
	codeForbidden    = "forbidden"
	codeNotFound     = "not_found"
	codeEmailTaken   = "email_taken"
	codeTooLarge     = "payload_too_large"
	codeMediaType    = "unsupported_media_type"
	codeRateLimited  = "rate_limited"
	codeOverloaded   = "overloaded"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
	codeMethod       = "method_not_allowed"
	// codeHeaderTooLarge is authd's own, like codeMethod: the request's
	// head is over MaxHeaderBytes.
	codeHeaderTooLarge = "request_header_too_large"
)

var titles = map[string]string{
	codeValidation:   "The request body has invalid fields.",
	codeMalformed:    "The request could not be parsed.",
	codeInvalidCreds: "Invalid credentials.",
	codeUnauthorized: "Authentication required.",
	codeTokenRevoked: "The token has been revoked.",
	codeForbidden:    "Forbidden.",
	codeNotFound:     "Not found.",
	codeEmailTaken:   "This email is already registered.",
	codeTooLarge:     "The request body is too large.",
	codeMediaType:    "The request body must be application/json.",
	codeRateLimited:  "Too many requests.",
	codeOverloaded:   "The service is overloaded; retry later.",
	codeUnavailable:  "A dependency is unavailable; retry later.",
	codeInternal:     "Internal server error.",
	codeMethod:       "Method not allowed.",

	codeHeaderTooLarge: "The request headers are too large.",
}

// problemError is an error that already knows its HTTP answer (decode errors,
// validation).
type problemError struct {
	status int
	code   string
	detail string
	fields []FieldError
}

func (e *problemError) Error() string { return e.code + ": " + e.detail }

func newProblem(status int, code, detail string) *problemError {
	return &problemError{status: status, code: code, detail: detail}
}

// ValidationError is returned by request validation with every bad field.
func validationError(fields ...FieldError) error {
	return &problemError{status: http.StatusBadRequest, code: codeValidation, detail: "one or more fields are invalid", fields: fields}
}

// retryAfterer is implemented by errors that know when to come back
// (the hash pool's overload error, the throttle's).
type retryAfterer interface{ RetryAfter() time.Duration }

// writeError is the one place that maps an error to a status and code. An
// unknown error becomes 500 internal and is logged once with the request id.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var (
		pe  *problemError
		ppe *password.PolicyError
	)
	switch {
	case errors.As(err, &pe):
		writeProblem(w, pe.status, pe.code, pe.detail, pe.fields...)
	case errors.As(err, &ppe):
		writeProblem(w, http.StatusBadRequest, codeValidation, "one or more fields are invalid", FieldError{Field: "password", Message: ppe.Error()})
	case errors.Is(err, auth.ErrInvalidCredentials):
		writeProblem(w, http.StatusUnauthorized, codeInvalidCreds, "The email or password is incorrect.")
	case errors.Is(err, auth.ErrTokenRevoked):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="token revoked"`)
		writeProblem(w, http.StatusUnauthorized, codeTokenRevoked, "")
	case errors.Is(err, auth.ErrUnauthorized), errors.Is(err, auth.ErrTokenReused):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, codeUnauthorized, "The access token is missing, invalid or expired.")
	case errors.Is(err, auth.ErrEmailTaken):
		writeProblem(w, http.StatusConflict, codeEmailTaken, "")
	case errors.Is(err, auth.ErrNotFound):
		writeProblem(w, http.StatusNotFound, codeNotFound, "")
	case errors.Is(err, auth.ErrRateLimited):
		// The per-account throttle refused, not the client's bucket: the
		// bucket's RateLimit-* headers (set on the way in, with quota left)
		// would contradict Retry-After. Only Retry-After describes this limit.
		h := w.Header()
		h.Del("RateLimit-Limit")
		h.Del("RateLimit-Remaining")
		h.Del("RateLimit-Reset")
		setRetryAfter(w, err, time.Second)
		writeProblem(w, http.StatusTooManyRequests, codeRateLimited, "")
	case errors.Is(err, auth.ErrOverloaded):
		setRetryAfter(w, err, time.Second)
		writeOverloaded(w)
	case errors.Is(err, auth.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), pastDeadline(r):
		// A dependency failed or did not answer within the request deadline
		// (WithDeadline).
		w.Header().Set("Retry-After", "1")
		logger.WarnContext(r.Context(), "dependency unavailable", "request_id", requestID(r.Context()), "err", err)
		writeProblem(w, http.StatusServiceUnavailable, codeUnavailable, "")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer. 499 in the log.
		w.WriteHeader(499)
	default:
		logger.ErrorContext(r.Context(), "internal error", "request_id", requestID(r.Context()), "err", err)
		writeProblem(w, http.StatusInternalServerError, codeInternal, "")
	}
}

// setRetryAfter sets Retry-After in whole seconds, at least 1, from err when
// it knows better than def.
func setRetryAfter(w http.ResponseWriter, err error, def time.Duration) {
	d := def
	var ra retryAfterer
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		d = ra.RetryAfter()
	}
	w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(d)))
}

func ceilSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// problemType is the type URI of a problem code.
func problemType(code string) string { return "https://authd.dev/problems/" + code }

func writeProblem(w http.ResponseWriter, status int, code, detail string, fields ...FieldError) {
	p := Problem{
		Type:   problemType(code),
		Title:  titles[code],
		Status: status,
		Code:   code,
		Detail: detail,
		Errors: fields,
	}
	encode(w, status, "application/problem+json", p)
}
