package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

type ctxKey int

const requestIDKey ctxKey = iota

// requestID returns the id that withRequestID gave the request.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// withRequestID gives every request a fresh random id, echoed in
// X-Request-Id. An incoming X-Request-Id is not trusted: it would let a client
// forge log correlation.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// newRequestID returns a fresh random request id: 24 hex digits.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpMetrics are the HTTP series named in API.md.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authd_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// precreate creates the series of one route at 0: its request counter with
// the status it answers on success, and its latency histogram.
func (m *httpMetrics) precreate(route, method string, ok int) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(ok))
	m.duration.WithLabelValues(route, method)
}

// MaxHeaderBytes is the documented limit on a request's head: the request
// line and every header field, as sent. A larger head is refused 431
// request_header_too_large by limitHeaderBytes, as problem+json, logged
// and counted like any answer. The server's own limit (ServerMaxHeaderBytes)
// lies above it and only bounds what is read at all; Listener gives a head
// over that one the same answer.
const MaxHeaderBytes = 16 << 10

// ServerMaxHeaderBytes is the value for http.Server.MaxHeaderBytes of the
// public listener: four times MaxHeaderBytes, which the handler enforces.
const ServerMaxHeaderBytes = 4 * MaxHeaderBytes

// limitHeaderBytes answers 431 request_header_too_large when the request's
// head (request line and header fields, counted as they are sent) exceeds
// limit bytes.
func limitHeaderBytes(limit int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if headBytes(r) > limit {
				writeProblem(w, http.StatusRequestHeaderFieldsTooLarge, codeHeaderTooLarge,
					"the request line and headers must be at most "+strconv.Itoa(limit)+" bytes")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// headBytes is the size of r's head as sent over HTTP/1.1: "METHOD URI
// PROTO\r\n", "Host: …\r\n" and "Name: value\r\n" for every field.
func headBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// observe logs one line per request and records the HTTP metrics, labelled by
// the route pattern (never the raw path). It also recovers panics: they are
// logged once with the request id and answered 500 internal. The line of a
// 503 is at debug level; refusalLog counts those at info.
func observe(logger *slog.Logger, m *httpMetrics, clientIP func(*http.Request) netip.Addr, now func() time.Time) func(http.Handler) http.Handler {
	refused := &refusalLog{logger: logger, every: time.Second}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := now()
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					logger.ErrorContext(r.Context(), "panic in handler",
						"request_id", requestID(r.Context()), "panic", v, "stack", string(debug.Stack()))
					if sw.status == 0 {
						writeProblem(sw, http.StatusInternalServerError, codeInternal, "")
					}
				}
				route := "unmatched"
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				elapsed := now().Sub(start)
				m.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
				m.duration.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
				level := slog.LevelInfo
				if status == http.StatusServiceUnavailable {
					level = slog.LevelDebug
					refused.add(r.Context(), start.Add(elapsed))
				}
				// Checked first: the client address is worth resolving only
				// for a line that is written.
				if logger.Enabled(r.Context(), level) {
					logger.LogAttrs(r.Context(), level, "request",
						slog.String("request_id", requestID(r.Context())),
						slog.String("method", r.Method),
						slog.String("route", route),
						slog.Int("status", status),
						slog.Duration("duration", elapsed),
						slog.String("client_ip", clientIP(r).String()),
					)
				}
			}()
			next.ServeHTTP(sw, r)
		})
	}
}
