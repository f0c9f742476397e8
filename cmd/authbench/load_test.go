package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// mixServer answers in a fixed cycle of ten: five 200, three 401, one 503
// with Retry-After: 1 and one 503 with Retry-After: 2. With hang set, a
// request carrying the header X-Hang blocks until its client goes away.
type mixServer struct {
	n    atomic.Int64
	gone atomic.Int64 // hanging requests whose client gave up
}

func (m *mixServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Hang") != "" {
		<-r.Context().Done()
		m.gone.Add(1)
		return
	}
	switch i := m.n.Add(1) - 1; i % 10 {
	case 0, 1, 2, 3, 4:
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"access_token":"x"}`))
	case 5, 6, 7:
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"status":401,"code":"invalid_credentials"}`))
	case 8:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	case 9:
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

func newTestLoad(t *testing.T, url string, conc int, next requestFunc) *load {
	t.Helper()
	c := newClient(conc)
	t.Cleanup(func() { closeClient(c) })
	if next == nil {
		next = func(ctx context.Context, _ *worker) (*http.Request, error) {
			return jsonRequest(ctx, url, []byte(`{"email":"a@example.com","password":"p"}`))
		}
	}
	return &load{client: c, concurrency: conc, duration: time.Minute, grace: time.Minute, seed: 1, next: next, now: time.Now}
}

func TestLoadCountsStatusesAndRetryAfter(t *testing.T) {
	t.Parallel()
	mix := &mixServer{}
	srv := httptest.NewServer(mix)
	t.Cleanup(srv.Close)

	l := newTestLoad(t, srv.URL, 8, nil)
	l.maxRequests = 1000
	res := l.run(t.Context())

	if res.sent != 1000 || res.completed != 1000 || res.aborted != 0 {
		t.Fatalf("sent %d, completed %d, aborted %d; want 1000, 1000, 0", res.sent, res.completed, res.aborted)
	}
	if n := mix.n.Load(); n != 1000 {
		t.Fatalf("server saw %d requests", n)
	}
	want := map[int]uint64{200: 500, 401: 300, 503: 200}
	if len(res.byCode) != len(want) {
		t.Fatalf("codes %v", res.byCode)
	}
	for code, n := range want {
		if h := res.byCode[code]; h == nil || h.n != n {
			t.Errorf("status %d: got %v, want %d", code, h, n)
		}
	}
	if res.retryAfter["1"] != 100 || res.retryAfter["2"] != 100 || len(res.retryAfter) != 2 {
		t.Errorf("Retry-After values = %v, want 1:100 2:100", res.retryAfter)
	}
	if res.all.n != 1000 || res.errs != [numErrKinds]int64{} {
		t.Errorf("all.n = %d, errors = %v", res.all.n, res.errs)
	}
	if res.inWindow != 1000 || res.throughput() <= 0 {
		t.Errorf("inWindow %d, throughput %v", res.inWindow, res.throughput())
	}

	rep := newReport("test", http.MethodPost, srv.URL, l, res)
	if len(rep.ByStatus) != 3 || rep.ByStatus[0].Code != 200 || rep.ByStatus[2].Count != 200 {
		t.Errorf("report by status = %+v", rep.ByStatus)
	}
	if len(rep.RetryAfter) != 2 || rep.RetryAfter[0] != (retryAfterCount{"1", 100}) {
		t.Errorf("report Retry-After = %+v", rep.RetryAfter)
	}
}

// Clients that give up are counted as timeouts, apart from the answers, and
// the server sees them go.
func TestLoadClientTimeouts(t *testing.T) {
	t.Parallel()
	mix := &mixServer{}
	srv := httptest.NewServer(mix)
	t.Cleanup(srv.Close)

	var built atomic.Int64
	l := newTestLoad(t, srv.URL, 4, func(ctx context.Context, _ *worker) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err == nil && built.Add(1)%4 == 0 {
			req.Header.Set("X-Hang", "1")
		}
		return req, err
	})
	// Long enough that an answering request never times out on a loaded
	// machine under -race; the hanging ones each cost a worker this long.
	l.timeout = 500 * time.Millisecond
	l.maxRequests = 40
	res := l.run(t.Context())

	if res.sent != 40 {
		t.Fatalf("sent %d", res.sent)
	}
	if got := res.errs[errTimeout]; got != 10 {
		t.Errorf("timeouts = %d, want 10 (examples %q)", got, res.errExample)
	}
	if res.completed != 30 || res.errs[errConnection] != 0 || res.aborted != 0 {
		t.Errorf("completed %d, connection errors %d, aborted %d", res.completed, res.errs[errConnection], res.aborted)
	}
}

// The run is bounded: at the end of duration + grace, requests still in
// flight are cut and counted as aborted, not as errors.
func TestLoadStopsAtDuration(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	l := newTestLoad(t, srv.URL, 3, func(ctx context.Context, _ *worker) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	})
	l.duration, l.grace = 50*time.Millisecond, 50*time.Millisecond
	res := l.run(t.Context())
	if res.sent != 3 || res.aborted != 3 || res.completed != 0 || res.errs != [numErrKinds]int64{} {
		t.Fatalf("sent %d aborted %d completed %d errors %v", res.sent, res.aborted, res.completed, res.errs)
	}
	if res.window != l.duration || res.throughput() != 0 {
		t.Errorf("window %v throughput %v", res.window, res.throughput())
	}
}

func TestLoadConnectionErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	l := newTestLoad(t, url, 2, nil)
	l.maxRequests = 10
	res := l.run(t.Context())
	if res.errs[errConnection] != 10 || res.completed != 0 || res.errExample[errConnection] == "" {
		t.Fatalf("connection errors %d, completed %d, example %q", res.errs[errConnection], res.completed, res.errExample[errConnection])
	}
}
