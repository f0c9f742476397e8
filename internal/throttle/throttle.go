// Package throttle slows down password guessing against one account: after a
// few failed logins, each further attempt must wait for a delay that doubles
// with every failure, up to a cap. It keeps its counters in an
// auth.StateStore, so with Redis every instance sees the same counts.
//
// # How a login uses it
//
//	wait, err := t.Check(ctx, email, clientIP) // before hashing
//	if err != nil { ... 503 ... }
//	if wait > 0 { ... 429 rate_limited, Retry-After: ceil(wait) ... }
//	ok := verify(password)                      // the expensive hash
//	if ok { t.Success(ctx, email, clientIP) } else { t.Failure(ctx, email, clientIP) }
//
// Unknown and existing emails go through the same steps, so the throttle
// reveals nothing about which accounts exist.
//
// # The limit (NIST SP 800-63B §5.2.2)
//
// FreeFailures failures (default 5) cost nothing, so a user who mistypes a
// few times never notices. Failure number n > FreeFailures opens a window of
// BaseDelay·2^(n-FreeFailures-1), capped at MaxDelay (defaults: 1 s, 2 s,
// 4 s, … 512 s, then 15 min), during which Check refuses every attempt on the
// account without hashing. Refused attempts are not failures and do not
// lengthen the window. With the defaults a patient attacker gets 15 guesses
// in the first 17 minutes and then one per 15 minutes: at most 18 in any
// hour and 110 in any 24 hours (measured by TestAttackerBudget), far below
// what online guessing needs. Once an account is being delayed, its counts
// are kept for Window (default 24 h) after the last failure, so an attacker
// who keeps guessing never gets a fresh set of free failures; an account
// with only a few failures forgets them Window after the first.
//
// NIST limits consecutive failures on an account to 100 and suggests, as
// here, waits that grow as the account nears that limit. The throttle keeps
// any short period well under 100 but does not stop at the 100th failure:
// over days the count keeps growing at 4 an hour. A hard stop would let
// anyone lock any account until a password reset, which this design avoids
// on purpose.
//
// Concurrency cannot be used to slip past the limit: Check admits at most
// FreeFailures+1 attempts at once on a fresh account (an atomic counter), and
// once the account is being delayed it admits one attempt at a time (an
// atomic claim that Failure or Success releases). Check reads the window
// again after taking the claim, so a window opened meanwhile is respected.
//
// # Why the owner is never locked out for good
//
// Every window expires by itself, at most MaxDelay after the failure that
// opened it, and the owner's next correct password (Success) clears the
// account's counts. Password reset does not go through the throttle, so it
// always works, and it ends every session an attacker might have opened; a
// completed reset proves control of the account as well as a login does, so
// the reset handler should call Success (with the reset request's client
// key) to let the owner sign in with the new password at once.
//
// # The per-client counter
//
// Failures are also counted per (account, client) pair, where the client is
// usually its IP address, and that pair has windows of its own. The owner's
// Success clears the account's counts and the owner's own pair, but not the
// attacker's pair: an attacker who kept guessing from one client stays
// delayed at its escalated rate instead of getting FreeFailures fresh guesses
// every time the owner logs in, while after that login the owner's client is
// no longer held back by the attacker's history. An attacker who spreads
// guesses over many clients is still counted against the account as a whole.
//
// # What reaches the store
//
// Keys never contain an email address or client key, only a truncated
// SHA-256 (or, with Params.HashKey, HMAC-SHA-256) of each, so a dump of Redis
// names no user. All keys of one account share a {hash tag}, so they live on
// one Redis Cluster slot. Window ends are stored as timestamps and compared
// with the injected clock; the keys' ttls only clean them up.
package throttle

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"

	"github.com/authd/authd/internal/auth"
)

// Defaults for the zero fields of Params.
const (
	DefaultFreeFailures   = 5
	DefaultBaseDelay      = time.Second
	DefaultMaxDelay       = 15 * time.Minute
	DefaultWindow         = 24 * time.Hour
	DefaultAttemptTimeout = 10 * time.Second
)

// Params configures a Throttle. A zero or negative field takes its default.
type Params struct {
	// FreeFailures is how many failures cost no delay. Default 5.
	FreeFailures int
	// BaseDelay is the first delay, doubled with each further failure. Default 1s.
	BaseDelay time.Duration
	// MaxDelay caps the delay. Default 15m; raised to BaseDelay if below it.
	MaxDelay time.Duration
	// Window is how long failure counts are kept: from the first failure,
	// and once the account is being delayed, from the last. Default 24h.
	Window time.Duration
	// AttemptTimeout bounds how long an admitted attempt on a delayed
	// account holds its claim when the caller reports neither Success nor
	// Failure (an overload error, a crash). It should exceed the longest
	// login: queue wait plus hash. Default 10s.
	AttemptTimeout time.Duration
	// HashKey, when set, keys the hash of emails and client keys
	// (HMAC-SHA-256), so that a copy of the store cannot be matched against a
	// list of addresses. Every instance sharing the store must use the same.
	HashKey []byte
}

func (p Params) withDefaults() Params {
	if p.FreeFailures <= 0 {
		p.FreeFailures = DefaultFreeFailures
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	p.MaxDelay = max(p.MaxDelay, p.BaseDelay)
	if p.Window <= 0 {
		p.Window = DefaultWindow
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = DefaultAttemptTimeout
	}
	return p
}

// delay returns the window opened by failure number n: none up to
// FreeFailures, then BaseDelay doubling per failure, capped at MaxDelay.
func (p Params) delay(n int64) time.Duration {
	if n <= int64(p.FreeFailures) {
		return 0
	}
	shift := n - int64(p.FreeFailures) - 1
	if shift >= 62 || p.BaseDelay > p.MaxDelay>>shift {
		return p.MaxDelay
	}
	return p.BaseDelay << shift
}

// windowSlack keeps a window's key a little past the window's end: the end
// is compared with the injected clock, and the ttl only cleans up.
const windowSlack = time.Minute

// Throttle limits failed logins per account; see the package doc. It holds no
// state of its own beyond the store, so every method is safe for concurrent
// use, also from several instances sharing one store.
type Throttle struct {
	st  auth.StateStore
	p   Params
	now func() time.Time
}

// New returns a Throttle that keeps its counts in st, with p's zero fields
// set to the defaults and time read from now. A nil store or clock is an
// error.
func New(st auth.StateStore, p Params, now func() time.Time) (*Throttle, error) {
	if st == nil || now == nil {
		return nil, errors.New("throttle: a store and a clock are required")
	}
	return &Throttle{st: st, p: p.withDefaults(), now: now}, nil
}

// keys names the entries of one account and one of its clients.
type keys struct {
	attempts   string // attempts admitted since the last success
	failures   string // failures on the account
	window     string // end of the account's window (unix ns)
	claim      string // held by the one attempt in flight on a delayed account
	pairFails  string // failures of this client on this account
	pairWindow string // end of this client's window on this account
}

func (t *Throttle) keys(email, clientKey string) keys {
	// "{acct}" is a Redis Cluster hash tag: one slot per account.
	acct := "throttle:{" + t.digest("email", auth.NormalizeEmail(email)) + "}:"
	pair := acct + "c:" + t.digest("client", clientKey) + ":"
	return keys{
		attempts:   acct + "a",
		failures:   acct + "f",
		window:     acct + "w",
		claim:      acct + "l",
		pairFails:  pair + "f",
		pairWindow: pair + "w",
	}
}

// digest returns 128 bits of a keyed or plain SHA-256 of s, in hex. The
// kind separates the email and client namespaces.
func (t *Throttle) digest(kind, s string) string {
	var h hash.Hash
	if len(t.p.HashKey) > 0 {
		h = hmac.New(sha256.New, t.p.HashKey)
	} else {
		h = sha256.New()
	}
	h.Write([]byte("authd throttle " + kind + "\x00"))
	h.Write([]byte(s))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// Check decides whether a login attempt on email from clientKey may go
// ahead. It returns 0 when the attempt is admitted; the caller then hashes
// and reports the outcome with exactly one Success or Failure. Otherwise it
// returns how long to wait (answer 429 with Retry-After rounded up to whole
// seconds, without hashing, and report nothing). An error (wrapping
// auth.ErrUnavailable when the store is down) admits nothing; callers should
// fail closed with 503. email is normalised here too. Check may block for a
// few store round trips.
func (t *Throttle) Check(ctx context.Context, email, clientKey string) (retryAfter time.Duration, err error) {
	k := t.keys(email, clientKey)
	vals, err := t.st.MGet(ctx, k.window, k.pairWindow, k.failures, k.pairFails)
	if err != nil {
		return 0, fmt.Errorf("throttle: check: %w", err)
	}
	now := t.now()
	wait, err := remaining(now, vals[0], vals[1])
	if err != nil || wait > 0 {
		return wait, err
	}
	fails, err := counts(vals[2], vals[3])
	if err != nil {
		return 0, err
	}

	attempts, err := t.st.Incr(ctx, k.attempts, t.p.Window)
	if err != nil {
		return 0, fmt.Errorf("throttle: check: count attempt: %w", err)
	}
	free := int64(t.p.FreeFailures)
	if attempts <= free && fails[0] < free && fails[1] < free {
		return 0, nil // still within the free failures, even if all in flight fail
	}

	// The account or this client is being delayed: one attempt at a time.
	won, err := t.st.SetNX(ctx, k.claim, nil, t.p.AttemptTimeout)
	if err != nil {
		return 0, fmt.Errorf("throttle: check: claim: %w", err)
	}
	if !won {
		// Another attempt is in flight; if it fails, a window opens.
		return t.p.BaseDelay, nil
	}
	// A window may have opened between the first read and the claim.
	vals, err = t.st.MGet(ctx, k.window, k.pairWindow)
	if err != nil {
		t.release(ctx, k)
		return 0, fmt.Errorf("throttle: check: %w", err)
	}
	wait, err = remaining(now, vals[0], vals[1])
	if err != nil || wait > 0 {
		t.release(ctx, k)
		return wait, err
	}
	return 0, nil
}

// release gives up the claim of a refused attempt. Failing to is harmless:
// the claim lapses after AttemptTimeout.
func (t *Throttle) release(ctx context.Context, k keys) { _ = t.st.Delete(ctx, k.claim) }

// Failure records that an attempt admitted by Check failed: it counts the
// failure on the account and on the (account, client) pair, opens a window
// on each whose count is past FreeFailures, and then frees the account for
// the next attempt. Call it for wrong passwords on unknown emails too.
func (t *Throttle) Failure(ctx context.Context, email, clientKey string) error {
	k := t.keys(email, clientKey)
	now := t.now()
	var errs []error
	// Windows are written before the claim is released, so the next
	// attempt's Check sees them.
	for _, c := range []struct{ count, window string }{
		{k.failures, k.window},
		{k.pairFails, k.pairWindow},
	} {
		if err := t.fail(ctx, now, c.count, c.window); err != nil {
			errs = append(errs, err)
		}
	}
	if err := t.st.Delete(ctx, k.claim); err != nil {
		errs = append(errs, fmt.Errorf("throttle: failure: release: %w", err))
	}
	return errors.Join(errs...)
}

func (t *Throttle) fail(ctx context.Context, now time.Time, countKey, windowKey string) error {
	n, err := t.st.Incr(ctx, countKey, t.p.Window)
	if err != nil {
		return fmt.Errorf("throttle: failure: count: %w", err)
	}
	d := t.p.delay(n)
	if d == 0 {
		return nil
	}
	end := strconv.AppendInt(nil, now.Add(d).UnixNano(), 10)
	if err := t.st.Set(ctx, windowKey, end, d+windowSlack); err != nil {
		return fmt.Errorf("throttle: failure: open window: %w", err)
	}
	// Keep a delayed account's count for Window after its last failure, so
	// a persistent attacker never gets a fresh set of free failures. Delayed
	// attempts run one at a time (the claim), so this write loses no
	// increment, except at most the few free attempts still in flight when
	// the first window opens: that shortens one window by a step, no more.
	if err := t.st.Set(ctx, countKey, strconv.AppendInt(nil, n, 10), t.p.Window); err != nil {
		return fmt.Errorf("throttle: failure: keep count: %w", err)
	}
	return nil
}

// Success records that an attempt admitted by Check succeeded (the password
// was right): it clears the account's counts and window, and this client's
// pair. Other clients' pairs are kept; see the package doc.
func (t *Throttle) Success(ctx context.Context, email, clientKey string) error {
	k := t.keys(email, clientKey)
	if err := t.st.Delete(ctx, k.attempts, k.failures, k.window, k.claim, k.pairFails, k.pairWindow); err != nil {
		return fmt.Errorf("throttle: success: %w", err)
	}
	return nil
}

// remaining returns the time left in the later of the windows whose ends
// are stored in ends (nil: no window).
func remaining(now time.Time, ends ...[]byte) (time.Duration, error) {
	var wait time.Duration
	for _, b := range ends {
		if b == nil {
			continue
		}
		ns, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("throttle: check: corrupt window end %q", b)
		}
		wait = max(wait, time.Unix(0, ns).Sub(now))
	}
	return wait, nil
}

// counts parses stored counters (nil: 0).
func counts(vals ...[]byte) ([]int64, error) {
	out := make([]int64, len(vals))
	for i, b := range vals {
		if b == nil {
			continue
		}
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("throttle: check: corrupt failure count %q", b)
		}
		out[i] = n
	}
	return out, nil
}
