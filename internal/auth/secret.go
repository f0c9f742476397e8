package auth

import "log/slog"

// Password and Token hold secrets that arrive in requests. They print
// as REDACTED through slog and fmt so that logging a request struct by
// mistake leaks nothing.
type (
	Password string
	Token    string
)

const redacted = "REDACTED"

// LogValue implements slog.LogValuer.
func (Password) LogValue() slog.Value { return slog.StringValue(redacted) }

// LogValue implements slog.LogValuer.
func (Token) LogValue() slog.Value { return slog.StringValue(redacted) }

// String implements fmt.Stringer.
func (Password) String() string { return redacted }

// String implements fmt.Stringer.
func (Token) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (Password) GoString() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (Token) GoString() string { return redacted }
