package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPanicIsRecoveredLoggedOnceAndAnswered500(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	m, err := newHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ip := func(*http.Request) netip.Addr { return netip.MustParseAddr("192.0.2.1") }
	r := chi.NewRouter()
	r.Use(withRequestID, observe(logger, m, ip, time.Now))
	r.Get("/boom/{id}", func(http.ResponseWriter, *http.Request) { panic("secret internals: db password hunter2") })

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom/42", nil))

	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != codeInternal || p.Detail != "" {
		t.Errorf("body %s (%v)", rec.Body, err)
	}
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("the panic value reached the client: %s", rec.Body)
	}
	id := rec.Header().Get("X-Request-Id")
	if n := strings.Count(logs.String(), `"msg":"panic in handler"`); n != 1 {
		t.Errorf("panic logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"request_id":"`+id+`"`) {
		t.Errorf("the panic log line lacks the request id %s", id)
	}
	// The request line is labelled by route pattern, never the raw path.
	if !strings.Contains(logs.String(), `"route":"/boom/{id}"`) || strings.Contains(logs.String(), `"/boom/42"`) {
		t.Errorf("request log not labelled by pattern:\n%s", logs.String())
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("/boom/{id}", "GET", "500")); got != 1 {
		t.Errorf("authd_http_requests_total{route=/boom/{id},code=500} = %v", got)
	}
}

func TestRequestLogHasNoAuthorization(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	m, err := newHTTPMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ip := func(*http.Request) netip.Addr { return netip.MustParseAddr("192.0.2.1") }
	h := withRequestID(observe(logger, m, ip, time.Now)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(`{"password":"hunter2"}`))
	req.Header.Set("Authorization", "Bearer sekrit-token")
	h.ServeHTTP(httptest.NewRecorder(), req)
	for _, s := range []string{"sekrit-token", "hunter2", "Authorization"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("request log contains %q:\n%s", s, logs.String())
		}
	}
	for _, s := range []string{`"status":204`, `"client_ip":"192.0.2.1"`, `"method":"POST"`, `"request_id":`, `"duration":`} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("request log lacks %s:\n%s", s, logs.String())
		}
	}
}
