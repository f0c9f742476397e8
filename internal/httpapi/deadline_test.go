package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestDeadlineAnswers503Unavailable: a handler whose dependency gives up at
// the request deadline answers 503 unavailable problem+json with
// Retry-After, whether the dependency reports the deadline (pgx, go-redis,
// the hash pool) or an error of its own (SQLite's "interrupted"); a
// request within its deadline is untouched.
func TestDeadlineAnswers503Unavailable(t *testing.T) {
	t.Parallel()
	const d = 50 * time.Millisecond
	for _, tc := range []struct {
		name string
		err  func(*http.Request) error
	}{
		{"deadline error", func(r *http.Request) error { return fmt.Errorf("postgres: user by id: %w", r.Context().Err()) }},
		{"opaque error past the deadline", func(*http.Request) error { return errors.New("sqlite: interrupted (9)") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := withDeadline(d)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, ok := r.Context().Deadline(); !ok {
					t.Error("the request has no deadline")
				}
				<-r.Context().Done() // a dependency that answers too late
				writeError(w, r, slog.New(slog.DiscardHandler), tc.err(r))
			}))
			rec := httptest.NewRecorder()
			began := time.Now()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/me", nil))
			if took := time.Since(began); took < d {
				t.Errorf("answered after %v, before the deadline %v", took, d)
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusServiceUnavailable ||
				p.Code != codeUnavailable || rec.Header().Get("Content-Type") != "application/problem+json" || rec.Header().Get("Retry-After") != "1" {
				t.Errorf("got %d %q Retry-After %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Retry-After"), rec.Body)
			}
		})
	}
	t.Run("within the deadline", func(t *testing.T) {
		t.Parallel()
		h := withDeadline(time.Minute)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, r, slog.New(slog.DiscardHandler), errors.New("a bug"))
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/me", nil))
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("an unknown error within the deadline = %d, want 500", rec.Code)
		}
	})
}
