package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetryPolicyPause(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		p          retryPolicy
		status     int
		retryAfter string
		lo, hi     time.Duration // want lo <= pause <= hi
	}{
		{"ignore: never pauses", retryPolicy{}, 503, "2", 0, 0},
		{"503 without jitter", retryPolicy{honour: true}, 503, "2", 2 * time.Second, 2 * time.Second},
		{"503 with jitter", retryPolicy{honour: true, jitter: 0.5}, 503, "2", 2 * time.Second, 3 * time.Second},
		{"429", retryPolicy{honour: true}, 429, "7", 7 * time.Second, 7 * time.Second},
		{"missing header: one second", retryPolicy{honour: true}, 503, "", time.Second, time.Second},
		{"HTTP date", retryPolicy{honour: true}, 503, now.Add(4 * time.Second).Format(http.TimeFormat), 4 * time.Second, 4 * time.Second},
		{"200 does not pause", retryPolicy{honour: true, jitter: 0.5}, 200, "", 0, 0},
		{"401 does not pause", retryPolicy{honour: true, jitter: 0.5}, 401, "3", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, 2))
			for range 100 {
				if d := tt.p.pause(tt.status, tt.retryAfter, now, rng); d < tt.lo || d > tt.hi {
					t.Fatalf("pause %v, want in [%v, %v]", d, tt.lo, tt.hi)
				}
			}
		})
	}
}

// refuser answers every request 503 with Retry-After: 2, or 200 when ok.
type refuser struct {
	ok bool
	n  atomic.Int64
}

func (f *refuser) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.n.Add(1)
	if f.ok {
		w.Write([]byte("{}"))
		return
	}
	w.Header().Set("Retry-After", "2")
	w.WriteHeader(http.StatusServiceUnavailable)
}

// Honouring workers pause after every refusal for Retry-After stretched by
// the jitter, and not after an answer; ignoring workers never pause.
func TestLoadHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		honour, ok bool
		wantPauses int64
	}{
		{"honour: a pause after each 503", true, false, 40},
		{"honour: no pause after 200", true, true, 0},
		{"ignore: no pause", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(&refuser{ok: tt.ok})
			t.Cleanup(srv.Close)
			w := &waits{}
			l := newTestLoad(t, srv.URL, 4, nil)
			l.maxRequests = 40
			l.retry = retryPolicy{honour: tt.honour, jitter: 0.5, wait: w.wait}
			res := l.run(t.Context())

			if res.sent != 40 || res.completed != 40 {
				t.Fatalf("sent %d, completed %d", res.sent, res.completed)
			}
			if res.pauses != tt.wantPauses || int64(len(w.d)) != tt.wantPauses {
				t.Fatalf("pauses %d, waits %d, want %d", res.pauses, len(w.d), tt.wantPauses)
			}
			var sum time.Duration
			for _, d := range w.d {
				if d < 2*time.Second || d >= 3*time.Second {
					t.Errorf("pause %v, want in [2s, 3s)", d)
				}
				sum += d
			}
			if res.paused != sum {
				t.Errorf("recorded %v paused, waits add up to %v", res.paused, sum)
			}
			rep := newReport("t", http.MethodPost, srv.URL, l, res)
			wantMode := retryIgnore
			if tt.honour {
				wantMode = retryHonour
			}
			if rep.RetryMode != wantMode || rep.Pauses != tt.wantPauses {
				t.Errorf("report mode %q pauses %d", rep.RetryMode, rep.Pauses)
			}
		})
	}
}

// A pause is bounded by the run: told to come back in an hour, the workers
// stop when the duration ends, without a second request.
func TestLoadRetryAfterPauseEndsWithTheRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	l := newTestLoad(t, srv.URL, 3, nil)
	l.duration = 100 * time.Millisecond
	l.retry = retryPolicy{honour: true, wait: sleepCtx}
	start := time.Now()
	res := l.run(t.Context())
	if el := time.Since(start); el > 30*time.Second {
		t.Fatalf("run took %v", el)
	}
	if res.sent != 3 || res.completed != 3 || res.pauses != 3 || res.paused != 3*time.Hour {
		t.Fatalf("sent %d completed %d pauses %d paused %v", res.sent, res.completed, res.pauses, res.paused)
	}
}

func TestRunRetryAfterFlag(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(&refuser{})
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"-retry-after", "sometimes"}, 2},
		{[]string{"-retry-after", "honour", "-jitter", "-1"}, 2},
		{[]string{"-retry-after", "honour", "-requests", "8", "-json"}, 0},
	} {
		var stdout, stderr bytes.Buffer
		w := &waits{}
		args := append([]string{"get", "-url", srv.URL, "-concurrency", "2", "-duration", "1m"}, tt.args...)
		if code := runWith(t.Context(), testEnv(w), args, &stdout, &stderr); code != tt.code {
			t.Fatalf("%v: exit %d, want %d; stderr %s", tt.args, code, tt.code, stderr.String())
		}
		if tt.code != 0 {
			continue
		}
		var rep report
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.RetryMode != retryHonour || rep.Pauses != 8 || rep.PausedMean < 2 || len(w.d) != 8 {
			t.Errorf("mode %q pauses %d mean %v waits %d", rep.RetryMode, rep.Pauses, rep.PausedMean, len(w.d))
		}
	}
}
