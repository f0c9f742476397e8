package throttle

import (
	"context"
	"fmt"
)

// Clear forgets the account-wide failure count and window of email, and
// those of its pair with clientKey (the client that proved its hold on the
// account), as a successful login without a device does, but without an
// attempt: a password reset proves the owner's hold on the mailbox, so the
// guesses made against the old password no longer count against the
// account. Other clients' pairs and devices are left to expire; attempts in
// flight keep their slots.
func (t *Throttle) Clear(ctx context.Context, email, clientKey string) error {
	sc := t.scope(email, clientKey, "")
	keys := make([]string, 0, 2*len(sc.counters))
	for _, c := range sc.counters {
		keys = append(keys, c.fails, c.window)
	}
	if err := t.st.Delete(ctx, keys...); err != nil {
		return fmt.Errorf("throttle: clear: %w", err)
	}
	return nil
}
