package httpapi

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

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
