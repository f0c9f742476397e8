// Package httpapi is authd's public HTTP API: the routes (routes.go), the
// handlers, the one decode/encode pair, the one error-to-problem mapping and
// the middleware that logs, measures and protects every request. The admin
// listener (metrics, pprof) is built by NewAdmin, never mounted here.
package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authd/authd/internal/limiter"
)

// Server is the public API handler. Build it with NewServer.
type Server struct {
	logger    *slog.Logger
	now       func() time.Time
	metrics   *httpMetrics
	ready     *Readiness
	clientIP  func(*http.Request) netip.Addr
	clientKey func(*http.Request) netip.Prefix
	limiter   limiter.Limiter
	accounts  Accounts
	users     Users
	sessions  Sessions
	keys      KeySet
	issuer    string
	publicURL string
	handler   http.Handler
}

// NewServer returns the public API handler.
//
// clientIP is the one function that decides a request's client address
// (trusted proxies included); clientKey maps it to the rate-limit key (an
// IPv4 address, an IPv6 /64). lim is the per-client limiter of the auth
// endpoints. issuer and publicURL feed the discovery document. The HTTP
// metrics are registered on reg; it fails if they already are.
func NewServer(
	logger *slog.Logger,
	reg prometheus.Registerer,
	now func() time.Time,
	ready *Readiness,
	clientIP func(*http.Request) netip.Addr,
	clientKey func(*http.Request) netip.Prefix,
	lim limiter.Limiter,
	accounts Accounts,
	users Users,
	sessions Sessions,
	keys KeySet,
	issuer, publicURL string,
) (*Server, error) {
	m, err := newHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		logger: logger, now: now, metrics: m, ready: ready,
		clientIP: clientIP, clientKey: clientKey, limiter: lim,
		accounts: accounts, users: users, sessions: sessions, keys: keys,
		issuer: issuer, publicURL: publicURL,
	}
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// rejectRateLimited answers a request the limiter refused; the limiter has
// already set Retry-After and the RateLimit-* headers.
func rejectRateLimited(w http.ResponseWriter, _ *http.Request, _ limiter.Decision) {
	writeProblem(w, http.StatusTooManyRequests, codeRateLimited, "")
}

// NewAdmin returns the admin listener's handler: GET /metrics from gatherer
// and /debug/pprof/. It must only ever be served on the admin address.
func NewAdmin(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
