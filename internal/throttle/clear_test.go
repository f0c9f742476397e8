package throttle_test

import (
	"testing"
	"time"

	"github.com/authd/authd/internal/throttle"
)

// A password reset clears the account's window at once: the owner logs in
// from the client that reset, and from any other, without waiting; the
// attacker's own pair stays delayed.
func TestClear(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, throttle.Params{})
		for range throttle.DefaultFreeFailures + 1 {
			e.attempt(t, alice, attacker)
		}
		e.wantCheck(t, alice, clientA, time.Second)
		if err := e.th.Clear(t.Context(), " Alice@Example.com", clientA); err != nil {
			t.Fatalf("Clear: %v", err)
		}
		e.wantCheck(t, alice, clientA, 0)
		e.wantCheck(t, alice, "192.0.2.1", 0)
		e.wantCheck(t, alice, attacker, time.Second)
	})
}
