package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/app/apptest"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/hashpool"
	"github.com/authd/authd/internal/postgres"
	"github.com/authd/authd/internal/postgres/pgtest"
	"github.com/authd/authd/internal/session"
	"github.com/authd/authd/internal/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type stores interface {
	auth.UserStore
	auth.SessionStore
	auth.KeyStore
	auth.OutboxStore
	auth.EmailVerificationStore
	auth.ResetStore
	Ping(context.Context) error
}

type fixture struct {
	url  string
	pool *hashpool.Pool
	logs *apptest.Logs
	reg  *prometheus.Registry
}

type options struct {
	workers, queue int
	burst          int
}

// memDB is an in-memory SQLite store, closed when the test ends.
func memDB(t *testing.T) stores {
	t.Helper()
	s, err := sqlite.Open(t.Context(), ":memory:", time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// backends runs fn against SQLite and, when configured, PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, open func(t *testing.T) stores)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, memDB)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, func(t *testing.T) stores {
			s, err := postgres.Open(t.Context(), pgtest.SchemaURL(t), time.Now, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
}

// newFixture builds the service main runs over db, with tiny Argon2
// parameters, and serves its API.
func newFixture(t *testing.T, db stores, o options) *fixture {
	t.Helper()
	logs := &apptest.Logs{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	cfg := apptest.Config(t)
	if o.workers != 0 {
		cfg.Hash = config.Hash{Workers: o.workers, Queue: o.queue}
	}
	cfg.RateLimit = config.RateLimit{RPS: 1, Burst: 1000}
	if o.burst != 0 {
		cfg.RateLimit.Burst = o.burst
	}
	svc := apptest.Build(t, cfg, logger, reg, app.WithStores(db))
	srv := httptest.NewServer(svc.API)
	t.Cleanup(srv.Close)
	return &fixture{url: srv.URL, pool: svc.Pool, logs: logs, reg: reg}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (f *fixture) do(t *testing.T, method, path, contentType, body, bearer string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (f *fixture) post(t *testing.T, path, body string) response {
	t.Helper()
	return f.do(t, http.MethodPost, path, "application/json", body, "")
}

// wantProblem checks a problem+json answer's status and code.
func wantProblem(t *testing.T, r response, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	m := r.json(t)
	if m["code"] != code || int(m["status"].(float64)) != status || m["type"] == "" || m["title"] == "" {
		t.Errorf("problem %v, want code %s", m, code)
	}
	return m
}

const goodPassword = "correct horse battery staple"

func register(t *testing.T, f *fixture, email string) {
	t.Helper()
	r := f.post(t, "/v1/register", `{"email":"`+email+`","password":"`+goodPassword+`"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", email, r.status, r.body)
	}
}

func login(t *testing.T, f *fixture, email string) session.Pair {
	t.Helper()
	r := f.post(t, "/v1/login", `{"email":"`+email+`","password":"`+goodPassword+`"}`)
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.status, r.body)
	}
	var p session.Pair
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.AccessToken == "" || p.RefreshToken == "" || p.TokenType != "Bearer" || p.ExpiresIn != 900 {
		t.Fatalf("pair %+v", p)
	}
	return p
}

func TestRegisterAndLogin(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open func(t *testing.T) stores) {
		f := newFixture(t, open(t), options{})

		r := f.post(t, "/v1/register", `{"email":"  Ada@Example.COM ","password":"`+goodPassword+`"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
		m := r.json(t)
		if m["email"] != "ada@example.com" || m["email_verified"] != false || m["user_id"] == "" {
			t.Errorf("register body %v", m)
		}
		wantProblem(t, f.post(t, "/v1/register", `{"email":"ada@example.com","password":"another good passphrase"}`), 409, "email_taken")

		pair := login(t, f, "ADA@example.com")
		me := f.do(t, http.MethodGet, "/v1/me", "", "", pair.AccessToken)
		if me.status != 200 {
			t.Fatalf("/v1/me: %d %s", me.status, me.body)
		}
		mm := me.json(t)
		if mm["email"] != "ada@example.com" || mm["user_id"] != m["user_id"] || mm["phone"] != nil ||
			mm["mfa"].(map[string]any)["totp"] != false || mm["created_at"] == "" {
			t.Errorf("/v1/me body %v", mm)
		}

		wrong := f.post(t, "/v1/login", `{"email":"ada@example.com","password":"not the password"}`)
		unknown := f.post(t, "/v1/login", `{"email":"nobody@example.com","password":"not the password"}`)
		wantProblem(t, wrong, 401, "invalid_credentials")
		wantProblem(t, unknown, 401, "invalid_credentials")
		if !bytes.Equal(wrong.body, unknown.body) {
			t.Errorf("unknown email and wrong password differ:\n%s\n%s", wrong.body, unknown.body)
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open func(t *testing.T) stores) {
		f := newFixture(t, open(t), options{})
		big := `{"email":"big@example.com","password":"` + strings.Repeat("a", 70<<10) + `"}`
		for _, tc := range []struct {
			name, ct, body string
			status         int
			code           string
		}{
			{"wrong content type", "text/plain", `{"email":"x@example.com","password":"` + goodPassword + `"}`, 415, "unsupported_media_type"},
			{"no content type", "", `{"email":"x@example.com","password":"` + goodPassword + `"}`, 415, "unsupported_media_type"},
			{"too large", "application/json", big, 413, "payload_too_large"},
			{"malformed", "application/json", `{"email":`, 400, "malformed_request"},
			{"not json", "application/json", `hello`, 400, "malformed_request"},
			{"unknown field", "application/json", `{"email":"x@example.com","password":"` + goodPassword + `","admin":true}`, 400, "malformed_request"},
			{"trailing data", "application/json", `{"email":"x@example.com","password":"` + goodPassword + `"} {}`, 400, "malformed_request"},
			{"wrong type", "application/json", `{"email":1,"password":"` + goodPassword + `"}`, 400, "malformed_request"},
			{"empty", "application/json", ``, 400, "malformed_request"},
			{"bad email", "application/json", `{"email":"x@","password":"` + goodPassword + `"}`, 400, "validation_failed"},
			{"short password", "application/json", `{"email":"x@example.com","password":"short"}`, 400, "validation_failed"},
			{"common password", "application/json", `{"email":"x@example.com","password":"1234567890qwerty"}`, 400, "validation_failed"},
			{"password of 14 characters", "application/json", `{"email":"x@example.com","password":"apollo 11 crew"}`, 400, "validation_failed"},
			{"password holds the local part", "application/json", `{"email":"x.ample@example.com","password":"i am X.Ample, hello"}`, 400, "validation_failed"},
			{"password is the address", "application/json", `{"email":"x@example.com","password":"X@Example.com"}`, 400, "validation_failed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := f.do(t, http.MethodPost, "/v1/register", tc.ct, tc.body, "")
				m := wantProblem(t, r, tc.status, tc.code)
				if tc.code == "validation_failed" {
					errs, _ := m["errors"].([]any)
					if len(errs) == 0 {
						t.Errorf("validation_failed without errors[]: %v", m)
					} else if field := errs[0].(map[string]any)["field"]; strings.Contains(tc.name, "password") && field != "password" {
						t.Errorf("errors[0].field = %v, want password", field)
					}
				}
			})
		}
		// Nothing was created: the address is still free.
		register(t, f, "x@example.com")
		register(t, f, "big@example.com")
	})
}

func TestPoolFullAnswers503(t *testing.T) {
	t.Parallel()
	s := memDB(t)
	f := newFixture(t, s, options{workers: 1, queue: 0})
	register(t, f, "ada@example.com")

	// Occupy the only worker; with no queue, the next job is refused at once.
	release := occupy(t, f.pool)
	for _, path := range []string{"/v1/login", "/v1/register"} {
		r := f.post(t, path, `{"email":"ada@example.com","password":"`+goodPassword+`"}`)
		wantProblem(t, r, 503, "overloaded")
		if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("%s: Retry-After %q", path, ra)
		}
	}
	release()
	login(t, f, "ada@example.com")
}

func TestRefreshLogoutAndRevocation(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open func(t *testing.T) stores) {
		f := newFixture(t, open(t), options{})
		register(t, f, "ada@example.com")
		p1 := login(t, f, "ada@example.com")

		r := f.post(t, "/v1/token/refresh", `{"refresh_token":"`+p1.RefreshToken+`"}`)
		if r.status != 200 {
			t.Fatalf("refresh: %d %s", r.status, r.body)
		}
		var p2 session.Pair
		json.Unmarshal(r.body, &p2)
		if p2.RefreshToken == p1.RefreshToken || p2.AccessToken == "" {
			t.Fatalf("refresh did not rotate: %+v", p2)
		}
		// Reuse of the spent token revokes the family: p2 dies too.
		wantProblem(t, f.post(t, "/v1/token/refresh", `{"refresh_token":"`+p1.RefreshToken+`"}`), 401, "token_revoked")
		wantProblem(t, f.post(t, "/v1/token/refresh", `{"refresh_token":"`+p2.RefreshToken+`"}`), 401, "token_revoked")
		wantProblem(t, f.do(t, "GET", "/v1/me", "", "", p2.AccessToken), 401, "token_revoked")

		// Logout revokes this token and its session.
		p3 := login(t, f, "ada@example.com")
		p4 := login(t, f, "ada@example.com")
		if r := f.do(t, "POST", "/v1/logout", "", "", p3.AccessToken); r.status != 204 {
			t.Fatalf("logout: %d %s", r.status, r.body)
		}
		wantProblem(t, f.do(t, "GET", "/v1/me", "", "", p3.AccessToken), 401, "token_revoked")
		wantProblem(t, f.post(t, "/v1/token/refresh", `{"refresh_token":"`+p3.RefreshToken+`"}`), 401, "token_revoked")
		if r := f.do(t, "GET", "/v1/me", "", "", p4.AccessToken); r.status != 200 {
			t.Fatalf("other session after logout: %d %s", r.status, r.body)
		}
		// Logout all: every session ends.
		if r := f.do(t, "POST", "/v1/logout", "application/json", `{"all":true}`, p4.AccessToken); r.status != 204 {
			t.Fatalf("logout all: %d %s", r.status, r.body)
		}
		wantProblem(t, f.do(t, "GET", "/v1/me", "", "", p4.AccessToken), 401, "token_revoked")
		wantProblem(t, f.post(t, "/v1/token/refresh", `{"refresh_token":"`+p4.RefreshToken+`"}`), 401, "token_revoked")
		// A new login works again.
		p5 := login(t, f, "ada@example.com")
		if r := f.do(t, "GET", "/v1/me", "", "", p5.AccessToken); r.status != 200 {
			t.Fatalf("login after logout all: %d %s", r.status, r.body)
		}
	})
}

func TestBearerRequired(t *testing.T) {
	t.Parallel()
	s := memDB(t)
	f := newFixture(t, s, options{})
	for _, bearer := range []string{"", "garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."} {
		r := f.do(t, "GET", "/v1/me", "", "", bearer)
		wantProblem(t, r, 401, "unauthorized")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
		}
	}
	wantProblem(t, f.do(t, "GET", "/nope", "", "", ""), 404, "not_found")
}

func TestIntrospectJWKSAndDiscovery(t *testing.T) {
	t.Parallel()
	s := memDB(t)
	f := newFixture(t, s, options{})
	register(t, f, "ada@example.com")
	p := login(t, f, "ada@example.com")

	r := f.do(t, "POST", "/v1/introspect", "application/json", `{"token":"`+p.AccessToken+`"}`, p.AccessToken)
	if m := r.json(t); r.status != 200 || m["active"] != true || m["sub"] == "" || m["sid"] == "" {
		t.Errorf("introspect live: %d %s", r.status, r.body)
	}
	r = f.do(t, "POST", "/v1/introspect", "application/json", `{"token":"nonsense"}`, p.AccessToken)
	if m := r.json(t); r.status != 200 || m["active"] != false || len(m) != 1 {
		t.Errorf("introspect bad: %d %s", r.status, r.body)
	}

	r = f.do(t, "GET", "/.well-known/jwks.json", "", "", "")
	if r.status != 200 || r.header.Get("Cache-Control") == "" || !strings.Contains(string(r.body), `"kty":"OKP"`) {
		t.Errorf("jwks: %d %v %s", r.status, r.header, r.body)
	}
	r = f.do(t, "GET", "/.well-known/openid-configuration", "", "", "")
	if m := r.json(t); r.status != 200 || m["issuer"] != "http://authd.test" || m["jwks_uri"] != "http://authd.test/.well-known/jwks.json" {
		t.Errorf("discovery: %d %s", r.status, r.body)
	}
}

func TestRateLimitedRoutes(t *testing.T) {
	t.Parallel()
	s := memDB(t)
	f := newFixture(t, s, options{burst: 3})
	body := `{"email":"a@example.com","password":"wrong password here"}`
	for i := range 3 {
		r := f.post(t, "/v1/login", body)
		if r.status != 401 || r.header.Get("RateLimit-Limit") == "" || r.header.Get("RateLimit-Remaining") == "" || r.header.Get("RateLimit-Reset") == "" {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
	r := f.post(t, "/v1/login", body)
	wantProblem(t, r, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("429 headers %v", r.header)
	}
	// Health and the bearer routes are not limited by this bucket.
	if r := f.do(t, "GET", "/healthz", "", "", ""); r.status != 200 {
		t.Errorf("/healthz under limit: %d", r.status)
	}
}

func TestNoSecretInLogs(t *testing.T) {
	t.Parallel()
	s := memDB(t)
	f := newFixture(t, s, options{})
	register(t, f, "ada@example.com")
	p := login(t, f, "ada@example.com")
	f.post(t, "/v1/login", `{"email":"ada@example.com","password":"a wrong secret pass"}`)
	f.post(t, "/v1/token/refresh", `{"refresh_token":"`+p.RefreshToken+`"}`)
	f.do(t, "GET", "/v1/me", "", "", p.AccessToken)
	f.do(t, "POST", "/v1/logout", "", "", p.AccessToken)
	logs := f.logs.String()
	if !strings.Contains(logs, `"route":"/v1/login"`) {
		t.Fatalf("no request log lines: %s", logs)
	}
	for _, secret := range []string{goodPassword, "a wrong secret pass", p.AccessToken, p.RefreshToken, strings.Split(p.AccessToken, ".")[2]} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret reached the log: %.20s…", secret)
		}
	}
}

// TestLoginDeviceToken: login answers a device_token, and takes one back;
// a token that is not valid is no error (treated as none), but one longer
// than any token is a validation error.
func TestLoginDeviceToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memDB(t), options{})
	register(t, f, "dev@example.com")
	body := func(device string) string {
		return `{"email":"dev@example.com","password":"` + goodPassword + `","device_token":` + device + `}`
	}
	r := f.post(t, "/v1/login", `{"email":"dev@example.com","password":"`+goodPassword+`"}`)
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	tok, _ := r.json(t)["device_token"].(string)
	if tok == "" {
		t.Fatalf("login answered no device_token: %s", r.body)
	}
	for name, device := range map[string]string{"its own": `"` + tok + `"`, "garbage": `"not a token"`, "empty": `""`} {
		r := f.post(t, "/v1/login", body(device))
		if r.status != http.StatusOK {
			t.Fatalf("login with %s device token: %d %s", name, r.status, r.body)
		}
		if next, _ := r.json(t)["device_token"].(string); next == "" {
			t.Fatalf("login with %s device token answered none: %s", name, r.body)
		}
	}
	wantProblem(t, f.post(t, "/v1/login", body(`"`+strings.Repeat("A", 513)+`"`)), 400, "validation_failed")
	wantProblem(t, f.post(t, "/v1/login", body(`7`)), 400, "malformed_request")
	if strings.Contains(f.logs.String(), tok) {
		t.Error("a device token reached the log")
	}
}
