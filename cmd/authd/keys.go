package main

import (
	"context"
	"fmt"
	"io"

	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/config"
)

// runKeys is `authd keys rotate [flags]`: it adds a new signing key to the
// database. Every instance signs with it once it has picked it up (within a
// minute, or at once on meeting a token with its kid); the old key keeps
// verifying until every token it signed has expired.
func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return fmt.Errorf("%w: authd keys rotate [flags]", errUsage)
	}
	cfg, err := config.Parse(args[1:], getenv, stdout)
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
