package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/auth"
)

type retryIn struct{ d time.Duration }

func (e retryIn) Error() string             { return "full" }
func (e retryIn) Is(target error) bool      { return target == auth.ErrOverloaded }
func (e retryIn) RetryAfter() time.Duration { return e.d }

// The precomputed 503 is byte for byte what writeProblem would send.
func TestOverloadedAnswerIsTheEncodedProblem(t *testing.T) {
	t.Parallel()
	want := httptest.NewRecorder()
	writeProblem(want, http.StatusServiceUnavailable, codeOverloaded, "")

	got := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v1/login", nil)
	writeError(got, r, slog.New(slog.DiscardHandler), retryIn{3 * time.Second})

	if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
		t.Errorf("answer %d %q, want %d %q", got.Code, got.Body, want.Code, want.Body)
	}
	for k, v := range want.Header() {
		if g := got.Header().Values(k); len(g) != len(v) || g[0] != v[0] {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	if ra := got.Header().Get("Retry-After"); ra != "3" {
		t.Errorf("Retry-After %q, want 3", ra)
	}
	// The shared header values are not written through.
	got.Header().Add("Cache-Control", "private")
	if noStore[0] != "no-store" || len(noStore) != 1 {
		t.Errorf("shared header value changed: %q", noStore)
	}
	if !errors.Is(retryIn{}, auth.ErrOverloaded) {
		t.Fatal("test error does not match ErrOverloaded")
	}
}

// A flood of 503s is one info line a second counting them, not a line each;
// each keeps its request line at debug level, and other answers keep theirs
// at info.
func TestRefusalsAreCountedNotLoggedOneByOne(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := newHTTPMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock } // only the test goroutine moves it
	ip := func(*http.Request) netip.Addr { return netip.MustParseAddr("192.0.2.1") }
	h := observe(logger, m, ip, now)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Retry-After", "1")
		writeOverloaded(w)
	}))
	get := func(path string) {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, path, nil))
	}

	type line struct {
		Level  string `json:"level"`
		Msg    string `json:"msg"`
		Status int    `json:"status"`
		Count  int64  `json:"count"`
		Since  int64  `json:"since"`
	}
	lines := func() []line {
		t.Helper()
		var out []line
		dec := json.NewDecoder(bytes.NewReader(logs.Bytes()))
		for dec.More() {
			var l line
			if err := dec.Decode(&l); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		logs.Reset()
		return out
	}
	summaries := func(ls []line) (n int, counts []int64) {
		for _, l := range ls {
			switch {
			case l.Msg == "requests refused" && l.Level == "INFO":
				n++
				counts = append(counts, l.Count)
			case l.Msg == "request" && l.Status == 503 && l.Level != "DEBUG":
				t.Errorf("a 503 request line at %s", l.Level)
			case l.Msg == "request" && l.Status == 204 && l.Level != "INFO":
				t.Errorf("a 204 request line at %s", l.Level)
			}
		}
		return n, counts
	}

	for range 100 {
		get("/v1/login")
	}
	get("/ok")
	ls := lines()
	if n, counts := summaries(ls); n != 1 || counts[0] != 1 {
		t.Fatalf("first second: %d summaries %v, want one counting the first 503", n, counts)
	}
	if len(ls) != 1+100+1 {
		t.Errorf("%d lines, want a summary, 100 debug lines and the 204", len(ls))
	}

	clock = clock.Add(999 * time.Millisecond)
	get("/v1/login")
	if n, _ := summaries(lines()); n != 0 {
		t.Fatalf("a summary before the second was over")
	}
	clock = clock.Add(time.Millisecond)
	get("/v1/login")
	ls = lines()
	if n, counts := summaries(ls); n != 1 || counts[0] != 101 || ls[0].Since != int64(time.Second) {
		t.Fatalf("after a second: %d summaries %v (%+v), want one counting 101 since 1s", n, counts, ls)
	}
}
