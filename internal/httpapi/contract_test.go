package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/internal/httpapi"
)

// TestHTTPSeriesExistAtStart: API.md requires every labelled series to be
// created at start, so a scrape right after building the server shows every
// route and method.
func TestHTTPSeriesExistAtStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memDB(t), options{})
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "authd_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var route, method, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "method":
					method = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			got[method+" "+route+" "+code] = true
		}
	}
	for _, want := range []string{
		"GET /healthz 200", "HEAD /healthz 200", "GET /readyz 200", "HEAD /readyz 200",
		"GET /openapi.yaml 200", "GET /.well-known/jwks.json 200", "GET /.well-known/openid-configuration 200",
		"POST /v1/register 201", "POST /v1/login 200", "POST /v1/token/refresh 200",
		"POST /v1/logout 204", "GET /v1/me 200", "POST /v1/introspect 200",
	} {
		if !got[want] {
			t.Errorf("authd_http_requests_total has no series %q at start; it has %v", want, got)
		}
	}
}

func TestHTTPDetails(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memDB(t), options{})

	t.Run("405 carries Allow", func(t *testing.T) {
		for path, allow := range map[string]string{
			"/v1/register": "POST",
			"/healthz":     "GET, HEAD",
			"/v1/me":       "GET",
		} {
			r := f.do(t, http.MethodPut, path, "", "", "")
			wantProblem(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
			if got := r.header.Get("Allow"); got != allow {
				t.Errorf("PUT %s: Allow %q, want %q", path, got, allow)
			}
		}
	})
	t.Run("HEAD health", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if r := f.do(t, http.MethodHead, path, "", "", ""); r.status != http.StatusOK || len(r.body) != 0 {
				t.Errorf("HEAD %s: %d %q", path, r.status, r.body)
			}
		}
	})
	t.Run("a large body is 413 whatever it holds", func(t *testing.T) {
		big := strings.Repeat("x", 70<<10)
		for _, ct := range []string{"application/json", "text/plain", ""} {
			wantProblem(t, f.do(t, http.MethodPost, "/v1/register", ct, big, ""), http.StatusRequestEntityTooLarge, "payload_too_large")
		}
	})
	t.Run("unknown field without json: prefix", func(t *testing.T) {
		r := f.post(t, "/v1/login", `{"email":"a@example.com","password":"x","username":"a"}`)
		m := wantProblem(t, r, http.StatusBadRequest, "malformed_request")
		if m["detail"] != `unknown field "username"` {
			t.Errorf("detail %q", m["detail"])
		}
	})
	t.Run("headers over the limit are 431 problem+json", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, f.url+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Big", strings.Repeat("b", 20<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("20 KiB header: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
}

// TestNoContentHeaders: the 204s are /v1/ answers too.
func TestNoContentHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memDB(t), options{})
	register(t, f, "ada@example.com")
	p := login(t, f, "ada@example.com")
	r := f.do(t, http.MethodPost, "/v1/logout", "", "", p.AccessToken)
	if r.status != http.StatusNoContent || r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("logout: %d %v", r.status, r.header)
	}
}

// TestThrottle429HasNoBucketHeaders: the per-account throttle's 429 must not
// carry the client bucket's RateLimit-* headers (quota left, reset in 1 s)
// next to its own Retry-After.
func TestThrottle429HasNoBucketHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memDB(t), options{})
	register(t, f, "ada@example.com")
	for i := range 20 {
		r := f.post(t, "/v1/login", `{"email":"ada@example.com","password":"not the password"}`)
		if r.status == http.StatusUnauthorized {
			continue
		}
		wantProblem(t, r, http.StatusTooManyRequests, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("throttle 429 without Retry-After: %v", r.header)
		}
		for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
			if v := r.header.Get(h); v != "" {
				t.Errorf("throttle 429 (after %d failures) carries %s: %s", i, h, v)
			}
		}
		return
	}
	t.Fatal("the account throttle never answered 429")
}

// TestListenerAnswers431AsProblem: a head over the server's MaxHeaderBytes
// never reaches a handler; net/http answers it in text/plain unless the
// listener rewrites that answer.
func TestListenerAnswers431AsProblem(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.MaxHeaderBytes = 1 << 10
	srv.Listener = httpapi.Listener(srv.Listener, time.Now)
	srv.Start()
	t.Cleanup(srv.Close)

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("b", 16<<10))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p httpapi.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("431 body: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" ||
		p.Status != 431 || p.Code != "request_header_too_large" || len(resp.Header.Get("X-Request-Id")) != 24 {
		t.Errorf("%d %v %+v", resp.StatusCode, resp.Header, p)
	}
	// The connection still serves nothing else: a normal request on a new
	// one is unaffected.
	resp2, err := srv.Client().Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Errorf("normal request: %d", resp2.StatusCode)
	}
}
