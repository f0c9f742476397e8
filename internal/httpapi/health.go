package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Check is one readiness probe of a dependency.
type Check struct {
	Name  string // "database", "redis"
	Probe func(context.Context) error
}

// Readiness answers /readyz: every check runs in parallel with a short
// timeout each, and the answer is 503 from the moment Drain is called.
// It is safe for concurrent use.
type Readiness struct {
	checks   []Check
	timeout  time.Duration
	logger   *slog.Logger
	draining atomic.Bool
}

// NewReadiness returns a Readiness over checks, each bounded by timeout. It
// returns an error for a check without a probe, a non-positive timeout or a
// nil logger.
func NewReadiness(checks []Check, timeout time.Duration, logger *slog.Logger) (*Readiness, error) {
	for _, c := range checks {
		if c.Name == "" || c.Probe == nil {
			return nil, errors.New("httpapi: a readiness check needs a name and a probe")
		}
	}
	if timeout <= 0 || logger == nil {
		return nil, errors.New("httpapi: readiness needs a positive timeout and a logger")
	}
	return &Readiness{checks: checks, timeout: timeout, logger: logger}, nil
}

// Drain makes /readyz answer 503 from now on; shutdown calls it first so
// load balancers stop sending traffic before the listeners close.
func (rd *Readiness) Drain() { rd.draining.Store(true) }

// closeWhenDraining asks the client to close its connection after the
// response (Connection: close, which net/http then honours) once rd is
// draining: keep-alive clients reconnect, through their load balancer, to
// an instance that is not shutting down. Idle connections are left alone:
// closing one races a client sending its next request on it, and a POST
// lost that way fails with EOF; Shutdown closes them after the drain.
func closeWhenDraining(rd *Readiness) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rd.draining.Load() {
				w.Header().Set("Connection", "close")
			}
			next.ServeHTTP(w, r)
		})
	}
}

type readyResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		encodeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func handleReadyz(rd *Readiness) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := readyResponse{Status: "ok", Checks: make(map[string]string, len(rd.checks)+1)}
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		for _, c := range rd.checks {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), rd.timeout)
				defer cancel()
				err := c.Probe(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					resp.Status = "unavailable"
					resp.Checks[c.Name] = "fail"
					rd.logger.WarnContext(r.Context(), "readiness check failed", "check", c.Name, "err", err)
					return
				}
				resp.Checks[c.Name] = "ok"
			})
		}
		wg.Wait()
		if rd.draining.Load() {
			resp.Status = "unavailable"
			resp.Checks["shutdown"] = "draining"
		}
		status := http.StatusOK
		if resp.Status != "ok" {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		encodeJSON(w, status, resp)
	})
}
