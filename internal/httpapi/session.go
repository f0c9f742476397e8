package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/authd/authd/docs"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/session"
	"github.com/authd/authd/internal/token"
)

// Sessions is the token and session service (session.Manager).
type Sessions interface {
	Refresh(ctx context.Context, refresh string) (session.Pair, error)
	Authenticate(ctx context.Context, bearer string) (*token.Claims, error)
	Logout(ctx context.Context, c *token.Claims, all bool) error
	Introspect(ctx context.Context, raw string) (session.Introspection, error)
}

// Users reads accounts for /v1/me.
type Users interface {
	UserByID(ctx context.Context, id string) (*auth.User, error)
}

// KeySet publishes the public signing keys.
type KeySet interface {
	JWKS() []byte
}

const claimsKey ctxKey = iota + 100

// claimsFrom returns the claims that requireBearer put in the context.
func claimsFrom(ctx context.Context) *token.Claims {
	c, _ := ctx.Value(claimsKey).(*token.Claims)
	return c
}

// bearerToken returns the token of an "Authorization: Bearer …" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// requireBearer authenticates the request's access token (signature,
// claims and revocation, every request) or answers 401; when the revocation
// list cannot be read it answers 503: it fails closed.
func requireBearer(logger *slog.Logger, sessions Sessions) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := bearerToken(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="authd"`)
				writeProblem(w, http.StatusUnauthorized, codeUnauthorized, "An Authorization: Bearer token is required.")
				return
			}
			c, err := sessions.Authenticate(r.Context(), raw)
			if err != nil {
				writeError(w, r, logger, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey, c)))
		})
	}
}

type refreshRequest struct {
	RefreshToken auth.Token `json:"refresh_token"`
}

func (r refreshRequest) Validate() []FieldError {
	if r.RefreshToken == "" {
		return []FieldError{{Field: "refresh_token", Message: "refresh_token is required"}}
	}
	return nil
}

func handleRefresh(logger *slog.Logger, sessions Sessions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[refreshRequest](w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		pair, err := sessions.Refresh(r.Context(), string(req.RefreshToken))
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		encodeJSON(w, http.StatusOK, pair)
	})
}

type logoutRequest struct {
	All bool `json:"all"`
}

func (logoutRequest) Validate() []FieldError { return nil }

func handleLogout(logger *slog.Logger, sessions Sessions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req logoutRequest
		// An empty body means {"all": false}.
		if r.ContentLength != 0 {
			var err error
			if req, err = decode[logoutRequest](w, r); err != nil {
				writeError(w, r, logger, err)
				return
			}
		}
		if err := sessions.Logout(r.Context(), claimsFrom(r.Context()), req.All); err != nil {
			writeError(w, r, logger, err)
			return
		}
		writeNoContent(w)
	})
}

type meResponse struct {
	UserID        string    `json:"user_id"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"email_verified"`
	Phone         *string   `json:"phone"`
	MFA           mfaState  `json:"mfa"`
	CreatedAt     time.Time `json:"created_at"`
}

type mfaState struct {
	TOTP bool `json:"totp"`
}

func handleMe(logger *slog.Logger, users Users) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := claimsFrom(r.Context())
		u, err := users.UserByID(r.Context(), c.Subject)
		if err != nil {
			// A valid token for a deleted account is no longer a credential.
			if errors.Is(err, auth.ErrNotFound) {
				err = auth.ErrUnauthorized
			}
			writeError(w, r, logger, err)
			return
		}
		resp := meResponse{UserID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, CreatedAt: u.CreatedAt.UTC()}
		if u.Phone != "" {
			resp.Phone = &u.Phone
		}
		encodeJSON(w, http.StatusOK, resp)
	})
}

type introspectRequest struct {
	Token auth.Token `json:"token"`
}

func (r introspectRequest) Validate() []FieldError {
	if r.Token == "" {
		return []FieldError{{Field: "token", Message: "token is required"}}
	}
	return nil
}

func handleIntrospect(logger *slog.Logger, sessions Sessions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[introspectRequest](w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		res, err := sessions.Introspect(r.Context(), string(req.Token))
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		encodeJSON(w, http.StatusOK, res)
	})
}

// handleJWKS serves the key set as application/jwk-set+json (RFC 7517 §8.5).
func handleJWKS(keys KeySet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/jwk-set+json")
		// Verifiers that cache the set re-read it within five minutes; one
		// that meets an unknown kid should re-read it at once.
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(keys.JWKS())
	})
}

// discovery is the OpenID-style configuration. Members whose standard
// meaning holds (OpenID Connect Discovery 1.0, RFC 8414) have their
// standard names; authd's own endpoints, which a standard client must not
// mistake for an OAuth token, userinfo or RFC 7662 introspection endpoint
// (their requests and answers differ), are authd_-prefixed.
type discovery struct {
	Issuer                string   `json:"issuer"`
	JWKSURI               string   `json:"jwks_uri"`
	IDTokenSigningAlgs    []string `json:"id_token_signing_alg_values_supported"`
	SubjectTypes          []string `json:"subject_types_supported"`
	ClaimsSupported       []string `json:"claims_supported"`
	ServiceDocumentation  string   `json:"service_documentation"`
	RegisterEndpoint      string   `json:"authd_register_endpoint"`
	LoginEndpoint         string   `json:"authd_login_endpoint"`
	RefreshEndpoint       string   `json:"authd_refresh_endpoint"`
	LogoutEndpoint        string   `json:"authd_logout_endpoint"`
	MeEndpoint            string   `json:"authd_me_endpoint"`
	IntrospectionEndpoint string   `json:"authd_introspect_endpoint"`
}

// handleDiscovery serves the OpenID configuration built from the configured
// issuer and public URL, never from the request's Host header.
func handleDiscovery(issuer, publicURL string) http.Handler {
	d := discovery{
		Issuer:                issuer,
		JWKSURI:               publicURL + "/.well-known/jwks.json",
		IDTokenSigningAlgs:    []string{"EdDSA"},
		SubjectTypes:          []string{"public"},
		ClaimsSupported:       []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "amr"},
		ServiceDocumentation:  publicURL + "/openapi.yaml",
		RegisterEndpoint:      publicURL + "/v1/register",
		LoginEndpoint:         publicURL + "/v1/login",
		RefreshEndpoint:       publicURL + "/v1/token/refresh",
		LogoutEndpoint:        publicURL + "/v1/logout",
		MeEndpoint:            publicURL + "/v1/me",
		IntrospectionEndpoint: publicURL + "/v1/introspect",
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(d)
	})
}

// handleOpenAPI serves docs/openapi.yaml, the description of this API, as
// embedded in the binary.
func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/yaml")
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, docs.OpenAPI)
	})
}
