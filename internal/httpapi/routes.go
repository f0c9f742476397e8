package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/authd/authd/internal/limiter"
)

// routes is the whole public API in one place.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(withRequestID, observe(s.logger, s.metrics, s.clientIP, s.now))
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusNotFound, codeNotFound, "")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusMethodNotAllowed, codeMethod, "")
	})

	r.Method(http.MethodGet, "/healthz", handleHealthz())
	r.Method(http.MethodGet, "/readyz", handleReadyz(s.ready))
	r.Method(http.MethodGet, "/.well-known/jwks.json", handleJWKS(s.keys))
	r.Method(http.MethodGet, "/.well-known/openid-configuration", handleDiscovery(s.issuer, s.publicURL))

	// The auth endpoints: the per-client limiter runs before any decoding,
	// hashing or database work. Before it, the two that hash ask the hash
	// pool for admission: under overload a refusal then costs no limiter
	// lookup, no decoding and no database read.
	limit := limiter.Middleware(s.limiter, s.clientKey, rejectRateLimited)
	r.With(admit(s.logger, s.accounts.AdmitRegister), limit).
		Method(http.MethodPost, "/v1/register", handleRegister(s.logger, s.accounts))
	r.With(admit(s.logger, s.accounts.AdmitLogin), limit).
		Method(http.MethodPost, "/v1/login", handleLogin(s.logger, s.accounts, s.throttleKey))
	r.With(limit).Method(http.MethodPost, "/v1/token/refresh", handleRefresh(s.logger, s.sessions))

	// Bearer-protected: signature, claims and revocation checked every request.
	r.Group(func(r chi.Router) {
		r.Use(requireBearer(s.logger, s.sessions))
		r.Method(http.MethodPost, "/v1/logout", handleLogout(s.logger, s.sessions))
		r.Method(http.MethodGet, "/v1/me", handleMe(s.logger, s.users))
		r.Method(http.MethodPost, "/v1/introspect", handleIntrospect(s.logger, s.sessions))
	})
	return r
}

// throttleKey is the client part of the per-account throttle's (email,
// client) counter.
func (s *Server) throttleKey(r *http.Request) string { return s.clientKey(r).String() }
