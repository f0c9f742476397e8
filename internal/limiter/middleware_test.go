package limiter

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/clientip"
	"github.com/authd/authd/internal/clocktest"
)

// serve sends one request from remote through mw and returns the recorder.
func serve(t *testing.T, h http.Handler, remote string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/login", nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newTestHandler(t *testing.T, p Params, reject RejectFunc) (http.Handler, *clocktest.Clock, *int) {
	t.Helper()
	l, clk, _ := newTestLocal(t, p)
	res := clientip.NewResolver(nil)
	calls := new(int)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*calls++
		w.WriteHeader(http.StatusNoContent)
	})
	return Middleware(l, res.Key, reject)(next), clk, calls
}

func TestMiddlewareHeaders(t *testing.T) {
	t.Parallel()
	// 1 token every 4 s, burst 3: full again 12 s after three requests.
	h, clk, calls := newTestHandler(t, Params{RPS: 0.25, Burst: 3}, nil)
	type want struct {
		code                    int
		limit, remaining, reset string
		retryAfter              string // "" = absent
	}
	steps := []struct {
		advance time.Duration
		want    want
	}{
		{0, want{204, "3", "2", "4", ""}},
		{0, want{204, "3", "1", "8", ""}},
		{0, want{204, "3", "0", "12", ""}},
		{0, want{429, "3", "0", "4", "4"}},
		{1500 * time.Millisecond, want{429, "3", "0", "3", "3"}}, // 2.5 s rounds up to 3
		{2500 * time.Millisecond, want{204, "3", "0", "12", ""}}, // a token is back
		{3999 * time.Millisecond, want{429, "3", "0", "1", "1"}}, // 1 ms left: never "0"
		{time.Hour, want{204, "3", "2", "4", ""}},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		w := serve(t, h, "198.51.100.7:1234")
		got := want{
			code:       w.Code,
			limit:      w.Header().Get("RateLimit-Limit"),
			remaining:  w.Header().Get("RateLimit-Remaining"),
			reset:      w.Header().Get("RateLimit-Reset"),
			retryAfter: w.Header().Get("Retry-After"),
		}
		if got != s.want {
			t.Fatalf("step %d: got %+v, want %+v", i, got, s.want)
		}
		if got.code == 429 {
			ra, _ := strconv.Atoi(got.retryAfter)
			reset, _ := strconv.Atoi(got.reset)
			if ra < 1 || ra < reset {
				t.Fatalf("step %d: Retry-After %d earlier than reset %d or < 1", i, ra, reset)
			}
		}
	}
	if *calls != 5 {
		t.Errorf("next handler ran %d times, want 5", *calls)
	}
}

func TestMiddlewareDefaultReject(t *testing.T) {
	t.Parallel()
	h, _, _ := newTestHandler(t, Params{RPS: 1, Burst: 1}, nil)
	serve(t, h, "198.51.100.7:1")
	w := serve(t, h, "198.51.100.7:2")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("code %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Status != 429 || body.Code != "rate_limited" {
		t.Errorf("body %q (%v)", w.Body.String(), err)
	}
	if w := serve(t, h, "198.51.100.8:1"); w.Code != http.StatusNoContent {
		t.Errorf("another client got %d", w.Code)
	}
}

func TestMiddlewareCustomReject(t *testing.T) {
	t.Parallel()
	var got Decision
	reject := func(w http.ResponseWriter, r *http.Request, d Decision) {
		got = d
		if w.Header().Get("Retry-After") == "" {
			t.Error("Retry-After not set before reject")
		}
		w.WriteHeader(http.StatusTeapot)
	}
	h, _, _ := newTestHandler(t, Params{RPS: 2, Burst: 1}, reject)
	serve(t, h, "[2001:db8::1]:1")
	w := serve(t, h, "[2001:db8::2]:1") // same /64: same bucket
	if w.Code != http.StatusTeapot {
		t.Fatalf("code %d, want reject's 418", w.Code)
	}
	if want := (Decision{Limit: 1, Reset: 500 * time.Millisecond, RetryAfter: 500 * time.Millisecond}); got != want {
		t.Errorf("reject saw %+v, want %+v", got, want)
	}
	if ra := w.Header().Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1 (never below one second)", ra)
	}
}

// TestMiddlewareSpoofedXFF: a client that is not a trusted proxy cannot win
// fresh buckets by sending a new X-Forwarded-For each time.
func TestMiddlewareSpoofedXFF(t *testing.T) {
	t.Parallel()
	l, _, _ := newTestLocal(t, Params{RPS: 1, Burst: 2})
	trusted, _ := clientip.ParsePrefixes("10.0.0.0/8")
	res := clientip.NewResolver(trusted)
	h := Middleware(l, res.Key, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	codes := make([]int, 0, 4)
	for i := range 4 {
		r := httptest.NewRequest(http.MethodPost, "/v1/login", nil)
		r.RemoteAddr = "203.0.113.9:5000"
		r.Header.Set("X-Forwarded-For", netip.AddrFrom4([4]byte{1, 1, 1, byte(i)}).String())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		codes = append(codes, w.Code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 || codes[3] != 429 {
		t.Fatalf("codes %v, want [200 200 429 429]", codes)
	}
	// Behind the trusted proxy, two real clients have separate buckets.
	for _, client := range []string{"198.51.100.1", "198.51.100.2"} {
		r := httptest.NewRequest(http.MethodPost, "/v1/login", nil)
		r.RemoteAddr = "10.0.0.2:80"
		r.Header.Set("X-Forwarded-For", client)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 || w.Header().Get("RateLimit-Remaining") != "1" {
			t.Errorf("%s behind proxy: %d remaining %s", client, w.Code, w.Header().Get("RateLimit-Remaining"))
		}
	}
}

func TestSetHeadersAndRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d                 Decision
		reset, retryAfter string
	}{
		{Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: 200 * time.Millisecond}, "1", ""},
		{Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: 0}, "0", ""},
		{Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: 2 * time.Second}, "2", ""},
		{Decision{Limit: 5, Reset: time.Nanosecond, RetryAfter: time.Nanosecond}, "1", "1"},
		{Decision{Limit: 5, Reset: 0, RetryAfter: 0}, "0", "1"},
		{Decision{Limit: 5, Reset: 3 * time.Second, RetryAfter: time.Second}, "3", "3"},
		{Decision{Limit: 5, Reset: 61500 * time.Millisecond, RetryAfter: 61500 * time.Millisecond}, "62", "62"},
	}
	for _, tt := range tests {
		h := http.Header{}
		SetHeaders(h, tt.d)
		if got := h.Get("RateLimit-Reset"); got != tt.reset {
			t.Errorf("%+v: reset %q, want %q", tt.d, got, tt.reset)
		}
		if got := h.Get("Retry-After"); got != tt.retryAfter {
			t.Errorf("%+v: Retry-After %q, want %q", tt.d, got, tt.retryAfter)
		}
	}
}

// BenchmarkMiddleware measures the middleware with the in-process limiter on
// one tracked client, allow path, with a ResponseWriter reused across
// requests so that only the middleware's own cost shows.
func BenchmarkMiddleware(b *testing.B) {
	l := mustLocal(b, Params{RPS: 1e9, Burst: 1 << 30}, time.Now, prometheus.NewRegistry())
	res := clientip.NewResolver(nil)
	h := Middleware(l, res.Key, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest(http.MethodPost, "/v1/login", nil).WithContext(context.Background())
	r.RemoteAddr = "198.51.100.7:1234"
	w := &reusedWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}

type reusedWriter struct{ h http.Header }

func (w *reusedWriter) Header() http.Header         { return w.h }
func (w *reusedWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *reusedWriter) WriteHeader(int)             {}
