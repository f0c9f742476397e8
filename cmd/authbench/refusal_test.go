package main

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// The whole refusal-vs-bare command against a server whose pool is always
// full: the flood is all 503, the keepers honour Retry-After, each login is
// for a fresh email, and the ratio is the 503 rate over the bare rate.
func TestRunRefusalVsBare(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	emails := map[string]int{} // mu guards emails
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/login", func(w http.ResponseWriter, r *http.Request) {
		var c credentials
		json.NewDecoder(r.Body).Decode(&c)
		mu.Lock()
		emails[c.Email]++
		mu.Unlock()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	var stdout, stderr bytes.Buffer
	w := &waits{}
	code := runWith(t.Context(), testEnv(w), []string{"refusal-vs-bare", "-url", srv.URL,
		"-concurrency", "4", "-keepers", "2", "-duration", "1m", "-requests", "100", "-run-id", "r1", "-json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	var cmp refusalComparison
	if err := json.Unmarshal(stdout.Bytes(), &cmp); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if cmp.Refusals.Completed != 100 || cmp.Bare.Completed != 100 || cmp.Refusals.RetryMode != retryIgnore {
		t.Fatalf("refusals %+v, bare %+v", cmp.Refusals, cmp.Bare)
	}
	if _, ok := cpuTime(); ok && (cmp.Refusals.ClientCPU <= 0 || cmp.Bare.ClientCores <= 0) {
		t.Errorf("client CPU %v s, %v cores: not measured", cmp.Refusals.ClientCPU, cmp.Bare.ClientCores)
	}
	if cmp.RefusalRate <= 0 || cmp.BareRate <= 0 || math.Abs(cmp.Ratio-cmp.RefusalRate/cmp.BareRate) > 1e-9 {
		t.Errorf("rates %v / %v, ratio %v", cmp.RefusalRate, cmp.BareRate, cmp.Ratio)
	}
	for _, k := range []*report{cmp.RefusalKeepers, cmp.BareKeepers} {
		if k == nil || k.RetryMode != retryHonour || k.Completed == 0 || k.Pauses != k.Completed {
			t.Fatalf("keepers %+v", k)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for e, n := range emails {
		if n != 1 || !strings.HasPrefix(e, "bench-r1") {
			t.Fatalf("email %q used %d times", e, n)
		}
	}
}
