// Package httpapi is authd's public HTTP API: the routes (routes.go), the
// handlers, the one decode/encode pair, the one error-to-problem mapping and
// the middleware that logs, measures and protects every request. The admin
// listener (metrics, pprof) is built by NewAdmin, never mounted here.
package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authd/authd/internal/clientip"
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
	passwords Passwords
	users     Users
	sessions  Sessions
	keys      KeySet
	emails    Emails
	issuer    string
	publicURL string
	timeout   time.Duration // every request's deadline
	handler   http.Handler
}

// Deps are the parts the public API calls. Every field is required.
type Deps struct {
	// Ready answers /readyz.
	Ready *Readiness
	// Clients decides a request's client address (trusted proxies
	// included) and its rate-limit key (an IPv4 address, an IPv6 /64).
	Clients *clientip.Resolver
	// Limiter is the per-client limiter of the auth endpoints.
	Limiter  limiter.Limiter
	Accounts Accounts
	Users    Users
	Sessions Sessions
	Keys     KeySet

	// Emails is email verification and its resends.
	Emails Emails
	// Passwords is password forgot, reset and change.
	Passwords Passwords
}

// Params are the API's settings.
type Params struct {
	// Issuer is the iss of the tokens, announced by discovery.
	Issuer string
	// PublicURL is where clients reach this service; discovery's links
	// start with it.
	PublicURL string
	// RequestTimeout is every request's deadline (AUTHD_REQUEST_TIMEOUT):
	// past it, a request whose dependencies have not answered is answered
	// 503 unavailable (see withDeadline). It must be positive and shorter
	// than the server's WriteTimeout.
	RequestTimeout time.Duration
}

// NewServer returns the public API handler. Its HTTP metrics are registered
// on reg; it fails if they already are, or if a dependency or parameter is
// missing.
func NewServer(d Deps, p Params, now func() time.Time, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	switch {
	case d.Ready == nil || d.Clients == nil || d.Limiter == nil || d.Accounts == nil ||
		d.Users == nil || d.Sessions == nil || d.Keys == nil || d.Emails == nil || d.Passwords == nil:
		return nil, errors.New("httpapi: a dependency is missing")
	case p.Issuer == "" || p.PublicURL == "":
		return nil, errors.New("httpapi: issuer and public URL are required")
	case p.RequestTimeout <= 0:
		return nil, errors.New("httpapi: the request timeout must be positive")
	case now == nil || logger == nil || reg == nil:
		return nil, errors.New("httpapi: clock, logger and registerer are required")
	}
	m, err := newHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		logger: logger, now: now, metrics: m, ready: d.Ready,
		clientIP: d.Clients.ClientIP, clientKey: d.Clients.Key, limiter: d.Limiter,
		accounts: d.Accounts, users: d.Users, sessions: d.Sessions, keys: d.Keys,
		emails: d.Emails, passwords: d.Passwords,
		issuer: p.Issuer, publicURL: p.PublicURL, timeout: p.RequestTimeout,
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
