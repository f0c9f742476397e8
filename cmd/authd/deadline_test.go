package main

// End-to-end tests of the request deadline: PostgreSQL and Redis behind an
// in-process toxiproxy that adds latency, and authd answering 503 within
// its deadline, then 200 again with its goroutines back to where they were
// once the latency is gone.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/authd/authd/internal/postgres/pgtest"
	"github.com/authd/authd/internal/redis/redistest"
)

// latencyProxy is a toxiproxy proxy on loopback in front of one server,
// run in the test process (no toxiproxy daemon, no API port).
type latencyProxy struct {
	p *toxiproxy.Proxy
}

// newLatencyProxy listens on 127.0.0.1:0 and forwards to target
// (host:port) until the test ends.
func newLatencyProxy(t *testing.T, name, target string) *latencyProxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", target)
	if err := srv.Collection.Add(p, true); err != nil {
		t.Fatalf("toxiproxy %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := srv.Collection.Clear(); err != nil {
			t.Errorf("toxiproxy %s: stop: %v", name, err)
		}
	})
	return &latencyProxy{p: p}
}

// addr is the address clients dial.
func (lp *latencyProxy) addr() string { return lp.p.Listen }

// slow delays everything the server sends by d, on open connections and
// new ones alike.
func (lp *latencyProxy) slow(t *testing.T, d time.Duration) {
	t.Helper()
	toxic := fmt.Sprintf(`{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":%d}}`, d.Milliseconds())
	if _, err := lp.p.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
		t.Fatalf("toxiproxy %s: add latency: %v", lp.p.Name, err)
	}
}

// heal removes the latency; data held by it is delivered at once.
func (lp *latencyProxy) heal(t *testing.T) {
	t.Helper()
	if err := lp.p.Toxics.RemoveToxic(context.Background(), "slow"); err != nil {
		t.Fatalf("toxiproxy %s: remove latency: %v", lp.p.Name, err)
	}
}

// behind returns rawURL with its host replaced by the proxy's address.
func (lp *latencyProxy) behind(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = lp.addr()
	return u.String()
}

// hostOf returns rawURL's host:port.
func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// authdGoroutines counts the goroutines of the process but toxiproxy's own
// (two or more per proxied connection, however many the pools hold).
func authdGoroutines() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	n := 0
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.TrimSpace(g) == "" || strings.Contains(g, "Shopify/toxiproxy") || strings.Contains(g, "tomb.v1") {
			continue
		}
		n++
	}
	return n
}

// TestDeadlineOnSlowDependencies: with PostgreSQL, then Redis, answering 5 s
// late, eight parallel GET /v1/me and a login each get 503 unavailable with
// Retry-After within the request deadline and a margin; once the latency is
// gone they get 200 again and the goroutines return to their number before.
//
// It does not run in parallel: it counts the process's goroutines.
func TestDeadlineOnSlowDependencies(t *testing.T) {
	const (
		timeout = 2 * time.Second
		margin  = 1500 * time.Millisecond // for a loaded machine under -race; before the fix: 5 to 25 s
		latency = 5 * time.Second
	)
	pgURL := pgtest.SchemaURL(t)
	rawRedis := redistest.URL(t)
	pg := newLatencyProxy(t, "postgres", hostOf(t, pgURL))
	rd := newLatencyProxy(t, "redis", hostOf(t, rawRedis))
	env := clusterEnv(t, rd.behind(t, rawRedis))
	env["AUTHD_DATABASE_URL"] = pg.behind(t, pgURL)
	env["AUTHD_REQUEST_TIMEOUT"] = timeout.String()
	env["AUTHD_HASH_MAX_WAIT"] = "500ms"
	in := start(t, env)

	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	register(t, hc, in, "slow@example.com", goodPassword)
	access := login(t, hc, in, "slow@example.com", goodPassword).Access
	me := func() reply { return call(t, hc, http.MethodGet, in.base+"/v1/me", access, nil) }
	if r := me(); r.code != http.StatusOK {
		t.Fatalf("/v1/me before any latency = %s", r)
	}
	tr.CloseIdleConnections()
	baseline := waitGoroutines(t, -1)

	// unavailable requires a fast 503 unavailable with Retry-After.
	var (
		mu      sync.Mutex
		slowest time.Duration
	)
	unavailable := func(what string, r reply, took time.Duration) {
		t.Helper()
		mu.Lock()
		slowest = max(slowest, took)
		mu.Unlock()
		if r.code != http.StatusServiceUnavailable || r.problemCode() != "unavailable" || r.header.Get("Retry-After") == "" ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s = %s (Retry-After %q), want 503 unavailable problem+json with Retry-After", what, r, r.header.Get("Retry-After"))
		}
		if took > timeout+margin {
			t.Errorf("%s took %v, want at most the deadline %v + %v", what, took.Round(time.Millisecond), timeout, margin)
		}
	}
	for _, dep := range []struct {
		name  string
		proxy *latencyProxy
	}{{"postgres", pg}, {"redis", rd}} {
		t.Run(dep.name, func(t *testing.T) {
			dep.proxy.slow(t, latency)
			slowest = 0
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					began := time.Now()
					r := me()
					unavailable(fmt.Sprintf("%s +%v: GET /v1/me #%d", dep.name, latency, i), r, time.Since(began))
				})
			}
			wg.Wait()
			began := time.Now()
			r := call(t, hc, http.MethodPost, in.base+"/v1/login", "", creds{"slow@example.com", goodPassword})
			unavailable(fmt.Sprintf("%s +%v: POST /v1/login", dep.name, latency), r, time.Since(began))
			t.Logf("%s +%v: the slowest of 8 GET /v1/me and a login answered in %v (deadline %v)", dep.name, latency, slowest.Round(time.Millisecond), timeout)

			dep.proxy.heal(t)
			deadline := time.Now().Add(15 * time.Second)
			for {
				r := me()
				if r.code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s healed 15 s ago: /v1/me = %s", dep.name, r)
				}
				time.Sleep(100 * time.Millisecond)
			}
			login(t, hc, in, "slow@example.com", goodPassword)
			tr.CloseIdleConnections()
			waitGoroutines(t, baseline+1) // + this subtest's own
		})
	}
	if err := in.stop(t); err != nil {
		t.Errorf("run returned %v after a clean shutdown", err)
	}
}

// waitGoroutines waits until the goroutines but toxiproxy's are at most
// want and returns their number; with want < 0 it waits until the number
// holds still for a quarter second. It fails the test after 15 s.
func waitGoroutines(t *testing.T, want int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last, still := authdGoroutines(), 0
	for {
		time.Sleep(50 * time.Millisecond)
		n := authdGoroutines()
		switch {
		case want >= 0 && n <= want:
			return n
		case want < 0 && n == last:
			if still++; still == 5 {
				return n
			}
		default:
			still = 0
		}
		last = n
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("goroutines: %d, want at most %d (15 s after healing)\n%s", n, want, buf.String())
		}
	}
}
