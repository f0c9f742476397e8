// Command authd is the authentication service: registration, password login,
// JWT access tokens with refresh and revocation. `authd -h` lists its
// settings; `authd keys rotate` adds a new token signing key. Email and SMS
// delivery and MFA are not built yet (docs/API.md lists what is missing).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/authd/authd/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

// exitCode maps run's error to the process status: 0 clean, 2 bad settings
// (the one line naming the setting is printed), 1 anything else.
func exitCode(err error) int {
	var ce *config.Error
	switch {
	case err == nil, errors.Is(err, config.ErrHelp):
		return 0
	case errors.As(err, &ce), errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "authd:", err)
		return 2
	default:
		fmt.Fprintln(os.Stderr, "authd:", err)
		return 1
	}
}
