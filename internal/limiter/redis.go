package limiter

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed gcra.lua
var gcraScript string

const (
	// LogEvery is the most often the Redis limiter logs that it fell back to
	// in-process limiting.
	LogEvery = 10 * time.Second
	// ProbeEvery is how long the Redis limiter, after a failed call, decides
	// in process without trying Redis. One request per ProbeEvery then pays
	// the deadline while Redis is down, instead of every request.
	ProbeEvery = time.Second
)

// Redis is the shared limiter: every instance using the same Redis and prefix
// enforces one budget per key. Each Allow is one round trip, a Lua GCRA script
// run with EVALSHA (loaded on first NOSCRIPT) on Redis's clock, and each key
// expires by itself when its bucket is full again. There is no key cap in
// Redis: a spray of source addresses costs Redis one small key per address
// for at most Burst/RPS, after which the keys are gone.
//
// When Redis fails or does not answer within Params.Timeout, the request is
// limited by the fallback Local instead: traffic is neither blocked nor let
// through unlimited. For ProbeEvery after a failure Redis is not tried at all
// and requests go straight to the fallback, so an outage does not add the
// deadline to every request. Every request decided by the fallback this way
// counts in authd_ratelimit_backend_errors_total, and a warning (the error
// only, no keys or secrets) is logged at most once per LogEvery.
//
// Redis is safe for concurrent use. It starts no goroutines; the fallback's
// Run should be running to sweep its buckets.
type Redis struct {
	c        goredis.UniversalClient
	script   *goredis.Script
	prefix   string
	timeout  time.Duration
	args     [2]any // interval in µs, burst
	burst    int
	fallback *Local
	logger   *slog.Logger

	downUntil  atomic.Int64 // fallback clock before which Redis is not tried
	lastLog    atomic.Int64 // fallback clock at the last warning
	suppressed atomic.Int64 // failures since the last warning
}

// NewRedis returns a limiter keeping each bucket in Redis under prefix
// followed by the client prefix in text form (prefix "authd:rl:ip:" gives
// keys like "authd:rl:ip:192.0.2.1/32"). fallback limits
// requests while Redis is failing and supplies the clock and the metrics
// (Redis registers none of its own), so build it with the same Params. The
// client should have ContextTimeoutEnabled set: without it go-redis ignores
// the per-call deadline for socket I/O, and a hung Redis would hold requests
// for the client's read timeout; NewRedis logs a warning when it can tell.
// It returns an error when p.Validate fails or a dependency is nil.
func NewRedis(c goredis.UniversalClient, fallback *Local, prefix string, p Params, logger *slog.Logger) (*Redis, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if c == nil || fallback == nil || logger == nil {
		return nil, errors.New("limiter: redis limiter needs a client, a fallback and a logger")
	}
	p = p.withDefaults()
	g := newGCRA(p)
	intervalUS := max((g.interval+500)/1000, 1)
	r := &Redis{
		c:        c,
		script:   goredis.NewScript(gcraScript),
		prefix:   prefix,
		timeout:  p.Timeout,
		args:     [2]any{intervalUS, p.Burst},
		burst:    p.Burst,
		fallback: fallback,
		logger:   logger,
	}
	r.lastLog.Store(math.MinInt64 / 2) // far past, without overflow in now-last
	if !contextTimeoutEnabled(c) {
		logger.Warn("limiter: redis client has ContextTimeoutEnabled off; the per-call deadline cannot cut a hung call short",
			"timeout", p.Timeout)
	}
	return r, nil
}

func contextTimeoutEnabled(c goredis.UniversalClient) bool {
	switch c := c.(type) {
	case *goredis.Client:
		return c.Options().ContextTimeoutEnabled
	case *goredis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true // unknown: assume the caller knows
}

// Allow takes a token from key's shared bucket and reports the outcome. It
// waits at most Params.Timeout for Redis; on error or timeout, and for
// ProbeEvery after one, the fallback decides. If ctx is already done (the
// client went away) the fallback decides without counting a backend error.
// Safe for concurrent use.
func (r *Redis) Allow(ctx context.Context, key netip.Prefix) Decision {
	if ctx.Err() != nil {
		return r.fallback.allow(key)
	}
	if r.fallback.clock() < r.downUntil.Load() {
		r.fallback.m.backendErrors.Inc()
		r.suppressed.Add(1)
		return r.fallback.allow(key)
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	res, err := r.script.Run(cctx, r.c, []string{r.prefix + canonical(key).String()}, r.args[:]...).Int64Slice()
	cancel()
	if err == nil && len(res) != 4 {
		err = fmt.Errorf("limiter: redis script returned %d values, want 4", len(res))
	}
	if err != nil {
		if ctx.Err() == nil {
			r.failed(err)
		}
		return r.fallback.allow(key)
	}
	d := Decision{
		Allowed:    res[0] == 1,
		Limit:      r.burst,
		Remaining:  int(res[1]),
		Reset:      time.Duration(res[2]) * time.Microsecond,
		RetryAfter: time.Duration(res[3]) * time.Microsecond,
	}
	if !d.Allowed {
		r.fallback.m.rejectedIP.Inc()
	}
	return d
}

// failed counts a backend error and logs it unless one was logged within
// LogEvery.
func (r *Redis) failed(err error) {
	r.fallback.m.backendErrors.Inc()
	r.suppressed.Add(1)
	now := r.fallback.clock()
	r.downUntil.Store(now + int64(ProbeEvery))
	last := r.lastLog.Load()
	if now-last < int64(LogEvery) || !r.lastLog.CompareAndSwap(last, now) {
		return
	}
	r.logger.Warn("limiter: redis rate limit failed; limiting in process",
		"err", err, "failures", r.suppressed.Swap(0))
}

// canonical is the prefix a key is stored under in Redis, normalised the same
// way Local normalises keys: masked, IPv6 cut to at most /64.
func canonical(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return netip.Prefix{}
	}
	if p.Addr().Is6() && p.Bits() > 64 {
		p = netip.PrefixFrom(p.Addr(), 64)
	}
	return p.Masked()
}

var (
	_ Limiter = (*Redis)(nil)
	_ Limiter = (*Local)(nil)
)
