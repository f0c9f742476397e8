package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/app/apptest"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/hashpool"
)

// A full pool refuses a login or a registration before anything else is done
// for it: whatever the body (not JSON, malformed, too large) the answer is 503
// overloaded, and the refusals spend none of the client's rate-limit budget.
func TestFullPoolRefusesBeforeReadingTheRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memDB(t), options{workers: 1, queue: 0, burst: 3})
	register(t, f, "ada@example.com") // the first of the burst's 3 requests

	free := occupy(t, f.pool)

	bodies := []struct{ name, contentType, body string }{
		{"not json", "text/plain", "email=ada@example.com"},
		{"malformed", "application/json", `{"email":`},
		{"too large", "application/json", `{"email":"` + strings.Repeat("a", 70<<10) + `"}`},
		{"good", "application/json", `{"email":"ada@example.com","password":"` + goodPassword + `"}`},
	}
	refused := map[string]float64{}
	for _, path := range []string{"/v1/login", "/v1/register"} {
		for _, b := range bodies {
			r := f.do(t, http.MethodPost, path, b.contentType, b.body, "")
			wantProblem(t, r, http.StatusServiceUnavailable, "overloaded")
			if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("%s %s: Retry-After %q", path, b.name, ra)
			}
			if v := r.header.Get("RateLimit-Remaining"); v != "" {
				t.Errorf("%s %s: RateLimit-Remaining %q: the limiter ran for a refusal", path, b.name, v)
			}
			refused[path]++
		}
	}
	if got := counter(t, f.reg, "authd_logins_total", "overloaded"); got != refused["/v1/login"] {
		t.Errorf(`authd_logins_total{outcome="overloaded"} = %v, want %v`, got, refused["/v1/login"])
	}
	if got := counter(t, f.reg, "authd_registrations_total", "overloaded"); got != refused["/v1/register"] {
		t.Errorf(`authd_registrations_total{outcome="overloaded"} = %v, want %v`, got, refused["/v1/register"])
	}

	free()
	// Eight refusals later the burst still has its two requests left.
	login(t, f, "ada@example.com")
	login(t, f, "ada@example.com")
}

// counter reads the counter name{outcome=outcome} from reg.
func counter(t *testing.T, reg prometheus.Gatherer, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{outcome=%q} not found", name, outcome)
	return 0
}

// BenchmarkRefusal compares, through the whole router in process, a login
// and a registration refused because the hash pool is full with the bare
// GET /healthz. The request log is at info level, JSON, written nowhere.
func BenchmarkRefusal(b *testing.B) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg := apptest.Config(b)
	cfg.Hash = config.Hash{Workers: 1, Queue: 0}
	cfg.RateLimit = config.RateLimit{RPS: 1e6, Burst: 1e6} // never in the way
	svc := apptest.Build(b, cfg, logger, nil)

	occupy(b, svc.Pool) // the only worker, for the whole benchmark

	body := `{"email":"ada@example.com","password":"` + goodPassword + `"}`
	for _, bb := range []struct {
		name, method, path string
		want               int
	}{
		{"route=healthz", http.MethodGet, "/healthz", http.StatusOK},
		{"route=login/refused", http.MethodPost, "/v1/login", http.StatusServiceUnavailable},
		{"route=register/refused", http.MethodPost, "/v1/register", http.StatusServiceUnavailable},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(bb.method, bb.path, strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				svc.API.ServeHTTP(w, r)
				if w.Code != bb.want {
					b.Fatalf("status %d, want %d", w.Code, bb.want)
				}
			}
		})
	}
}

// occupy keeps the pool's only worker busy until the returned func is called
// (at the latest when the test ends, before the pool closes). With no queue a
// job is accepted only once the worker waits for one, so it tries again until
// its job has started.
func occupy(tb testing.TB, pool *hashpool.Pool) (release func()) {
	tb.Helper()
	ch := make(chan struct{})
	for {
		started := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- pool.Do(context.Background(), func() error { close(started); <-ch; return nil })
		}()
		select {
		case <-started:
			// release returns once the job has ended and the worker is free.
			release = sync.OnceFunc(func() {
				close(ch)
				if err := <-done; err != nil {
					tb.Errorf("occupying job: %v", err)
				}
			})
			tb.Cleanup(release) // before the pool's Close, which waits for the job
			return release
		case err := <-done:
			if !errors.Is(err, auth.ErrOverloaded) {
				tb.Fatalf("occupy the worker: %v", err)
			}
			runtime.Gosched() // the worker is not waiting yet
		}
	}
}
