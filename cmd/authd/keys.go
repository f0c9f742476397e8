package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/config"
)

// runKeys is `authd keys rotate [flags]`: it adds a new signing key to the
// database. Every instance signs with it once it has picked it up (within a
// minute, or at once on meeting a token with its kid); the old key keeps
// verifying until every token it signed has expired. app.RotateKey checks
// everything before it writes; -h prints the help of this command alone.
func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelpFlag(args[0]) {
		keysUsage(stdout)
		return config.ErrHelp
	}
	if len(args) == 0 || args[0] != "rotate" {
		return fmt.Errorf("%w: authd keys rotate [flags] (authd keys rotate -h explains)", errUsage)
	}
	cfg, err := config.Parse(args[1:], getenv, io.Discard)
	if errors.Is(err, config.ErrHelp) {
		keysUsage(stdout)
		return err
	}
	if err != nil {
		return err
	}
	kid, err := app.RotateKey(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing key %s\n", kid)
	return nil
}

func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// keysUsage is the help of `authd keys`.
func keysUsage(out io.Writer) {
	fmt.Fprint(out, `Usage: authd keys rotate [flags]

Adds a new signing key to the database and makes it the current one. Every
instance signs with it within AUTHD_KEY_RELOAD_INTERVAL (at once on meeting a
token with its kid); the old key keeps verifying until every token it signed
has expired. Nothing is written unless every check passes: the settings, that
the database exists and holds signing keys, and that each of them opens with
the secret. Without AUTHD_SECRET_KEY (SQLite only) the secret the database
already holds is used; none is ever generated.

Settings it reads (each an environment variable and the same-named flag; a
flag wins; authd -h lists every setting):

`)
	config.UsageOf(out, "AUTHD_DATABASE_URL", "AUTHD_SECRET_KEY", "AUTHD_ACCESS_TOKEN_TTL", "AUTHD_KEY_RELOAD_INTERVAL", "AUTHD_LOG_LEVEL", "AUTHD_LOG_FORMAT")
}
