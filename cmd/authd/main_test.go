package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authd/authd/internal/app/apptest"
	"github.com/authd/authd/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// instance is authd started by run in this process.
type instance struct {
	base, admin string
	logs        *apptest.Logs
	cancel      context.CancelFunc
	done        chan error
	vars        map[string]string
	// ownAddrs: the listen addresses were picked by launch, which may pick
	// them again when another process took one first.
	ownAddrs bool
}

// start runs authd with env (on top of test defaults) and waits for /healthz.
func start(t *testing.T, env map[string]string) *instance {
	t.Helper()
	in := launch(t, env)
	in.waitHealthy(t)
	return in
}

// launch runs authd with env (on top of test defaults) without waiting for
// it to serve, so that several instances can start at once; the test stops it
// when it ends.
func launch(t *testing.T, env map[string]string) *instance {
	t.Helper()
	dir := t.TempDir()
	vars := map[string]string{
		"AUTHD_DATABASE_URL": "sqlite:" + filepath.Join(dir, "authd.db"),
		"AUTHD_LOG_FORMAT":   "json",
		"AUTHD_HASH_WORKERS": "2",
		// No drain delay: the tests that stop instances would each wait it.
		"AUTHD_SHUTDOWN_DRAIN_DELAY": "0",
	}
	for k, v := range env {
		vars[k] = v
	}
	in := &instance{vars: vars}
	if vars["AUTHD_HTTP_ADDR"] == "" && vars["AUTHD_ADMIN_ADDR"] == "" {
		in.ownAddrs = true
		in.pickAddrs(t)
	}
	in.begin()
	t.Cleanup(func() {
		if in.cancel != nil {
			in.stop(t)
		}
	})
	return in
}

// pickAddrs chooses free loopback addresses for both listeners.
func (in *instance) pickAddrs(t *testing.T) {
	t.Helper()
	in.vars["AUTHD_HTTP_ADDR"], in.vars["AUTHD_ADMIN_ADDR"] = freeAddr(t), freeAddr(t)
}

// begin starts run in the background with in's settings.
func (in *instance) begin() {
	ctx, cancel := context.WithCancel(context.Background())
	vars := maps.Clone(in.vars)
	in.base, in.admin = "http://"+vars["AUTHD_HTTP_ADDR"], "http://"+vars["AUTHD_ADMIN_ADDR"]
	in.logs, in.cancel, in.done = &apptest.Logs{}, cancel, make(chan error, 1)
	go func() { in.done <- run(ctx, nil, func(k string) string { return vars[k] }, io.Discard, in.logs) }()
}

// waitHealthy waits until in answers /healthz, failing the test if run
// returns first or it takes over 20 s. A port that freeAddr found free can be
// taken by another process (an outgoing connection's ephemeral port) before
// run listens on it: then the instance starts again on other ports.
func (in *instance) waitHealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	retries := 3
	for {
		resp, err := http.Get(in.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-in.done:
			if in.ownAddrs && retries > 0 && errors.Is(err, syscall.EADDRINUSE) {
				retries--
				in.cancel()
				in.pickAddrs(t)
				in.begin()
				continue
			}
			t.Fatalf("run returned before serving: %v\nlogs:\n%s", err, in.logs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("authd did not become healthy\nlogs:\n%s", in.logs)
		}
	}
}

// stop cancels run's context (as SIGTERM does) and returns run's error.
func (in *instance) stop(t *testing.T) error {
	t.Helper()
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return after cancel\nlogs:\n%s", in.logs)
		return nil
	}
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
	return resp.StatusCode, m
}

func TestHealthAndReadinessOnSQLite(t *testing.T) {
	t.Parallel()
	in := start(t, nil)
	if code, body := getJSON(t, in.base+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Errorf("/healthz = %d %v", code, body)
	}
	code, body := getJSON(t, in.base+"/readyz")
	if code != 200 || body["status"] != "ok" || body["checks"].(map[string]any)["database"] != "ok" {
		t.Errorf("/readyz = %d %v", code, body)
	}
	// Admin endpoints live only on the admin listener.
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		resp, err := http.Get(in.base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("public %s = %d, want 404", p, resp.StatusCode)
		}
		resp, err = http.Get(in.admin + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("admin %s = %d", p, resp.StatusCode)
		}
		if p == "/metrics" {
			for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "authd_http_requests_total", "authd_hash_jobs_total", "authd_ratelimit_rejections_total", "authd_logins_total", "authd_tokens_issued_total"} {
				if !strings.Contains(string(b), name) {
					t.Errorf("/metrics lacks %s", name)
				}
			}
		}
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run returned %v after a clean shutdown", err)
	}
}

func TestBadSettingExits2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ env, value string }{
		{"AUTHD_HASH_WORKERS", "abc"},
		{"AUTHD_DATABASE_URL", "mysql://nope"},
		{"AUTHD_ACCESS_TOKEN_TTL", "-1m"},
		// The Courier's providers: incomplete or unsafe settings are refused.
		{"AUTHD_SMTP_URL", "smtp://mail:587"}, // without AUTHD_MAIL_FROM
		{"AUTHD_MAIL_FROM", "authd@example.com"},
		{"AUTHD_SMS_WEBHOOK_URL", "http://sms.example.com"},
		{"AUTHD_NOTIFY_TIMEOUT", "10ms"},
	} {
		err := run(context.Background(), nil, func(k string) string {
			if k == tc.env {
				return tc.value
			}
			return ""
		}, io.Discard, io.Discard)
		var ce *config.Error
		if !errors.As(err, &ce) || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.env) {
			t.Errorf("%s=%s: err = %v (exit %d), want a config error naming it, exit 2", tc.env, tc.value, err, exitCode(err))
		}
	}
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, io.Discard); exitCode(err) != 0 {
		t.Errorf("-h: exit %d", exitCode(err))
	}
}

// TestDefaultsFollowTheListener checks that without AUTHD_PUBLIC_URL the
// issuer and discovery's links name the address authd listens on, and that
// the issuer and audience in use are logged once at start.
func TestDefaultsFollowTheListener(t *testing.T) {
	t.Parallel()
	in := start(t, nil) // AUTHD_HTTP_ADDR is 127.0.0.1:port
	code, body := getJSON(t, in.base+"/.well-known/openid-configuration")
	if code != 200 || body["issuer"] != in.base || body["jwks_uri"] != in.base+"/.well-known/jwks.json" {
		t.Errorf("discovery = %d issuer %v jwks_uri %v, want them at %s", code, body["issuer"], body["jwks_uri"], in.base)
	}
	// The line follows the start of the listeners, which may already have
	// answered /healthz: wait for it.
	var started []map[string]any
	for deadline := time.Now().Add(5 * time.Second); len(started) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(in.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "authd started" {
				started = append(started, m)
			}
		}
	}
	if len(started) != 1 || started[0]["issuer"] != in.base || started[0]["audience"] != "authd" || started[0]["public_url"] != in.base {
		t.Errorf("start log lines %v, want one with issuer and public_url %s, audience authd", started, in.base)
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	t.Parallel()
	// Slow hashes (about a quarter second each) keep the requests in flight;
	// under -race the last may wait seconds, past the default deadline.
	in := start(t, map[string]string{"AUTHD_SHUTDOWN_TIMEOUT": "15s", "AUTHD_ARGON2_ITERATIONS": "16", "AUTHD_REQUEST_TIMEOUT": "20s"})
	const n = 6
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"email":"drain%d@example.com","password":"correct horse battery staple"}`, i)
			resp, err := http.Post(in.base+"/v1/register", "application/json", strings.NewReader(body))
			if err != nil {
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	// Wait until every request is in the hash pool, then ask for shutdown.
	deadline := time.Now().Add(10 * time.Second)
	for hashJobs(t, in.admin) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	started := time.Now()
	err := in.stop(t)
	wg.Wait()
	close(codes)
	if err != nil {
		t.Fatalf("run returned %v", err)
	}
	if d := time.Since(started); d > 15*time.Second {
		t.Errorf("shutdown took %v, over the budget", d)
	}
	for c := range codes {
		if c != http.StatusCreated {
			t.Errorf("an in-flight request got %d, want 201", c)
		}
	}
	if !strings.Contains(in.logs.String(), "authd stopped") {
		t.Errorf("no clean-stop line in the logs")
	}
}

// hashJobs returns the hash jobs running or queued, from the admin metrics.
func hashJobs(t *testing.T, admin string) int {
	t.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		for _, name := range []string{"authd_hash_workers_busy ", "authd_hash_queue_depth "} {
			if v, ok := strings.CutPrefix(line, name); ok {
				var f float64
				fmt.Sscan(v, &f)
				n += int(f)
			}
		}
	}
	return n
}

// TestLogoutSurvivesRestart: a logout answered 204 stays a logout after a
// restart that empties the in-process state.
func TestLogoutSurvivesRestart(t *testing.T) {
	t.Parallel()
	// The restart listens elsewhere: the issuer must not follow it.
	env := map[string]string{"AUTHD_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "authd.db"), "AUTHD_PUBLIC_URL": "http://authd.test"}
	in := start(t, env)
	post := func(base, path, body, bearer string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	creds := `{"email":"restart@example.com","password":"correct horse battery staple"}`
	if r := post(in.base, "/v1/register", creds, ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d", r.StatusCode)
	}
	r := post(in.base, "/v1/login", creds, "")
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(r.Body).Decode(&pair); err != nil || pair.AccessToken == "" {
		t.Fatalf("login: %d %v", r.StatusCode, err)
	}
	if r := post(in.base, "/v1/logout", "", pair.AccessToken); r.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}

	again := start(t, env)
	req, _ := http.NewRequest(http.MethodGet, again.base+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != http.StatusUnauthorized || p.Code != "token_revoked" {
		t.Errorf("logged-out token after restart: %d %q, want 401 token_revoked", resp.StatusCode, p.Code)
	}
}

// TestPasswordMinLength: AUTHD_PASSWORD_MIN_LENGTH reaches registration
// (default 15, NIST's minimum for a single factor), and a password holding
// the email's local part is refused whatever its length.
func TestPasswordMinLength(t *testing.T) {
	t.Parallel()
	register := func(t *testing.T, in *instance, email, pw string) int {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"email": email, "password": pw})
		resp, err := http.Post(in.base+"/v1/register", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		setting  string
		pw       string
		wantCode int
	}{
		{"", "apollo 11 crew", 400},              // 14 < the default 15
		{"", "apollo 11 crew!", 201},             // 15
		{"20", "apollo 11 crew, 1969", 201},      // 20
		{"20", "apollo 11 crew 1969", 400},       // 19
		{"8", "margaret.hamilton was here", 400}, // the local part
		{"8", "lunar module", 201},               // 12 is enough at 8
	} {
		env := map[string]string{}
		if tc.setting != "" {
			env["AUTHD_PASSWORD_MIN_LENGTH"] = tc.setting
		}
		in := start(t, env)
		if code := register(t, in, "margaret.hamilton@example.com", tc.pw); code != tc.wantCode {
			t.Errorf("AUTHD_PASSWORD_MIN_LENGTH=%q: register with %d characters answered %d, want %d", tc.setting, len(tc.pw), code, tc.wantCode)
		}
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}
	}
}
