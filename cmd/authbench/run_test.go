package main

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testEnv(w *waits) *environment {
	return &environment{now: time.Now, wait: w.wait}
}

// The whole login command against a fake authd: seeding (with a 503 retried),
// a mix of right and wrong passwords, the admin scrape deltas and RSS peak.
func TestRunLoginJSON(t *testing.T) {
	t.Parallel()
	const pw = "a fine benchmark password"
	fake := newFakeAuthd(pw)
	fake.refuse["bench-t1-3@example.com"] = 1
	pub := httptest.NewServer(fake.public())
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(fake.admin())
	t.Cleanup(adm.Close)

	var stdout, stderr bytes.Buffer
	w := &waits{}
	code := runWith(t.Context(), testEnv(w), []string{"login",
		"-url", pub.URL, "-admin", adm.URL, "-users", "10", "-run-id", "t1", "-password", pw,
		"-concurrency", "4", "-duration", "1m", "-requests", "200", "-wrong-frac", "0.5",
		"-sample-interval", "10ms", "-json", "-seed", "7",
		"-capacity", "20ms", "-memory-kib", "64", "-iterations", "1",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if rep.Seed == nil || rep.Seed.Created != 10 || rep.Seed.Retries != 1 || len(w.d) != 1 {
		t.Fatalf("seed = %+v, waits %v", rep.Seed, w.d)
	}
	if rep.Sent != 200 || rep.Completed != 200 {
		t.Fatalf("sent %d completed %d", rep.Sent, rep.Completed)
	}
	codes := map[int]uint64{}
	for _, s := range rep.ByStatus {
		codes[s.Code] = s.Count
	}
	if codes[200]+codes[401] != 200 || codes[200] == 0 || codes[401] == 0 || len(codes) != 2 {
		t.Fatalf("status counts %v", codes)
	}
	if rep.Server == nil {
		t.Fatal("no server stats")
	}
	deltas := map[string]float64{}
	for _, d := range rep.Server.Deltas {
		deltas[d.Series] = d.Delta
	}
	if deltas[`authd_logins_total{outcome="success"}`] != float64(codes[200]) ||
		deltas[`authd_logins_total{outcome="invalid"}`] != float64(codes[401]) ||
		deltas[`authd_hash_jobs_total{outcome="done"}`] != 200 {
		t.Fatalf("deltas %v, codes %v", deltas, codes)
	}
	if _, ok := deltas[`authd_logins_total{outcome="overloaded"}`]; !ok {
		t.Errorf("zero-delta series missing: %v", deltas)
	}
	if rep.Server.RSSPeakBytes < 60<<20 || rep.Server.RSSSamples < 2 {
		t.Errorf("rss peak %v from %d samples", rep.Server.RSSPeakBytes, rep.Server.RSSSamples)
	}
	if c := rep.Capacity; c == nil || c.Capacity.Hashes == 0 || math.Abs(c.HashedRate-rep.Throughput) > 1e-6*rep.Throughput || c.Ratio <= 0 {
		t.Errorf("saturation = %+v, throughput %v", c, rep.Throughput)
	}
	if strings.Contains(stdout.String()+stderr.String(), pw) {
		t.Error("the password reached the output")
	}
}

func TestRunLoginText(t *testing.T) {
	t.Parallel()
	fake := newFakeAuthd(defaultPassword)
	pub := httptest.NewServer(fake.public())
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(fake.admin())
	t.Cleanup(adm.Close)

	var stdout, stderr bytes.Buffer
	code := runWith(t.Context(), testEnv(&waits{}), []string{"login",
		"-url", pub.URL, "-admin", adm.URL + "/metrics", "-users", "3", "-concurrency", "2", "-duration", "1m",
		"-requests", "30", "-register-frac", "0.3", "-capacity", "10ms", "-memory-kib", "64", "-iterations", "1",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"seed        3 users: 3 created", "sent 30, completed 30", "status  count", " 201 ", " 200 ",
		`authd_logins_total{outcome="success"}`, "resident memory: before", "saturation  hashed answers (200+201+401)",
		"Retry-After seen: none",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+stderr.String(), defaultPassword) {
		t.Error("the password reached the output")
	}
}

func TestRunMeVsBareText(t *testing.T) {
	t.Parallel()
	fake := newFakeAuthd(defaultPassword)
	pub := httptest.NewServer(fake.public())
	t.Cleanup(pub.Close)

	var stdout, stderr bytes.Buffer
	code := runWith(t.Context(), testEnv(&waits{}), []string{"me-vs-bare",
		"-url", pub.URL, "-concurrency", "2", "-duration", "1m", "-requests", "50"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"== me: GET " + pub.URL + "/v1/me", "== bare: GET " + pub.URL + "/healthz", "ratio  GET /v1/me", "sent 50, completed 50"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("unexpected warning: %s", stderr.String())
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		out  string // expected in stdout or stderr
	}{
		{"help lists every command", []string{"-h"}, 0, "me-vs-bare"},
		{"help shows flags", []string{"-h"}, 0, "-seed-concurrency"},
		{"help documents loopback rule", []string{"-h"}, 0, "Only loopback targets are allowed"},
		{"no args", nil, 2, "Commands:"},
		{"unknown command", []string{"flood"}, 2, `unknown command "flood"`},
		{"remote url refused", []string{"login", "-url", "http://192.0.2.7:8080"}, 2, "only loopback targets are allowed"},
		{"remote admin refused", []string{"get", "-admin", "http://example.com:9090"}, 2, "-admin"},
		{"naive on all interfaces refused", []string{"naive", "-addr", ":8181"}, 2, "only loopback"},
		{"bad fractions", []string{"login", "-wrong-frac", "0.7", "-register-frac", "0.5"}, 2, "add up to at most 1"},
		{"bad path", []string{"get", "-path", "http://elsewhere/"}, 2, "-path must start with /"},
		{"stray argument", []string{"get", "extra"}, 2, `unexpected argument "extra"`},
		{"bad flag", []string{"get", "-nope"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := runWith(t.Context(), testEnv(&waits{}), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String()+stderr.String(), tt.out) {
				t.Fatalf("output lacks %q:\nstdout: %s\nstderr: %s", tt.out, stdout.String(), stderr.String())
			}
		})
	}
}
