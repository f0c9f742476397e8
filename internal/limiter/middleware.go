package limiter

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// RejectFunc writes the response for a request the limiter refused. When it
// is called the RateLimit-* and Retry-After headers are already set; it
// writes the status (429) and body, e.g. the API's problem+json.
type RejectFunc func(w http.ResponseWriter, r *http.Request, d Decision)

// Middleware limits each request by the bucket of keyOf(r) before passing it
// on, so that it runs before any hashing or database work. Every response it
// limits carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
// (SetHeaders); a refused request also gets Retry-After and is answered by
// reject instead of the next handler. A nil reject writes a minimal RFC 9457
// 429 rate_limited body. The returned middleware is safe for concurrent use.
func Middleware(l Limiter, keyOf func(*http.Request) netip.Prefix, reject RejectFunc) func(http.Handler) http.Handler {
	if reject == nil {
		reject = writeRateLimited
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := l.Allow(r.Context(), keyOf(r))
			SetHeaders(w.Header(), d)
			if !d.Allowed {
				reject(w, r, d)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Header names in canonical form, so they are set without re-canonicalising.
const (
	headerLimit      = "Ratelimit-Limit"
	headerRemaining  = "Ratelimit-Remaining"
	headerReset      = "Ratelimit-Reset"
	headerRetryAfter = "Retry-After"
)

// SetHeaders sets the IETF draft RateLimit header fields for d on h:
// RateLimit-Limit (the burst), RateLimit-Remaining, and RateLimit-Reset in
// whole delta-seconds rounded up (≥ 0). When d was refused it also sets
// Retry-After in whole seconds, at least 1 and never earlier than the reset.
// Handlers outside the middleware that answer 429 (the account throttle) can
// use it too.
func SetHeaders(h http.Header, d Decision) {
	reset := ceilSeconds(d.Reset)
	n := 3
	if !d.Allowed {
		n = 4
	}
	vals := make([]string, n) // one allocation for all the header values
	vals[0] = strconv.Itoa(d.Limit)
	vals[1] = strconv.Itoa(max(d.Remaining, 0))
	vals[2] = strconv.FormatInt(reset, 10)
	h[headerLimit] = vals[0:1:1]
	h[headerRemaining] = vals[1:2:2]
	h[headerReset] = vals[2:3:3]
	if !d.Allowed {
		vals[3] = strconv.FormatInt(RetryAfterSeconds(d), 10)
		h[headerRetryAfter] = vals[3:4:4]
	}
}

// RetryAfterSeconds is the Retry-After value for a refused decision: the
// wait rounded up to whole seconds, at least 1, and not less than the
// rounded-up reset.
func RetryAfterSeconds(d Decision) int64 {
	return max(ceilSeconds(d.RetryAfter), ceilSeconds(d.Reset), 1)
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// writeRateLimited is the default RejectFunc.
func writeRateLimited(w http.ResponseWriter, _ *http.Request, _ Decision) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(`{"type":"about:blank","title":"Too Many Requests","status":429,"code":"rate_limited","detail":"Too many requests from this client; retry after the time in the Retry-After header."}` + "\n"))
}
