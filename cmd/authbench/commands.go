package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"
)

// defaultPassword passes authd's policy (long enough, not a common password).
// It is a benchmark credential for throwaway accounts, not a secret.
const defaultPassword = "authbench: ferns at dusk, 7 lanterns"

const defaultMetrics = "authd_hash_jobs_total,authd_logins_total,authd_registrations_total,authd_ratelimit_rejections_total"

// driveFlags are the settings every load-driving command shares.
type driveFlags struct {
	url            string
	admin          string
	rssURL         string
	concurrency    int
	duration       time.Duration
	timeout        time.Duration
	grace          time.Duration
	warmup         time.Duration
	requests       int64
	sampleInterval time.Duration
	metrics        string
	forwardedFor   bool
	seed           uint64
	json           bool
	retryAfter     string
	jitter         float64
}

// The -retry-after modes.
const (
	retryIgnore = "ignore"
	retryHonour = "honour"
)

func (d *driveFlags) bind(fs *flag.FlagSet, conc int) {
	fs.StringVar(&d.url, "url", "http://127.0.0.1:8080", "base URL of authd's public listener (loopback only)")
	fs.StringVar(&d.admin, "admin", "", "base URL of authd's admin listener (e.g. http://127.0.0.1:9090): scrape /metrics before and after, sample RSS during the run")
	fs.StringVar(&d.rssURL, "rss-url", "", "URL answering {\"vm_rss_bytes\",\"vm_hwm_bytes\"} to sample RSS from instead of /metrics (the naive server's /debug/rss)")
	fs.IntVar(&d.concurrency, "concurrency", conc, "workers, each sending requests back to back (one keep-alive connection each)")
	fs.DurationVar(&d.duration, "duration", 10*time.Second, "how long to send requests")
	fs.DurationVar(&d.timeout, "timeout", 0, "client-side timeout per request, simulating clients that give up (0 = none)")
	fs.DurationVar(&d.grace, "grace", 2*time.Second, "after -duration, how long requests in flight may take to finish before they are cut (counted as aborted)")
	fs.DurationVar(&d.warmup, "warmup", 0, "run the same load this long first and discard its results")
	fs.Int64Var(&d.requests, "requests", 0, "stop after this many requests even before -duration (0 = no limit)")
	fs.DurationVar(&d.sampleInterval, "sample-interval", 250*time.Millisecond, "RSS sampling interval during the run")
	fs.StringVar(&d.metrics, "metrics", defaultMetrics, "comma-separated metric families whose change over the run is printed (with -admin)")
	fs.BoolVar(&d.forwardedFor, "forwarded-for", false, "send X-Forwarded-For: 198.18.x.y, one address per worker (only useful when authd trusts 127.0.0.1 as a proxy)")
	fs.Uint64Var(&d.seed, "seed", 0, "random seed for the request mix (0 = from the clock)")
	fs.BoolVar(&d.json, "json", false, "print JSON instead of text")
	fs.StringVar(&d.retryAfter, "retry-after", retryIgnore, "what a worker does after a 503 or 429: \"ignore\" sends the next request at once; \"honour\" sleeps the Retry-After (1s if missing) times a random factor in [1, 1+jitter) first, as well-behaved SDKs do (the sleep ends with the run)")
	fs.Float64Var(&d.jitter, "jitter", 0.5, "with -retry-after honour: the random stretch of each sleep, as a fraction of Retry-After")
}

// retryPolicy is the policy of -retry-after and -jitter, pausing with wait.
func (d *driveFlags) retryPolicy(wait func(context.Context, time.Duration) error) retryPolicy {
	return retryPolicy{honour: d.retryAfter == retryHonour, jitter: d.jitter, wait: wait}
}

// check validates the settings and returns the public base URL.
func (d *driveFlags) check() (*url.URL, error) {
	base, err := checkLoopbackURL(d.url)
	if err != nil {
		return nil, usagef("-url: %v", err)
	}
	switch {
	case d.concurrency < 1:
		return nil, usagef("-concurrency must be at least 1")
	case d.duration <= 0:
		return nil, usagef("-duration must be positive")
	case d.timeout < 0 || d.grace < 0 || d.warmup < 0 || d.requests < 0:
		return nil, usagef("-timeout, -grace, -warmup and -requests must not be negative")
	case d.sampleInterval < 10*time.Millisecond:
		return nil, usagef("-sample-interval must be at least 10ms")
	case d.retryAfter != retryIgnore && d.retryAfter != retryHonour:
		return nil, usagef("-retry-after must be %q or %q", retryIgnore, retryHonour)
	case !(d.jitter >= 0 && d.jitter <= 10):
		return nil, usagef("-jitter must be in [0, 10]")
	}
	if d.admin != "" {
		if _, err := checkLoopbackURL(d.admin); err != nil {
			return nil, usagef("-admin: %v", err)
		}
	}
	if d.rssURL != "" {
		if _, err := checkLoopbackURL(d.rssURL); err != nil {
			return nil, usagef("-rss-url: %v", err)
		}
	}
	if d.seed == 0 {
		d.seed = uint64(time.Now().UnixNano())
	}
	return base, nil
}

// metricsURL returns the admin /metrics URL, "" without -admin.
func (d *driveFlags) metricsURL() string {
	if d.admin == "" {
		return ""
	}
	u, _ := url.Parse(d.admin) // checked by check
	if !strings.HasSuffix(u.Path, "/metrics") {
		u = u.JoinPath("metrics")
	}
	return u.String()
}

func (d *driveFlags) families() []string {
	var out []string
	for f := range strings.SplitSeq(d.metrics, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// forwardedAddr is the client address worker id claims with -forwarded-for.
func forwardedAddr(id int) string {
	return fmt.Sprintf("198.%d.%d.%d", 18+(id>>16)&1, (id>>8)&0xff, id&0xff)
}

// drive runs one measured load: an optional warm-up, the first server
// scrape, the load with RSS sampled alongside, the last scrape. It blocks
// until all of it is done and leaves no goroutine behind.
func (d *driveFlags) drive(ctx context.Context, env *environment, client *http.Client, name, method, target string, next requestFunc) (*report, error) {
	if d.forwardedFor {
		inner := next
		next = func(ctx context.Context, w *worker) (*http.Request, error) {
			req, err := inner(ctx, w)
			if err == nil {
				req.Header.Set("X-Forwarded-For", forwardedAddr(w.id))
			}
			return req, err
		}
	}
	l := &load{
		client: client, concurrency: d.concurrency, duration: d.duration, grace: d.grace,
		timeout: d.timeout, maxRequests: d.requests, seed: d.seed, next: next, now: env.now,
		retry: d.retryPolicy(env.wait),
	}
	if d.warmup > 0 {
		warm := *l
		warm.duration, warm.maxRequests = d.warmup, 0
		warm.run(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}

	var w *watcher
	if d.admin != "" || d.rssURL != "" {
		wc := newClient(2)
		defer closeClient(wc)
		w = &watcher{client: wc, metricsURL: d.metricsURL(), rssURL: d.rssURL, families: d.families(), interval: d.sampleInterval}
		if err := w.begin(ctx); err != nil {
			return nil, fmt.Errorf("server metrics before the run: %w", err)
		}
	}

	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if w != nil {
		wg.Go(func() { w.sample(sctx) })
	}
	cpu0, cpuOK := cpuTime()
	res := l.run(ctx)
	cpu1, _ := cpuTime()
	stopSampling()
	wg.Wait()

	rep := newReport(name, method, target, l, res)
	if cpuOK && res.elapsed > 0 {
		// Everything authbench did meanwhile, keepers included: on one
		// machine this is CPU the server did not get.
		rep.ClientCPU = (cpu1 - cpu0).Seconds()
		rep.ClientCores = rep.ClientCPU / res.elapsed.Seconds()
	}
	rep.Interrupted = ctx.Err() != nil
	if w != nil {
		// A fresh deadline: the scrape after an interrupted run still counts.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		st, err := w.end(ectx)
		if err != nil {
			return rep, fmt.Errorf("server metrics after the run: %w", err)
		}
		rep.Server = st
	}
	return rep, nil
}

func (d *driveFlags) print(stdout io.Writer, r *report) error {
	if d.json {
		return writeJSON(stdout, r)
	}
	return writeText(stdout, r)
}

func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b)
}

func newAPI(env *environment, client *http.Client, base *url.URL) *api {
	return &api{client: client, base: base, attempts: 20, maxWait: 10 * time.Second, wait: env.wait}
}

func loginCommand(env *environment) *command {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	var d driveFlags
	d.bind(fs, 64)
	users := fs.Int("users", 200, "users to create before the run (POST /v1/register; 409 means it exists and is used)")
	wrongFrac := fs.Float64("wrong-frac", 0, "fraction of requests that are logins with a wrong password (401)")
	registerFrac := fs.Float64("register-frac", 0, "fraction of requests that register a new user (201)")
	password := fs.String("password", defaultPassword, "password of the benchmark users (must pass the server's policy)")
	seedConc := fs.Int("seed-concurrency", 8, "concurrent registrations while seeding (503/429 are retried after Retry-After)")
	seedTimeout := fs.Duration("seed-timeout", 5*time.Minute, "bound on the seeding phase; the run uses the users created by then")
	runID := fs.String("run-id", "", "tag in the benchmark emails bench-<run-id>-<i>@example.com (default random; reuse one to skip re-creating users)")
	capacity := fs.Duration("capacity", 0, "before the load, measure the raw Argon2id capacity (like the argon2 command) this long and print the saturation ratio; set -memory-kib/-iterations/-parallelism to the server's")
	capacityAfter := fs.Bool("capacity-after", false, "with -capacity: measure the raw capacity again after the load and also compare with the mean of both (a machine whose background load drifts)")
	var p argon2Params
	p.bind(fs)
	c := &command{name: "login", flags: fs, summary: "seed -users, then drive POST /v1/login (optionally wrong passwords and registrations)"}
	c.exec = func(ctx context.Context, stdout, stderr io.Writer) error {
		base, err := d.check()
		if err != nil {
			return err
		}
		switch {
		case *users < 1:
			return usagef("-users must be at least 1")
		case *seedConc < 1 || *seedTimeout <= 0:
			return usagef("-seed-concurrency and -seed-timeout must be positive")
		case *wrongFrac < 0 || *registerFrac < 0 || *wrongFrac+*registerFrac > 1 || math.IsNaN(*wrongFrac+*registerFrac):
			return usagef("-wrong-frac and -register-frac must be in [0,1] and add up to at most 1")
		case *capacity < 0:
			return usagef("-capacity must not be negative")
		}
		if err := p.check(); err != nil {
			return err
		}
		if *runID == "" {
			*runID = newRunID()
		}
		client := newClient(max(d.concurrency, *seedConc))
		defer closeClient(client)

		emails := make([]string, *users)
		for i := range emails {
			emails[i] = fmt.Sprintf("bench-%s-%d@example.com", *runID, i)
		}
		fmt.Fprintf(stderr, "authbench login: seeding %d users (run id %s)...\n", *users, *runID)
		seeded, seedRep, err := seedUsers(ctx, newAPI(env, client, base), emails, *password, *seedConc, *seedTimeout)
		if err != nil {
			return err
		}
		if seedRep.TimedOut {
			fmt.Fprintf(stderr, "authbench login: seed timeout: running with %d of %d users\n", len(seeded), *users)
		}

		loginURL := base.JoinPath("/v1/login").String()
		registerURL := base.JoinPath("/v1/register").String()
		good := make([][]byte, len(seeded))
		bad := make([][]byte, len(seeded))
		for i, e := range seeded {
			good[i] = credentialsJSON(e, *password)
			bad[i] = credentialsJSON(e, "wrong: "+*password)
		}
		nonce := newRunID()[:4]
		next := func(ctx context.Context, w *worker) (*http.Request, error) {
			u, body := loginURL, good[w.rng.IntN(len(good))]
			switch r := w.rng.Float64(); {
			case r < *registerFrac:
				u = registerURL
				body = credentialsJSON(fmt.Sprintf("bench-%s-r%s-w%d-%d@example.com", *runID, nonce, w.id, w.seq), *password)
			case r < *registerFrac+*wrongFrac:
				body = bad[w.rng.IntN(len(bad))]
			}
			return jsonRequest(ctx, u, body)
		}
		var capRep *capacityReport
		if *capacity > 0 {
			fmt.Fprintf(stderr, "authbench login: measuring raw Argon2id capacity for %s...\n", *capacity)
			r := measureCapacity(ctx, p, runtime.NumCPU(), *capacity)
			capRep = &r
		}
		fmt.Fprintf(stderr, "authbench login: %d workers for %s...\n", d.concurrency, d.duration)
		rep, err := d.drive(ctx, env, client, "login", http.MethodPost, loginURL, next)
		if rep != nil {
			rep.Seed = &seedRep
			if capRep != nil {
				rep.Capacity = newSaturation(rep, *capRep)
				if *capacityAfter && err == nil && ctx.Err() == nil {
					fmt.Fprintf(stderr, "authbench login: measuring raw Argon2id capacity again for %s...\n", *capacity)
					rep.Capacity.after(measureCapacity(ctx, p, runtime.NumCPU(), *capacity))
				}
			}
			if perr := d.print(stdout, rep); perr != nil && err == nil {
				err = perr
			}
		}
		return err
	}
	return c
}

func jsonRequest(ctx context.Context, u string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

func getRequest(u, bearer string) requestFunc {
	return func(ctx context.Context, _ *worker) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return req, nil
	}
}

// meSetup registers one user and logs it in once, returning its access token.
func meSetup(ctx context.Context, env *environment, client *http.Client, base *url.URL, runID, password string) (string, error) {
	a := newAPI(env, client, base)
	email := fmt.Sprintf("bench-%s-me@example.com", runID)
	var st attemptStats
	if _, err := a.register(ctx, email, password, &st); err != nil {
		return "", err
	}
	return a.login(ctx, email, password, &st)
}

func meCommand(env *environment) *command {
	fs := flag.NewFlagSet("me", flag.ContinueOnError)
	var d driveFlags
	d.bind(fs, 32)
	password := fs.String("password", defaultPassword, "password of the benchmark user")
	runID := fs.String("run-id", "", "tag in the email bench-<run-id>-me@example.com (default random)")
	c := &command{name: "me", flags: fs, summary: "register and log in one user, then drive GET /v1/me with its bearer token (keep -duration under the access-token TTL)"}
	c.exec = func(ctx context.Context, stdout, stderr io.Writer) error {
		base, err := d.check()
		if err != nil {
			return err
		}
		if *runID == "" {
			*runID = newRunID()
		}
		client := newClient(d.concurrency)
		defer closeClient(client)
		token, err := meSetup(ctx, env, client, base, *runID, *password)
		if err != nil {
			return err
		}
		target := base.JoinPath("/v1/me").String()
		rep, err := d.drive(ctx, env, client, "me", http.MethodGet, target, getRequest(target, token))
		if rep != nil {
			if perr := d.print(stdout, rep); perr != nil && err == nil {
				err = perr
			}
		}
		return err
	}
	return c
}

func getCommand(env *environment) *command {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	var d driveFlags
	d.bind(fs, 32)
	path := fs.String("path", "/healthz", "path to GET, without authentication")
	c := &command{name: "get", flags: fs, summary: "drive GET -path (default /healthz, the bare route)"}
	c.exec = func(ctx context.Context, stdout, stderr io.Writer) error {
		base, err := d.check()
		if err != nil {
			return err
		}
		target, err := joinPath(base, *path)
		if err != nil {
			return err
		}
		client := newClient(d.concurrency)
		defer closeClient(client)
		rep, err := d.drive(ctx, env, client, "get", http.MethodGet, target, getRequest(target, ""))
		if rep != nil {
			if perr := d.print(stdout, rep); perr != nil && err == nil {
				err = perr
			}
		}
		return err
	}
	return c
}

// joinPath resolves a path (with an optional query) against the base URL,
// keeping the base's host: a path cannot redirect the load elsewhere.
func joinPath(base *url.URL, p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", usagef("-path must start with /")
	}
	ref, err := url.Parse(p)
	if err != nil || ref.Host != "" || ref.Scheme != "" {
		return "", usagef("-path %q: not a path", p)
	}
	u := *base
	u.Path, u.RawPath, u.RawQuery = ref.Path, ref.RawPath, ref.RawQuery
	return u.String(), nil
}

// comparison is the output of me-vs-bare.
type comparison struct {
	Me    *report `json:"me"`
	Bare  *report `json:"bare"`
	Ratio float64 `json:"ratio"`
}

func meVsBareCommand(env *environment) *command {
	fs := flag.NewFlagSet("me-vs-bare", flag.ContinueOnError)
	var d driveFlags
	d.bind(fs, 32)
	password := fs.String("password", defaultPassword, "password of the benchmark user")
	runID := fs.String("run-id", "", "tag in the email bench-<run-id>-me@example.com (default random)")
	path := fs.String("path", "/healthz", "the bare route to compare with")
	c := &command{name: "me-vs-bare", flags: fs, summary: "run me, then get -path, back to back with the same settings, and print the throughput ratio"}
	c.exec = func(ctx context.Context, stdout, stderr io.Writer) error {
		base, err := d.check()
		if err != nil {
			return err
		}
		bare, err := joinPath(base, *path)
		if err != nil {
			return err
		}
		if *runID == "" {
			*runID = newRunID()
		}
		client := newClient(d.concurrency)
		defer closeClient(client)
		token, err := meSetup(ctx, env, client, base, *runID, *password)
		if err != nil {
			return err
		}
		me := base.JoinPath("/v1/me").String()
		fmt.Fprintf(stderr, "authbench me-vs-bare: GET %s for %s...\n", me, d.duration)
		meRep, err := d.drive(ctx, env, client, "me", http.MethodGet, me, getRequest(me, token))
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "authbench me-vs-bare: GET %s for %s...\n", bare, d.duration)
		bareRep, err := d.drive(ctx, env, client, "bare", http.MethodGet, bare, getRequest(bare, ""))
		if err != nil {
			return err
		}
		for _, r := range []*report{meRep, bareRep} {
			if bad := r.Completed - okAnswers(r); bad > 0 || r.ClientErrors.Total > 0 {
				fmt.Fprintf(stderr, "authbench me-vs-bare: warning: %s run had %d non-2xx answers and %d client errors; the ratio is suspect\n",
					r.Name, bad, r.ClientErrors.Total)
			}
		}
		cmp := comparison{Me: meRep, Bare: bareRep}
		if bareRep.Throughput > 0 {
			cmp.Ratio = meRep.Throughput / bareRep.Throughput
		}
		if d.json {
			return writeJSON(stdout, cmp)
		}
		if err := writeText(stdout, meRep); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		if err := writeText(stdout, bareRep); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "\nratio  GET /v1/me %.1f req/s / GET %s %.1f req/s = %.3f\n",
			meRep.Throughput, *path, bareRep.Throughput, cmp.Ratio)
		return err
	}
	return c
}

// okAnswers counts the 2xx answers of a report.
func okAnswers(r *report) int64 {
	var n int64
	for _, s := range r.ByStatus {
		if s.Code >= 200 && s.Code < 300 {
			n += int64(s.Count)
		}
	}
	return n
}
