package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// admit refuses a request with 503 overloaded before anything else is done
// for it when check (the account service's admission to the hash pool) says
// that the pool would refuse its hash now. It runs before the per-client
// limiter and before the body is read: under overload refusals are most of
// the traffic, and each must cost the server as little as a bare route.
// check reserves nothing; the handler's own hash may still be refused.
func admit(logger *slog.Logger, check func() error) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := check(); err != nil {
				writeError(w, r, logger, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// overloadedBody is the body of every 503 overloaded: it never varies, so it
// is encoded once instead of for each of the thousands of refusals a second
// that an overloaded server sends.
var overloadedBody = problemBody(http.StatusServiceUnavailable, codeOverloaded)

// problemBody encodes the problem writeProblem would write for status and
// code without detail.
func problemBody(status int, code string) []byte {
	var b bytes.Buffer
	// Strings and an int: encoding cannot fail.
	_ = json.NewEncoder(&b).Encode(Problem{Type: problemType(code), Title: titles[code], Status: status, Code: code})
	return b.Bytes()
}

// Header values shared by every precomputed answer. Each slice is full
// (len == cap), so a later Header().Add copies it instead of writing into it.
var (
	problemContentType = []string{"application/problem+json"}
	noStore            = []string{"no-store"}
	nosniff            = []string{"nosniff"}
)

// writeOverloaded writes the 503 overloaded answer; the caller has set
// Retry-After. It sends what writeProblem would, without encoding anything.
func writeOverloaded(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = problemContentType
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(http.StatusServiceUnavailable)
	// An error here means the client is gone; there is nobody to tell.
	_, _ = w.Write(overloadedBody)
}

// refusalLog stands in for the request lines of 503 answers at info level:
// one line at most every interval, counting the 503s since the last one. An
// overloaded server refuses thousands of requests a second, and a line for
// each would cost it a good part of what the refusal itself costs and fill
// the log with identical lines; each one's own line is at debug level, and
// authd_http_requests_total counts them by route. The first 503 is reported
// at once. Safe for concurrent use.
type refusalLog struct {
	logger *slog.Logger
	every  time.Duration
	n      atomic.Int64 // 503s not yet reported
	last   atomic.Int64 // unix nanoseconds of the last report; 0: none yet
}

// add counts one 503 answered at now and reports the count if the last
// report is at least every old.
func (l *refusalLog) add(ctx context.Context, now time.Time) {
	l.n.Add(1)
	t := now.UnixNano()
	last := l.last.Load()
	if last != 0 && t-last < int64(l.every) {
		return
	}
	if !l.last.CompareAndSwap(last, t) {
		return // another request reports
	}
	attrs := []slog.Attr{slog.Int("status", http.StatusServiceUnavailable), slog.Int64("count", l.n.Swap(0))}
	if last != 0 {
		attrs = append(attrs, slog.Duration("since", time.Duration(t-last)))
	}
	l.logger.LogAttrs(ctx, slog.LevelInfo, "requests refused", attrs...)
}
