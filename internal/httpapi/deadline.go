package httpapi

import (
	"context"
	"net/http"
	"time"
)

// withDeadline gives every request a deadline d from when its headers were
// read. Every dependency call made with the request's context (database
// statements and pool acquisition, Redis commands, the wait for a hash
// worker) stops at that deadline, and the error it returns is answered 503
// "unavailable" with Retry-After by the one error mapping (writeError): the
// client gets a fast answer it can retry instead of waiting on a dependency
// that has slowed down, and the work for it ends. d must be shorter than the
// server's WriteTimeout, or the answer could not be written.
//
// It bounds only what honours the context; a handler that blocks without
// it is not cut short.
func withDeadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// pastDeadline reports whether the request's own deadline (WithDeadline's)
// has passed: whatever error the work then returned, the answer is 503
// unavailable, never 500.
func pastDeadline(r *http.Request) bool {
	return r.Context().Err() == context.DeadlineExceeded
}
