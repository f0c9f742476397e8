package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAuthd is a stand-in for authd's public and admin listeners, just
// enough for the tool: register, login, /v1/me, /healthz and /metrics.
type fakeAuthd struct {
	mu       sync.Mutex
	users    map[string]string // mu guards all fields
	refuse   map[string]int    // email -> 503 answers still to give on register
	logins   map[string]int    // outcome -> count
	rss      float64
	password string // register answers 400 for anything else
}

func newFakeAuthd(password string) *fakeAuthd {
	return &fakeAuthd{users: map[string]string{}, refuse: map[string]int{}, logins: map[string]int{}, rss: 50 << 20, password: password}
}

func (f *fakeAuthd) public() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/register", func(w http.ResponseWriter, r *http.Request) {
		var c credentials
		json.NewDecoder(r.Body).Decode(&c)
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case f.refuse[c.Email] > 0:
			f.refuse[c.Email]--
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
		case c.Password != f.password:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"status":400,"code":"validation_failed","detail":"password is too common"}`))
		case f.users[c.Email] != "":
			w.WriteHeader(http.StatusConflict)
		default:
			f.users[c.Email] = c.Password
			f.rss += 1 << 20
			w.WriteHeader(http.StatusCreated)
		}
	})
	mux.HandleFunc("POST /v1/login", func(w http.ResponseWriter, r *http.Request) {
		var c credentials
		json.NewDecoder(r.Body).Decode(&c)
		f.mu.Lock()
		defer f.mu.Unlock()
		if pw, ok := f.users[c.Email]; !ok || pw != c.Password {
			f.logins["invalid"]++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.logins["success"]++
		w.Write([]byte(`{"access_token":"tok-` + c.Email + `","token_type":"Bearer"}`))
	})
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"user_id":"u"}`))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"status":"ok"}`))
	})
	return mux
}

func (f *fakeAuthd) admin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		b := &strings.Builder{}
		b.WriteString("# TYPE authd_logins_total counter\n")
		for _, o := range []string{"success", "invalid", "overloaded"} {
			b.WriteString(`authd_logins_total{outcome="` + o + `"} ` + strconv.Itoa(f.logins[o]) + "\n")
		}
		b.WriteString(`authd_hash_jobs_total{outcome="done"} ` + strconv.Itoa(f.logins["success"]+f.logins["invalid"]+len(f.users)) + "\n")
		b.WriteString("process_resident_memory_bytes " + strconv.Itoa(int(f.rss)) + "\n")
		w.Write([]byte(b.String()))
	})
}

// waits records the pauses the code asked for instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration // mu guards d
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func newTestAPI(t *testing.T, srvURL string, w *waits) *api {
	t.Helper()
	c := newClient(4)
	t.Cleanup(func() { closeClient(c) })
	base, err := url.Parse(srvURL)
	if err != nil {
		t.Fatal(err)
	}
	return &api{client: c, base: base, attempts: 5, maxWait: 10 * time.Second, wait: w.wait}
}

func TestSeedUsers(t *testing.T) {
	t.Parallel()
	const pw = "good password here"
	tests := []struct {
		name       string
		password   string
		existing   []string
		refuse     map[string]int
		wantErr    string
		wantDone   int
		wantCreate int64
		wantExist  int64
		wantWaits  int
	}{
		{name: "all new", password: pw, wantDone: 5, wantCreate: 5},
		{name: "409 is fine", password: pw, existing: []string{"u1@example.com", "u3@example.com"}, wantDone: 5, wantCreate: 3, wantExist: 2},
		{name: "503 retried after Retry-After", password: pw, refuse: map[string]int{"u2@example.com": 2, "u4@example.com": 1}, wantDone: 5, wantCreate: 5, wantWaits: 3},
		{name: "503 beyond the attempts", password: pw, refuse: map[string]int{"u2@example.com": 9}, wantErr: "after 5 attempts: POST /v1/register: status 503"},
		{name: "policy refusal stops seeding", password: "weak", wantErr: "status 400 validation_failed: password is too common"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeAuthd(pw)
			for _, e := range tt.existing {
				fake.users[e] = pw
			}
			for e, n := range tt.refuse {
				fake.refuse[e] = n
			}
			srv := httptest.NewServer(fake.public())
			t.Cleanup(srv.Close)
			w := &waits{}
			emails := []string{"u0@example.com", "u1@example.com", "u2@example.com", "u3@example.com", "u4@example.com"}
			done, rep, err := seedUsers(t.Context(), newTestAPI(t, srv.URL, w), emails, tt.password, 3, time.Minute)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tt.password) {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(done) != tt.wantDone || rep.Created != tt.wantCreate || rep.Existed != tt.wantExist {
				t.Fatalf("done %d created %d existed %d; want %d %d %d", len(done), rep.Created, rep.Existed, tt.wantDone, tt.wantCreate, tt.wantExist)
			}
			if len(w.d) != tt.wantWaits || rep.Retries != int64(tt.wantWaits) {
				t.Fatalf("waits %v, retries %d; want %d", w.d, rep.Retries, tt.wantWaits)
			}
			for _, d := range w.d {
				if d != 3*time.Second {
					t.Fatalf("waited %v, want the server's Retry-After of 3s", d)
				}
			}
			if tt.wantWaits > 0 && !slices.Equal(rep.RetryAfter, []retryAfterCount{{"3", int64(tt.wantWaits)}}) {
				t.Fatalf("seed Retry-After = %+v", rep.RetryAfter)
			}
		})
	}
}

func TestRetryAfterDelay(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"2", 2 * time.Second},
		{"0", 100 * time.Millisecond},
		{"", time.Second},
		{"soon", time.Second},
		{"-3", time.Second},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
	}
	for _, tt := range tests {
		if got := retryAfterDelay(tt.in, now); got != tt.want {
			t.Errorf("retryAfterDelay(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
