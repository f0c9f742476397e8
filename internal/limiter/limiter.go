// Package limiter is authd's per-client rate limiter (the Guardian's first
// line): a token bucket per client key, in process (Local) or shared by every
// instance through Redis (Redis), and the HTTP middleware that puts it in
// front of the auth routes and speaks the IETF RateLimit header fields.
//
// Buckets are kept in the GCRA form (generic cell rate algorithm): instead of a
// token count and a refill time, each bucket stores one int64, the instant at
// which it will be full again (its "theoretical arrival time"). A request at
// time now is allowed when max(tat, now) + 1/RPS − now ≤ Burst/RPS, and then
// tat moves on by 1/RPS. This is exactly a token bucket of Burst tokens refilled
// at RPS per second, with lazy refill from elapsed time, in 8 bytes of state.
//
// Keys are netip.Prefix values, normally from clientip.Key: an IPv4 /32 or an
// IPv6 /64. Any valid prefix is accepted; IPv6 prefixes longer than /64 are
// limited as their /64, and the zero Prefix (no usable client address) is one
// shared key.
//
// Local keeps its buckets in 256 shards of open-addressing tables of 24-byte,
// pointer-free entries; a request for a tracked key is one compare-and-swap,
// with no lock. docs/benchmarks.md says why this design, against the others
// measured.
package limiter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Params configures a limiter. The zero values of MaxKeys, SweepEvery and
// Timeout mean their defaults.
type Params struct {
	// RPS is the sustained rate, in requests per second, that one key may
	// make: its bucket refills at this rate. Must be > 0 and ≤ 1e9.
	RPS float64
	// Burst is the bucket size: how many requests a key that has been idle
	// may make at once. Must be ≥ 1.
	Burst int
	// MaxKeys caps the number of keys a Local tracks (default 1_000_000).
	// Keys first seen beyond the cap share one overflow bucket; see Local.
	MaxKeys int
	// SweepEvery is how often Local.Run drops idle buckets (default 1 min).
	SweepEvery time.Duration
	// Timeout is the Redis limiter's deadline for one call (default 100 ms);
	// past it the request is limited in process instead.
	Timeout time.Duration
}

// Defaults used for the zero values of Params fields.
const (
	DefaultMaxKeys    = 1_000_000
	DefaultSweepEvery = time.Minute
	DefaultTimeout    = 100 * time.Millisecond
)

// Validate reports whether p can build a limiter, with an error naming the
// bad field.
func (p Params) Validate() error {
	switch {
	case math.IsNaN(p.RPS) || p.RPS <= 0 || p.RPS > 1e9:
		return fmt.Errorf("limiter: RPS %v out of range (0, 1e9]", p.RPS)
	case p.Burst < 1:
		return fmt.Errorf("limiter: burst %d must be at least 1", p.Burst)
	case p.MaxKeys < 0:
		return fmt.Errorf("limiter: max keys %d is negative", p.MaxKeys)
	case p.SweepEvery < 0:
		return fmt.Errorf("limiter: sweep interval %v is negative", p.SweepEvery)
	case p.Timeout < 0:
		return fmt.Errorf("limiter: timeout %v is negative", p.Timeout)
	}
	interval := float64(time.Second) / p.RPS
	if interval*float64(p.Burst) > 1<<62 {
		return errors.New("limiter: burst/RPS is too long a window (over 100 years)")
	}
	return nil
}

func (p Params) withDefaults() Params {
	if p.MaxKeys == 0 {
		p.MaxKeys = DefaultMaxKeys
	}
	if p.SweepEvery == 0 {
		p.SweepEvery = DefaultSweepEvery
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultTimeout
	}
	return p
}

// Decision is the outcome of one Allow call.
type Decision struct {
	// Allowed is true when the request may proceed (a token was taken).
	Allowed bool
	// Limit is the bucket size (Params.Burst): the most requests allowed at once.
	Limit int
	// Remaining is how many more requests are allowed right now (whole tokens
	// left after this one). It is 0 when the request was rejected.
	Remaining int
	// Reset is, when allowed, the time until the bucket is full again. When
	// rejected it equals RetryAfter: the moment quota is available again, so
	// that RateLimit-Reset and Retry-After name the same instant.
	Reset time.Duration
	// RetryAfter is, when rejected, the time until one request would be
	// allowed; 0 when allowed.
	RetryAfter time.Duration
}

// Limiter decides whether the client identified by key may make a request
// now, taking a token if so. Implementations are safe for concurrent use and
// never block longer than their own short deadline.
type Limiter interface {
	Allow(ctx context.Context, key netip.Prefix) Decision
}

// gcra holds the bucket arithmetic, in nanoseconds of the limiter's clock.
type gcra struct {
	interval int64   // time to refill one token: 1s/RPS
	capacity int64   // time to refill a whole bucket: Burst × interval
	inverse  float64 // 1/interval, to divide by interval without a DIV
	burst    int
}

func newGCRA(p Params) gcra {
	interval := max(int64(math.Round(float64(time.Second)/p.RPS)), 1)
	return gcra{
		interval: interval,
		capacity: interval * int64(p.Burst),
		inverse:  1 / float64(interval),
		burst:    p.Burst,
	}
}

// tokens returns t / interval rounded down, for 0 ≤ t ≤ capacity. A 64-bit
// integer division is the slowest instruction on the hit path; a multiply by
// the inverse is within one of the answer, and the checks make it exact.
func (g gcra) tokens(t int64) int64 {
	q := int64(float64(t) * g.inverse)
	if q*g.interval > t {
		q--
	} else if (q+1)*g.interval <= t {
		q++
	}
	return q
}

// step applies one request at now to a bucket full again at tat (a bucket
// never seen has tat ≤ now). It returns the bucket's next tat (unchanged when
// rejected) and the decision.
func (g gcra) step(tat, now int64) (int64, Decision) {
	t := max(tat, now)
	next := t + g.interval
	ahead := next - now // time until full again if this request is taken
	if ahead > g.capacity {
		wait := time.Duration(ahead - g.capacity)
		return tat, Decision{Limit: g.burst, Reset: wait, RetryAfter: wait}
	}
	return next, Decision{
		Allowed:   true,
		Limit:     g.burst,
		Remaining: int(g.tokens(g.capacity - ahead)),
		Reset:     time.Duration(ahead),
	}
}

// metrics are the Guardian's series from API.md. They are shared by every
// limiter registered on the same registry.
type metrics struct {
	rejectedIP    prometheus.Counter
	tracked       prometheus.Gauge
	backendErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	rejections, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "authd_ratelimit_rejections_total",
		Help: "Requests refused by a rate limit, by scope: ip (per client address) or account (per-account login throttle).",
	}, []string{"scope"}))
	if err != nil {
		return metrics{}, err
	}
	tracked, err := register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "authd_ratelimit_tracked_keys",
		Help: "Client keys with a bucket held in process (the Redis limiter's in-process fallback included).",
	}))
	if err != nil {
		return metrics{}, err
	}
	backendErrors, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "authd_ratelimit_backend_errors_total",
		Help: "Redis rate-limit calls that failed or timed out; each such request was limited in process instead.",
	}))
	if err != nil {
		return metrics{}, err
	}
	return metrics{
		rejectedIP:    rejections.WithLabelValues("ip"),
		tracked:       tracked,
		backendErrors: backendErrors,
	}, nil
}

// register registers c on reg, or returns the collector already registered
// under the same description, so that several limiters (one per route group,
// say) share the process's series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("limiter: register metric: %w", err)
	}
	return c, nil
}
