// Command authbench is the load tool for authd: it sizes a deployment and
// produces the figures in docs/benchmarks.md.
//
// It seeds users and drives logins (and optionally wrong passwords and new
// registrations) at a given concurrency for a given time, drives GET /v1/me
// or any bare GET route, compares the two, compares what a refusal for
// overload (503) costs with the bare route, drives registrations (each
// queues an email) while serving as a healthy, slow or hanging mail server
// for authd's Courier (smtp-sink), measures the raw Argon2id capacity
// of the machine, and runs a deliberately naive server as a baseline. Its
// clients either send their next request at once or, with -retry-after
// honour, sleep the Retry-After of a 503 or 429 first, as well-behaved SDKs
// do. For
// every run it prints throughput, latency percentiles overall and per status
// code, counts by status code, client-side errors (timeouts, connection
// failures) apart from answers, and the Retry-After values the server sent;
// given the admin listener it also prints the deltas of authd's counters and
// the peak resident memory of the server during the run. -json prints the
// same for machines.
//
// authbench only talks to loopback addresses (127.0.0.0/8, ::1, localhost):
// this workplace forbids generating load against other hosts, so any other
// target is refused, both when the flags are read and again when dialling.
//
// Run "authbench -h" for the subcommands and their flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: its flag set (already bound to its settings) and
// what it does once the flags are parsed.
type command struct {
	name    string
	summary string
	flags   *flag.FlagSet
	exec    func(ctx context.Context, stdout, stderr io.Writer) error
}

// commands builds every subcommand, each with fresh settings.
func commands(env *environment) []*command {
	return []*command{
		loginCommand(env),
		meCommand(env),
		getCommand(env),
		meVsBareCommand(env),
		refusalVsBareCommand(env),
		argon2Command(env),
		naiveCommand(env),
		registerCommand(env),
		smtpSinkCommand(env),
	}
}

// environment is what subcommands take from the outside world.
type environment struct {
	now func() time.Time
	// wait pauses between retries of set-up calls (honouring Retry-After);
	// it returns early with ctx's error.
	wait func(ctx context.Context, d time.Duration) error
}

const usageHead = `authbench: load tool for authd (loopback targets only).

Usage:
  authbench <command> [flags]
  authbench <command> -h     flags of one command

Commands:
`

const usageTail = `
Only loopback targets are allowed: every URL must name 127.0.0.0/8, ::1 or
localhost, and the dialer refuses any other address (this workplace forbids
load on other hosts). The naive server and smtp-sink only listen on a
loopback address.

authd's per-client rate limit (AUTHD_RATE_LIMIT_RPS/BURST) applies to the
auth endpoints, and all load comes from one address: raise the limit for a
capacity test, or start authd with AUTHD_TRUSTED_PROXIES=127.0.0.1/32 and
pass -forwarded-for so that each worker is its own client (198.18.0.0/15,
the benchmarking range).

authbench runs on the server's machine and shares its CPUs: for cheap routes
(me-vs-bare) its own cost is part of both figures; the ratio still compares
like with like.

Examples:
  authbench login -url http://127.0.0.1:8080 -admin http://127.0.0.1:9090 -users 200 -concurrency 64 -duration 30s
  authbench login -concurrency 256 -duration 30s -timeout 200ms -admin http://127.0.0.1:9090
  authbench me-vs-bare -url http://127.0.0.1:8080 -concurrency 32 -duration 10s
  authbench refusal-vs-bare -concurrency 256 -keepers 8 -duration 20s -admin http://127.0.0.1:9090
  authbench login -concurrency 256 -duration 20s -retry-after honour -capacity 10s
  authbench argon2 -duration 10s
  authbench naive -addr 127.0.0.1:8181 &
  authbench smtp-sink -addr 127.0.0.1:2525 -delay 2s -duration 1m &
  authbench register -concurrency 8 -duration 15s -forwarded-for -admin http://127.0.0.1:9090
  authbench login -url http://127.0.0.1:8181 -rss-url http://127.0.0.1:8181/debug/rss -concurrency 256
`

func usage(w io.Writer, cmds []*command) {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-16s %s\n", c.name, c.summary)
	}
	b.WriteString(usageTail)
	for _, c := range cmds {
		fmt.Fprintf(&b, "\nFlags of %s:\n", c.name)
		c.flags.SetOutput(&b)
		c.flags.PrintDefaults()
	}
	io.WriteString(w, b.String())
}

// run executes one invocation and returns the process exit code: 0 on
// success, 1 when the command failed, 2 on a usage error. It blocks until the
// command is done or ctx is cancelled (a load run then stops early and still
// prints what it measured).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, &environment{now: time.Now, wait: sleepCtx}, args, stdout, stderr)
}

// runWith is run with the environment given; tests use it to replace waits.
func runWith(ctx context.Context, env *environment, args []string, stdout, stderr io.Writer) int {
	cmds := commands(env)
	if len(args) == 0 {
		usage(stderr, cmds)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout, cmds)
		return 0
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		c.flags.SetOutput(stderr)
		if err := c.flags.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if c.flags.NArg() > 0 {
			fmt.Fprintf(stderr, "authbench %s: unexpected argument %q\n", c.name, c.flags.Arg(0))
			return 2
		}
		if err := c.exec(ctx, stdout, stderr); err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				fmt.Fprintf(stderr, "authbench %s: %v\n", c.name, err)
				return 2
			}
			fmt.Fprintf(stderr, "authbench %s: %v\n", c.name, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "authbench: unknown command %q (authbench -h lists them)\n", args[0])
	return 2
}

// usageError is a bad flag value: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }
