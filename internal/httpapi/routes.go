package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/authd/authd/internal/limiter"
)

// routes is the whole public API in one place.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(withRequestID, observe(s.logger, s.metrics, s.clientIP, s.now), limitHeaderBytes(MaxHeaderBytes))
	r.Use(withDeadline(s.timeout), closeWhenDraining(s.ready))
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, http.StatusNotFound, codeNotFound, "")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", allowedMethods(r, req.URL.Path))
		writeProblem(w, http.StatusMethodNotAllowed, codeMethod, "")
	})

	s.handle(r, http.MethodGet, "/healthz", http.StatusOK, handleHealthz())
	s.handle(r, http.MethodHead, "/healthz", http.StatusOK, handleHealthz())
	s.handle(r, http.MethodGet, "/readyz", http.StatusOK, handleReadyz(s.ready))
	s.handle(r, http.MethodHead, "/readyz", http.StatusOK, handleReadyz(s.ready))
	s.handle(r, http.MethodGet, "/openapi.yaml", http.StatusOK, handleOpenAPI())
	s.handle(r, http.MethodGet, "/.well-known/jwks.json", http.StatusOK, handleJWKS(s.keys))
	s.handle(r, http.MethodGet, "/.well-known/openid-configuration", http.StatusOK, handleDiscovery(s.issuer, s.publicURL))

	// The auth endpoints: the per-client limiter runs before any decoding,
	// hashing or database work. Before it, the two that hash ask the hash
	// pool for admission: under overload a refusal then costs no limiter
	// lookup, no decoding and no database read.
	limit := limiter.Middleware(s.limiter, s.clientKey, rejectRateLimited)
	s.handle(r.With(admit(s.logger, s.accounts.AdmitRegister), limit), http.MethodPost, "/v1/register", http.StatusCreated, handleRegister(s.logger, s.accounts))
	s.handle(r.With(admit(s.logger, s.accounts.AdmitLogin), limit), http.MethodPost, "/v1/login", http.StatusOK, handleLogin(s.logger, s.accounts, s.throttleKey))
	s.handle(r.With(limit), http.MethodPost, "/v1/token/refresh", http.StatusOK, handleRefresh(s.logger, s.sessions))
	s.handle(r.With(limit), http.MethodPost, "/v1/email/verify", http.StatusNoContent, handleVerifyEmail(s.logger, s.emails))
	s.handle(r.With(limit), http.MethodPost, "/v1/password/forgot", http.StatusAccepted, handleForgot(s.logger, s.passwords))
	s.handle(r.With(admit(s.logger, s.passwords.Admit), limit), http.MethodPost, "/v1/password/reset", http.StatusNoContent, handleReset(s.logger, s.passwords, s.throttleKey))

	// Bearer-protected: signature, claims and revocation checked every request.
	r.Group(func(r chi.Router) {
		r.Use(requireBearer(s.logger, s.sessions))
		s.handle(r, http.MethodPost, "/v1/logout", http.StatusNoContent, handleLogout(s.logger, s.sessions))
		s.handle(r, http.MethodGet, "/v1/me", http.StatusOK, handleMe(s.logger, s.users))
		s.handle(r, http.MethodPost, "/v1/introspect", http.StatusOK, handleIntrospect(s.logger, s.sessions))
		// Its own per-address limit answers 429 past 5 an hour.
		s.handle(r, http.MethodPost, "/v1/email/resend", http.StatusAccepted, handleResendEmail(s.logger, s.emails))
		s.handle(r.With(admit(s.logger, s.passwords.Admit), limit), http.MethodPost, "/v1/password/change", http.StatusNoContent, handleChange(s.logger, s.passwords, s.throttleKey))
	})
	return r
}

// handle mounts h at method and pattern on r and creates its HTTP series
// at 0 with the status it answers on success, so that a scrape shows every
// route before its first request (API.md).
func (s *Server) handle(r chi.Router, method, pattern string, ok int, h http.Handler) {
	r.Method(method, pattern, h)
	s.metrics.precreate(pattern, method, ok)
}

// allowedMethods is the Allow header of a 405 for path: every method that
// router routes there.
func allowedMethods(router chi.Routes, path string) string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if router.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}

// throttleKey is the client part of the per-account throttle's (email,
// client) counter.
func (s *Server) throttleKey(r *http.Request) string { return s.clientKey(r).String() }
