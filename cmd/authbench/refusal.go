package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// refusalComparison is the output of refusal-vs-bare.
type refusalComparison struct {
	Refusals *report `json:"refusals"`
	Bare     *report `json:"bare"`
	// Keepers are the background clients of each run, when -keepers > 0.
	RefusalKeepers *report `json:"refusal_keepers,omitempty"`
	BareKeepers    *report `json:"bare_keepers,omitempty"`
	// RefusalRate is the 503 answers per second of the flood, BareRate the
	// 2xx answers per second of the bare route; Ratio is the first over the
	// second.
	RefusalRate float64 `json:"refusal_rps"`
	BareRate    float64 `json:"bare_rps"`
	Ratio       float64 `json:"ratio"`
}

// wrongLogin builds logins for emails nobody registered, a new one for every
// request (so the per-account throttle never steps in): a login the server
// admits costs one hash and answers 401; one it refuses answers 503.
func wrongLogin(loginURL, runID string) requestFunc {
	return func(ctx context.Context, w *worker) (*http.Request, error) {
		email := fmt.Sprintf("bench-%s-nobody-w%d-%d@example.com", runID, w.id, w.seq)
		return jsonRequest(ctx, loginURL, credentialsJSON(email, "authbench: a wrong password, long enough"))
	}
}

func refusalVsBareCommand(env *environment) *command {
	fs := flag.NewFlagSet("refusal-vs-bare", flag.ContinueOnError)
	var d driveFlags
	d.bind(fs, 256)
	path := fs.String("path", "/healthz", "the bare route to compare with")
	keepers := fs.Int("keepers", 8, "clients that keep the hash pool busy during both runs (logins of unknown emails, honouring Retry-After), so that both runs share the same hashing in the background; 0 = none")
	runID := fs.String("run-id", "", "tag in the (unregistered) emails of the logins (default random)")
	c := &command{name: "refusal-vs-bare", flags: fs, summary: "flood POST /v1/login while the hash pool is full, then GET -path, each beside -keepers clients that keep the pool busy, and print the rate of 503 answers against the bare rate"}
	c.exec = func(ctx context.Context, stdout, stderr io.Writer) error {
		base, err := d.check()
		if err != nil {
			return err
		}
		bare, err := joinPath(base, *path)
		if err != nil {
			return err
		}
		if *keepers < 0 {
			return usagef("-keepers must not be negative")
		}
		if *runID == "" {
			*runID = newRunID()
		}
		client := newClient(d.concurrency + *keepers)
		defer closeClient(client)
		loginURL := base.JoinPath("/v1/login").String()

		// phase runs one measured load beside the keepers.
		phase := func(name, method, target string, next requestFunc) (rep, keep *report, err error) {
			kctx, stop := context.WithCancel(ctx)
			defer stop()
			var (
				wg  sync.WaitGroup
				kl  *load
				res *result
			)
			if *keepers > 0 {
				kl = &load{
					client: client, concurrency: *keepers, duration: d.warmup + d.duration, grace: d.grace,
					seed: d.seed + 1, next: wrongLogin(loginURL, *runID+"k"+name), now: env.now,
					retry: retryPolicy{honour: true, jitter: d.jitter, wait: env.wait},
				}
				wg.Go(func() { res = kl.run(kctx) })
			}
			fmt.Fprintf(stderr, "authbench refusal-vs-bare: %s %s for %s beside %d keepers...\n", method, target, d.duration, *keepers)
			rep, err = d.drive(ctx, env, client, name, method, target, next)
			stop()
			wg.Wait()
			if kl != nil {
				keep = newReport(name+" keepers", http.MethodPost, loginURL, kl, res)
			}
			return rep, keep, err
		}

		var cmp refusalComparison
		cmp.Refusals, cmp.RefusalKeepers, err = phase("refusals", http.MethodPost, loginURL, wrongLogin(loginURL, *runID))
		if err != nil {
			return err
		}
		cmp.Bare, cmp.BareKeepers, err = phase("bare", http.MethodGet, bare, getRequest(bare, ""))
		if err != nil {
			return err
		}
		cmp.RefusalRate = statusRate(cmp.Refusals, http.StatusServiceUnavailable)
		for _, s := range cmp.Bare.ByStatus {
			if s.Code >= 200 && s.Code < 300 {
				cmp.BareRate += s.Rate
			}
		}
		if cmp.BareRate > 0 {
			cmp.Ratio = cmp.RefusalRate / cmp.BareRate
		}
		if cmp.RefusalRate < 0.5*cmp.Refusals.Throughput {
			fmt.Fprintf(stderr, "authbench refusal-vs-bare: warning: only %.0f of %.0f answers/s were 503: the pool was not full, raise -concurrency\n",
				cmp.RefusalRate, cmp.Refusals.Throughput)
		}
		if d.json {
			return writeJSON(stdout, cmp)
		}
		for _, r := range []*report{cmp.Refusals, cmp.RefusalKeepers, cmp.Bare, cmp.BareKeepers} {
			if r == nil {
				continue
			}
			if err := writeText(stdout, r); err != nil {
				return err
			}
			fmt.Fprintln(stdout)
		}
		_, err = fmt.Fprintf(stdout, "ratio  503 answers of POST /v1/login %.1f/s / GET %s %.1f/s = %.3f\n",
			cmp.RefusalRate, *path, cmp.BareRate, cmp.Ratio)
		return err
	}
	return c
}

// statusRate is the rate of answers with code in r.
func statusRate(r *report, code int) float64 {
	for _, s := range r.ByStatus {
		if s.Code == code {
			return s.Rate
		}
	}
	return 0
}
