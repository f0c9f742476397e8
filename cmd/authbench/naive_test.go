package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Tiny Argon2 parameters keep the baseline fast in tests.
var testParams = argon2Params{memoryKiB: 64, iterations: 1, parallelism: 1}

func TestNaiveServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(newNaiveServer(testParams).handler())
	t.Cleanup(srv.Close)
	post := func(path, body string) int {
		t.Helper()
		resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	steps := []struct {
		name, path, body string
		want             int
	}{
		{"register", "/v1/register", `{"email":"A@example.com","password":"password1"}`, 201},
		{"duplicate", "/v1/register", `{"email":"a@example.com","password":"other"}`, 409},
		{"login", "/v1/login", `{"email":"a@example.com","password":"password1"}`, 200},
		{"wrong password", "/v1/login", `{"email":"a@example.com","password":"password2"}`, 401},
		{"unknown email", "/v1/login", `{"email":"b@example.com","password":"password1"}`, 401},
		{"malformed", "/v1/login", `{"email":`, 400},
	}
	for _, s := range steps { // in order: each step depends on the previous
		if got := post(s.path, s.body); got != s.want {
			t.Fatalf("%s: status %d, want %d", s.name, got, s.want)
		}
	}

	resp, err := srv.Client().Get(srv.URL + "/debug/rss")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r rssReport
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.VmRSSBytes <= 0 || r.VmHWMBytes < r.VmRSSBytes {
		t.Fatalf("rss %+v", r)
	}
}

func TestParseProcStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     rssReport
		ok       bool
	}{
		{"both", "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads: 3\n", rssReport{VmRSSBytes: 1 << 20, VmHWMBytes: 2 << 20}, true},
		{"missing", "VmRSS:\t1 kB\n", rssReport{}, false},
		{"bad unit", "VmRSS:\t1 MB\nVmHWM:\t1 kB\n", rssReport{}, false},
		{"bad number", "VmRSS:\tx kB\nVmHWM:\t1 kB\n", rssReport{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseProcStatus(strings.NewReader(tt.in))
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Fatalf("got %+v, %v; want %+v ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

// serveNaive stops when its context is cancelled and leaves nothing running
// (goleak checks at the end of the package).
func TestServeNaiveLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		errc <- serveNaive(ctx, "127.0.0.1:0", testParams, slog.New(slog.NewTextHandler(&logs, nil)), func(a net.Addr) { addrc <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatal(err)
	}
	c := newClient(1)
	defer closeClient(c)
	resp, err := c.Get("http://" + addr.String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// logs is read only after the server goroutine has returned.
	if !strings.Contains(logs.String(), "naive baseline listening") {
		t.Errorf("logs: %s", logs.String())
	}
}
