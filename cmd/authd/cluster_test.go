package main

// End-to-end tests of several authd instances in one test process, sharing
// one PostgreSQL schema and one Redis key prefix: tokens and revocation
// across instances, key rotation, the shared per-client rate limit with
// Redis cut and restored, and the per-account login throttle.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/authd/authd/internal/app/apptest"
	"github.com/authd/authd/internal/limiter"
	"github.com/authd/authd/internal/postgres/pgtest"
	"github.com/authd/authd/internal/redis/redistest"
)

const goodPassword = "correct horse battery staple"

// clusterEnv returns the settings every instance of one test shares: a
// PostgreSQL schema of the test's own, the Redis at redisAt and a random key
// prefix (its keys are deleted when the test ends: throttle counters live
// for a day). redisAt may differ from AUTHD_TEST_REDIS_URL (a proxy in
// front of it).
func clusterEnv(t *testing.T, redisAt string) map[string]string {
	t.Helper()
	dbURL := pgtest.SchemaURL(t)
	opts, err := goredis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatalf("%s: %v", redistest.EnvVar, err)
	}
	c := goredis.NewClient(opts) // direct, for the cleanup
	t.Cleanup(func() { c.Close() })
	return map[string]string{
		// One issuer for the cluster, as behind one load balancer: the
		// default would follow each instance's own listener.
		"AUTHD_PUBLIC_URL":       "http://authd.test",
		"AUTHD_DATABASE_URL":     dbURL,
		"AUTHD_REDIS_URL":        redisAt,
		"AUTHD_REDIS_KEY_PREFIX": redistest.Prefix(t, c),
		"AUTHD_SECRET_KEY":       strings.Repeat("s", 32), // required with PostgreSQL
	}
}

// startAll launches n instances with env at once (so they race on the
// fresh schema: migrations, the first signing key)
// and waits until every one is healthy.
func startAll(t *testing.T, env map[string]string, n int) []*instance {
	t.Helper()
	ins := make([]*instance, n)
	for i := range ins {
		ins[i] = launch(t, env)
	}
	for _, in := range ins {
		in.waitHealthy(t)
	}
	return ins
}

// stopAll stops every instance as SIGTERM does and requires a clean exit.
func stopAll(t *testing.T, ins []*instance) {
	t.Helper()
	for i, in := range ins {
		if err := in.stop(t); err != nil {
			t.Errorf("instance %d: run returned %v after a clean shutdown\nlogs:\n%s", i, err, in.logs)
		}
	}
}

// clientFrom returns an HTTP client whose connections leave from the
// loopback address ip, so that authd sees a client of that address.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	addr := net.ParseIP(ip)
	if addr == nil {
		t.Fatalf("bad source address %q", ip)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: addr}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// reply is a whole HTTP response.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %d %q: %v", r.code, r.body, err)
	}
	return m
}

// problemCode is the "code" of a problem+json body ("" if none).
func (r reply) problemCode() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.code, bytes.TrimSpace(r.body)) }

// call sends method url with body (JSON-encoded unless nil) and bearer
// (when not empty) and reads the whole answer.
func call(t *testing.T, hc *http.Client, method, url, bearer string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

type creds struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type tokenPair struct {
	Access  string
	Refresh string
}

// login logs in on in and requires a token pair.
func login(t *testing.T, hc *http.Client, in *instance, email, pw string) tokenPair {
	t.Helper()
	r := call(t, hc, http.MethodPost, in.base+"/v1/login", "", creds{email, pw})
	if r.code != http.StatusOK {
		t.Fatalf("login %s on %s = %s", email, in.base, r)
	}
	m := r.json(t)
	access, _ := m["access_token"].(string)
	refresh, _ := m["refresh_token"].(string)
	if access == "" || refresh == "" || m["token_type"] != "Bearer" {
		t.Fatalf("login %s: not a token pair: %s", email, r.body)
	}
	return tokenPair{Access: access, Refresh: refresh}
}

// refresh spends refreshToken on in and requires a new pair.
func refresh(t *testing.T, hc *http.Client, in *instance, refreshToken string) tokenPair {
	t.Helper()
	r := call(t, hc, http.MethodPost, in.base+"/v1/token/refresh", "", map[string]string{"refresh_token": refreshToken})
	if r.code != http.StatusOK {
		t.Fatalf("refresh on %s = %s", in.base, r)
	}
	m := r.json(t)
	access, _ := m["access_token"].(string)
	next, _ := m["refresh_token"].(string)
	if access == "" || next == "" || next == refreshToken {
		t.Fatalf("refresh: not a new token pair: %s", r.body)
	}
	return tokenPair{Access: access, Refresh: next}
}

// postStatus posts a JSON body and returns the status; it does not touch t,
// so goroutines may call it.
func postStatus(hc *http.Client, url, body string) (int, error) {
	resp, err := hc.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func register(t *testing.T, hc *http.Client, in *instance, email, pw string) string {
	t.Helper()
	r := call(t, hc, http.MethodPost, in.base+"/v1/register", "", creds{email, pw})
	if r.code != http.StatusCreated {
		t.Fatalf("register %s on %s = %s", email, in.base, r)
	}
	id, _ := r.json(t)["user_id"].(string)
	if id == "" {
		t.Fatalf("register %s: no user_id in %s", email, r.body)
	}
	return id
}

// kidOf decodes a JWT's header and returns its kid, requiring alg EdDSA.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	h, _, ok := strings.Cut(jwt, ".")
	if !ok {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatalf("JWT header %s: %v", raw, err)
	}
	if hdr.Alg != "EdDSA" || hdr.Kid == "" {
		t.Fatalf("JWT header %s: want alg EdDSA and a kid", raw)
	}
	return hdr.Kid
}

// jwksKids lists the kids of in's /.well-known/jwks.json.
func jwksKids(t *testing.T, hc *http.Client, in *instance) []string {
	t.Helper()
	r := call(t, hc, http.MethodGet, in.base+"/.well-known/jwks.json", "", nil)
	if r.code != http.StatusOK {
		t.Fatalf("jwks on %s = %s", in.base, r)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &set); err != nil {
		t.Fatalf("jwks %s: %v", r.body, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestClusterTokens: two instances sharing PostgreSQL and Redis accept each
// other's tokens, see each other's logouts, refreshes and reuse detection,
// let exactly one of two concurrent refreshes win, and pick up `authd keys
// rotate` within a few reload intervals while still accepting the old key.
func TestClusterTokens(t *testing.T) {
	t.Parallel()
	env := clusterEnv(t, redistest.URL(t))
	env["AUTHD_KEY_RELOAD_INTERVAL"] = "200ms"
	ins := startAll(t, env, 2)
	a, b := ins[0], ins[1]
	hc := clientFrom(t, "127.0.0.1")

	const email = "alice@example.com"
	userID := register(t, hc, a, email, goodPassword)

	// A token from A works on B.
	p1 := login(t, hc, a, email, goodPassword)
	if r := call(t, hc, http.MethodGet, b.base+"/v1/me", p1.Access, nil); r.code != http.StatusOK {
		t.Fatalf("B /v1/me with A's token = %s", r)
	} else if m := r.json(t); m["user_id"] != userID || m["email"] != email {
		t.Errorf("B /v1/me = %s, want user %s", r.body, userID)
	}
	if r := call(t, hc, http.MethodPost, b.base+"/v1/introspect", p1.Access, map[string]string{"token": p1.Access}); r.code != http.StatusOK || r.json(t)["active"] != true {
		t.Errorf("B introspect of A's token = %s, want active", r)
	}

	// Logout on A: B refuses the access token and the refresh token.
	if r := call(t, hc, http.MethodPost, a.base+"/v1/logout", p1.Access, nil); r.code != http.StatusNoContent {
		t.Fatalf("A logout = %s", r)
	}
	if r := call(t, hc, http.MethodGet, b.base+"/v1/me", p1.Access, nil); r.code != http.StatusUnauthorized || r.problemCode() != "token_revoked" {
		t.Errorf("B /v1/me after logout on A = %s, want 401 token_revoked", r)
	}
	if r := call(t, hc, http.MethodPost, b.base+"/v1/token/refresh", "", map[string]string{"refresh_token": p1.Refresh}); r.code != http.StatusUnauthorized {
		t.Errorf("B refresh after logout on A = %s, want 401", r)
	}

	// A session from B refreshes on A; its tokens work on both, and B's
	// introspection reports the logged-out token inactive.
	p2 := login(t, hc, b, email, goodPassword)
	p3 := refresh(t, hc, a, p2.Refresh)
	for _, in := range ins {
		if r := call(t, hc, http.MethodGet, in.base+"/v1/me", p3.Access, nil); r.code != http.StatusOK {
			t.Errorf("%s /v1/me with the refreshed token = %s", in.base, r)
		}
	}
	if r := call(t, hc, http.MethodPost, b.base+"/v1/introspect", p3.Access, map[string]string{"token": p1.Access}); r.code != http.StatusOK || r.json(t)["active"] != false {
		t.Errorf("B introspect of the logged-out token = %s, want active false", r)
	}

	// Reuse detection across instances: the spent refresh token presented
	// to B revokes the family, so A refuses its live tokens.
	if r := call(t, hc, http.MethodPost, b.base+"/v1/token/refresh", "", map[string]string{"refresh_token": p2.Refresh}); r.code != http.StatusUnauthorized || r.problemCode() != "token_revoked" {
		t.Errorf("B refresh with a token spent on A = %s, want 401 token_revoked", r)
	}
	if r := call(t, hc, http.MethodGet, a.base+"/v1/me", p3.Access, nil); r.code != http.StatusUnauthorized || r.problemCode() != "token_revoked" {
		t.Errorf("A /v1/me after the family was revoked on B = %s, want 401 token_revoked", r)
	}
	if r := call(t, hc, http.MethodPost, a.base+"/v1/token/refresh", "", map[string]string{"refresh_token": p3.Refresh}); r.code != http.StatusUnauthorized {
		t.Errorf("A refresh in a family revoked on B = %s, want 401", r)
	}

	// One refresh token sent to A and B at once: exactly one wins.
	for round := range 3 {
		p := login(t, hc, a, email, goodPassword)
		codes := make([]int, len(ins))
		errs := make([]error, len(ins))
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for i, in := range ins {
			wg.Go(func() {
				<-gate
				codes[i], errs[i] = postStatus(hc, in.base+"/v1/token/refresh", `{"refresh_token":"`+p.Refresh+`"}`)
			})
		}
		close(gate)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent refresh: %v", err)
		}
		slices.Sort(codes)
		if !slices.Equal(codes, []int{http.StatusOK, http.StatusUnauthorized}) {
			t.Errorf("round %d: concurrent refreshes of one token on A and B answered %v, want one 200 and one 401", round, codes)
		}
	}

	// Key rotation. The two instances may each have created a first key on
	// the empty schema; once they have reloaded they sign with the same one.
	oldTok := login(t, hc, a, email, goodPassword).Access
	oldKid := kidOf(t, oldTok)
	var stdout, stderr apptest.Logs
	getenv := func(k string) string { return env[k] }
	if err := run(context.Background(), []string{"keys", "rotate"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, stderr.String())
	}
	rotated := time.Now()
	newKid, ok := strings.CutPrefix(strings.TrimSpace(stdout.String()), "new signing key ")
	if !ok || newKid == "" || newKid == oldKid {
		t.Fatalf("keys rotate printed %q; old kid %s", stdout.String(), oldKid)
	}

	// Both instances pick it up within a few reload intervals: their JWKS
	// lists it, and new logins on each are signed with it.
	deadline := rotated.Add(5 * time.Second)
	for i, in := range ins {
		for !slices.Contains(jwksKids(t, hc, in), newKid) {
			if time.Now().After(deadline) {
				t.Fatalf("instance %d: JWKS lacks %s 5 s after the rotation: %v", i, newKid, jwksKids(t, hc, in))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("both instances serve the new key %v after the rotation (reload interval 200ms)", time.Since(rotated).Round(time.Millisecond))
	var fresh []string
	for i, in := range ins {
		tok := login(t, hc, in, email, goodPassword).Access
		if kid := kidOf(t, tok); kid != newKid {
			t.Errorf("instance %d signs with %s after picking up %s", i, kid, newKid)
		}
		fresh = append(fresh, tok)
	}
	// Old and new tokens verify on both; both kids are published.
	for i, in := range ins {
		for _, tok := range append([]string{oldTok}, fresh...) {
			if r := call(t, hc, http.MethodGet, in.base+"/v1/me", tok, nil); r.code != http.StatusOK {
				t.Errorf("instance %d: /v1/me with a token of kid %s = %s", i, kidOf(t, tok), r)
			}
		}
		kids := jwksKids(t, hc, in)
		if !slices.Contains(kids, oldKid) || !slices.Contains(kids, newKid) {
			t.Errorf("instance %d: JWKS kids %v, want both %s and %s", i, kids, oldKid, newKid)
		}
	}
	stopAll(t, ins)
}

// TestSharedRateLimit: three instances sharing Redis enforce one per-client
// budget; with Redis cut each limits in process, protected endpoints fail
// closed and /readyz names redis, and all recover without a restart when
// Redis is back.
func TestSharedRateLimit(t *testing.T) {
	t.Parallel()
	rawRedis := redistest.URL(t)
	ru, err := url.Parse(rawRedis)
	if err != nil {
		t.Fatalf("%s: %v", redistest.EnvVar, err)
	}
	proxy := redistest.NewProxy(t, ru.Host)
	ru.Host = proxy.Addr()
	env := clusterEnv(t, ru.String())
	const burst = 6
	env["AUTHD_RATE_LIMIT_BURST"] = strconv.Itoa(burst)
	env["AUTHD_RATE_LIMIT_RPS"] = "0.1" // one token per 10 s: none refills during the test
	ins := startAll(t, env, 3)
	began := time.Now()

	// 18 failed logins from one client, round-robin over the three: the
	// budget of one instance goes through, not three. A Redis call that
	// fails or overruns the limiter's deadline (100 ms; it happens on a
	// loaded machine under -race) lets that instance decide in process for a
	// second, as designed, and so may let more through: such an attempt
	// (seen in authd_ratelimit_backend_errors_total) is void and repeated
	// from a fresh address.
	for attempt := 0; ; attempt++ {
		errsBefore := sumMetric(t, ins, "authd_ratelimit_backend_errors_total")
		rejBefore := sumMetric(t, ins, `authd_ratelimit_rejections_total{scope="ip"}`)
		allowed, limited := sprayShared(t, ins, fmt.Sprintf("127.0.0.%d", 100+attempt), 18, burst)
		if errs := sumMetric(t, ins, "authd_ratelimit_backend_errors_total") - errsBefore; errs > 0 {
			warnings(t, ins)
			if attempt == 2 {
				t.Fatalf("three attempts each met Redis errors or timeouts in the limiter (%v in the last)", errs)
			}
			t.Logf("attempt %d void: %v Redis limiter call(s) failed or timed out, so the in-process fallback decided (%d allowed, %d limited); again from a fresh address", attempt, errs, allowed, limited)
			// Let the instances try Redis again (they skip it for
			// ProbeEvery after a failure).
			time.Sleep(limiter.ProbeEvery)
			continue
		}
		if allowed != burst || limited != 18-burst {
			t.Errorf("%d allowed and %d limited over three instances, want %d and %d (one instance's budget)", allowed, limited, burst, 18-burst)
			warnings(t, ins)
		}
		if rej := sumMetric(t, ins, `authd_ratelimit_rejections_total{scope="ip"}`) - rejBefore; rej != float64(limited) {
			t.Errorf(`authd_ratelimit_rejections_total{scope="ip"} rose by %v over three instances, want %d`, rej, limited)
		}
		break
	}

	// A live session, to see a protected endpoint fail closed without Redis.
	side := clientFrom(t, "127.0.0.8")
	register(t, side, ins[0], "carol@example.com", goodPassword)
	access := login(t, side, ins[1], "carol@example.com", goodPassword).Access

	// Cut Redis. /readyz names it within 2 s on every instance.
	proxy.Stop()
	cut := time.Now()
	for i, in := range ins {
		for {
			code, body := getJSON(t, in.base+"/readyz")
			checks, _ := body["checks"].(map[string]any)
			if code == http.StatusServiceUnavailable && checks["redis"] == "fail" && checks["database"] == "ok" {
				break
			}
			if time.Since(cut) > 2*time.Second {
				t.Fatalf("instance %d: /readyz = %d %v 2 s after Redis went away", i, code, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("every /readyz named redis %v after the cut", time.Since(cut).Round(time.Millisecond))

	// Each instance still limits a fresh client by itself: its burst, then
	// 429, never unlimited. The allowed logins fail closed (the throttle's
	// store is Redis).
	for i, in := range ins {
		hc := clientFrom(t, fmt.Sprintf("127.0.0.%d", 2+i))
		var allowed int
		for j := range burst + 4 {
			r := call(t, hc, http.MethodPost, in.base+"/v1/login", "", creds{"nobody@example.com", "not the password"})
			if r.code == http.StatusTooManyRequests {
				checkLimited(t, fmt.Sprintf("Redis down, instance %d, request %d", i, j), r)
				continue
			}
			allowed++
			if r.code != http.StatusServiceUnavailable || r.problemCode() != "unavailable" {
				t.Errorf("Redis down, instance %d, request %d = %s, want 503 unavailable", i, j, r)
			}
		}
		if allowed != burst {
			t.Errorf("Redis down: instance %d let %d of %d requests from a fresh client through, want its burst %d", i, allowed, burst+4, burst)
		}
		if n := metric(t, in.admin, "authd_ratelimit_backend_errors_total"); n < 1 {
			t.Errorf("instance %d: authd_ratelimit_backend_errors_total = %v with Redis down", i, n)
		}
	}

	// The revocation list cannot be read: fail closed, never a silent pass.
	for i, in := range ins {
		if r := call(t, side, http.MethodGet, in.base+"/v1/me", access, nil); r.code != http.StatusServiceUnavailable || r.problemCode() != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("Redis down: instance %d /v1/me = %s (Retry-After %q), want 503 unavailable with Retry-After", i, r, r.header.Get("Retry-After"))
		}
	}

	// The limiter's fallback warning is rate-limited: at most one per
	// limiter.LogEvery per instance, however many requests fell back.
	for i, in := range ins {
		n := strings.Count(in.logs.String(), `"msg":"limiter: redis rate limit failed; limiting in process"`)
		if most := 1 + int(time.Since(began)/limiter.LogEvery); n < 1 || n > most {
			t.Errorf("instance %d logged the limiter's fallback %d times in %v, want 1 to %d", i, n, time.Since(began).Round(time.Millisecond), most)
		}
	}

	// Redis back: ready again without a restart, and logins reach the
	// throttle's store again.
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for i, in := range ins {
		for {
			code, body := getJSON(t, in.base+"/readyz")
			if code == http.StatusOK {
				break
			}
			if time.Since(back) > 10*time.Second {
				t.Fatalf("instance %d: /readyz = %d %v 10 s after Redis came back", i, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("every /readyz was 200 again %v after Redis came back", time.Since(back).Round(time.Millisecond))
	for i, in := range ins {
		// A 503 may still come while the client reconnects: poll, bounded.
		hc := clientFrom(t, fmt.Sprintf("127.0.0.%d", 5+i))
		for {
			r := call(t, hc, http.MethodPost, in.base+"/v1/login", "", creds{"nobody@example.com", "not the password"})
			if r.code == http.StatusUnauthorized {
				break
			}
			if r.code != http.StatusServiceUnavailable || time.Since(back) > 10*time.Second {
				t.Fatalf("instance %d: login after Redis came back = %s, want 401", i, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if r := call(t, side, http.MethodGet, in.base+"/v1/me", access, nil); r.code != http.StatusOK {
			t.Errorf("instance %d: /v1/me after Redis came back = %s, want 200", i, r)
		}
	}
	stopAll(t, ins)
}

// sprayShared sends n failed logins (unknown emails, each its own) from
// source address ip round-robin over ins, checks every answer and returns
// how many were let through and how many refused.
func sprayShared(t *testing.T, ins []*instance, ip string, n, burst int) (allowed, limited int) {
	t.Helper()
	hc := clientFrom(t, ip)
	began := time.Now()
	for i := range n {
		in := ins[i%len(ins)]
		r := call(t, hc, http.MethodPost, in.base+"/v1/login", "",
			creds{fmt.Sprintf("nobody%d@example.com", i), "not the password"})
		if r.header.Get("RateLimit-Limit") != strconv.Itoa(burst) || r.header.Get("RateLimit-Remaining") == "" || r.header.Get("RateLimit-Reset") == "" {
			t.Errorf("%s request %d: RateLimit headers %q %q %q", ip, i,
				r.header.Get("RateLimit-Limit"), r.header.Get("RateLimit-Remaining"), r.header.Get("RateLimit-Reset"))
		}
		if r.code != http.StatusTooManyRequests {
			allowed++
			if r.code != http.StatusUnauthorized || r.problemCode() != "invalid_credentials" {
				t.Errorf("%s request %d = %s, want 401 invalid_credentials", ip, i, r)
			}
			continue
		}
		limited++
		checkLimited(t, fmt.Sprintf("%s request %d", ip, i), r)
	}
	if elapsed := time.Since(began); elapsed >= 10*time.Second {
		t.Logf("the %d requests took %v: a token may have refilled", n, elapsed)
	}
	return allowed, limited
}

// sumMetric adds up series over every instance's /metrics.
func sumMetric(t *testing.T, ins []*instance, series string) float64 {
	t.Helper()
	var sum float64
	for _, in := range ins {
		sum += metric(t, in.admin, series)
	}
	return sum
}

// warnings logs the instances' warnings and errors, to explain a failure.
func warnings(t *testing.T, ins []*instance) {
	t.Helper()
	for i, in := range ins {
		for line := range strings.SplitSeq(in.logs.String(), "\n") {
			if strings.Contains(line, `"level":"WARN"`) && !strings.Contains(line, "AUTHD_SECRET_KEY") || strings.Contains(line, `"level":"ERROR"`) {
				t.Logf("instance %d: %s", i, line)
			}
		}
	}
}

// checkLimited requires r to be a 429 rate_limited with Retry-After and the
// RateLimit fields, Retry-After not earlier than RateLimit-Reset.
func checkLimited(t *testing.T, what string, r reply) {
	t.Helper()
	if r.code != http.StatusTooManyRequests || r.problemCode() != "rate_limited" {
		t.Errorf("%s = %s, want 429 rate_limited", what, r)
		return
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("%s: Retry-After %q, want whole seconds ≥ 1", what, r.header.Get("Retry-After"))
	}
	reset, err := strconv.Atoi(r.header.Get("RateLimit-Reset"))
	if err != nil || reset < 0 || r.header.Get("RateLimit-Limit") == "" || r.header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("%s: RateLimit headers %q %q %q", what,
			r.header.Get("RateLimit-Limit"), r.header.Get("RateLimit-Remaining"), r.header.Get("RateLimit-Reset"))
	} else if ra < reset {
		t.Errorf("%s: Retry-After %d before RateLimit-Reset %d", what, ra, reset)
	}
}

// TestAccountThrottle: failed logins from many addresses against one email,
// existing or not, end in the same 429; the window expires by itself and a
// success resets the count. Run with in-process state and with Redis.
func TestAccountThrottle(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			if backend == "redis" {
				env = clusterEnv(t, redistest.URL(t))
			}
			// The per-client limiter must not get in the way.
			env["AUTHD_RATE_LIMIT_BURST"] = "1000"
			// Windows of a tenth of a second, not seconds: the test waits
			// them out.
			env["AUTHD_ACCOUNT_THROTTLE_BASE_DELAY"] = "100ms"
			env["AUTHD_ACCOUNT_THROTTLE_MAX_DELAY"] = "1s"
			in := start(t, env)
			testAccountThrottle(t, in)
			if err := in.stop(t); err != nil {
				t.Errorf("run returned %v after a clean shutdown\nlogs:\n%s", err, in.logs)
			}
		})
	}
}

func testAccountThrottle(t *testing.T, in *instance) {
	const victim, ghost = "victim@example.com", "ghost@example.com"
	local := clientFrom(t, "127.0.0.1")
	register(t, local, in, victim, goodPassword)

	clients := make([]*http.Client, 20)
	for i := range clients {
		clients[i] = clientFrom(t, fmt.Sprintf("127.0.0.%d", 10+i))
	}
	// spray sends one wrong password for email from each address and
	// returns the answers.
	spray := func(email string) []reply {
		out := make([]reply, len(clients))
		for i, hc := range clients {
			out[i] = call(t, hc, http.MethodPost, in.base+"/v1/login", "", creds{email, "wrong password " + strconv.Itoa(i)})
		}
		return out
	}
	var last429 [2]reply
	for k, email := range []string{victim, ghost} {
		rs := spray(email)
		var codes []int
		for _, r := range rs {
			codes = append(codes, r.code)
		}
		// The first failures are free (five, then one more that opens the
		// first window); the spray must end throttled.
		for i, r := range rs[:6] {
			if r.code != http.StatusUnauthorized || r.problemCode() != "invalid_credentials" {
				t.Errorf("%s: attempt %d = %s, want 401 invalid_credentials", email, i, r)
			}
		}
		for i, r := range rs {
			if r.code == http.StatusTooManyRequests {
				if r.problemCode() != "rate_limited" || r.header.Get("Retry-After") == "" {
					t.Errorf("%s: attempt %d = %s (Retry-After %q), want 429 rate_limited with Retry-After", email, i, r, r.header.Get("Retry-After"))
				}
			} else if r.code != http.StatusUnauthorized {
				t.Errorf("%s: attempt %d = %s, want 401 or 429", email, i, r)
			}
		}
		end := rs[len(rs)-1]
		if end.code != http.StatusTooManyRequests {
			t.Fatalf("%s: 20 failed logins from 20 addresses answered %v, want them to end in 429", email, codes)
		}
		t.Logf("%s: %v", email, codes)
		last429[k] = end
	}
	if !bytes.Equal(last429[0].body, last429[1].body) {
		t.Errorf("429 bodies differ for an existing and an unknown email:\n%s\n%s", last429[0].body, last429[1].body)
	}
	if n := metric(t, in.admin, `authd_ratelimit_rejections_total{scope="account"}`); n < 2 {
		t.Errorf(`authd_ratelimit_rejections_total{scope="account"} = %v after two throttled sprays`, n)
	}

	// The window ends by itself: the owner's password works once it has
	// passed. The windows are configured short (at most 1 s): poll them out,
	// within a bound, instead of sleeping the whole seconds of Retry-After.
	owner := clients[0]
	waited := time.Now()
	for {
		r := call(t, owner, http.MethodPost, in.base+"/v1/login", "", creds{victim, goodPassword})
		if r.code == http.StatusOK {
			break
		}
		if r.code != http.StatusTooManyRequests {
			t.Fatalf("owner's login = %s, want 200 (or 429 while the window lasts)", r)
		}
		if wait, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || wait < 1 {
			t.Fatalf("owner's login: 429 with Retry-After %q", r.header.Get("Retry-After"))
		}
		if time.Since(waited) > 5*time.Second {
			t.Fatalf("the window on %s outlasts 5 s with AUTHD_ACCOUNT_THROTTLE_MAX_DELAY=1s", victim)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the owner logged in %v after the spray", time.Since(waited).Round(time.Millisecond))
	// A success resets: the next wrong password is a plain 401 again.
	if r := call(t, owner, http.MethodPost, in.base+"/v1/login", "", creds{victim, "wrong again"}); r.code != http.StatusUnauthorized || r.problemCode() != "invalid_credentials" {
		t.Errorf("wrong password after a success = %s, want 401 invalid_credentials", r)
	}
}

// metric returns the value of the series named exactly series (name and
// labels as printed) on admin's /metrics, 0 if absent.
func metric(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}
