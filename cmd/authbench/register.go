package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// courierMetrics are the families register prints by default: the
// registrations, the Courier's deliveries and backlog, and the server's
// goroutines (a provider that hangs must not pile them up).
const courierMetrics = "authd_registrations_total,authd_notify_deliveries_total,authd_notify_outbox_pending,authd_notify_inflight,go_goroutines"

func registerCommand(env *environment) *command {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	var d driveFlags
	d.bind(fs, 8)
	fs.Lookup("metrics").DefValue = courierMetrics
	d.metrics = courierMetrics
	password := fs.String("password", defaultPassword, "password of the new users (must pass the server's policy)")
	runID := fs.String("run-id", "", "tag in the emails bench-<run-id>-<n>@example.com (default random)")
	c := &command{name: "register", flags: fs, summary: "drive POST /v1/register, every request a new account (each queues a verification email)"}
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
		target := base.JoinPath("/v1/register").String()
		// One count over all workers (and the warm-up): every email is new.
		var n atomic.Int64
		next := func(ctx context.Context, _ *worker) (*http.Request, error) {
			email := fmt.Sprintf("bench-%s-%d@example.com", *runID, n.Add(1))
			return jsonRequest(ctx, target, credentialsJSON(email, *password))
		}
		fmt.Fprintf(stderr, "authbench register: %d workers for %s (run id %s)...\n", d.concurrency, d.duration, *runID)
		rep, err := d.drive(ctx, env, client, "register", http.MethodPost, target, next)
		if rep != nil {
			if perr := d.print(stdout, rep); perr != nil && err == nil {
				err = perr
			}
		}
		return err
	}
	return c
}
