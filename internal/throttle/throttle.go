// Package throttle slows down password guessing against one account: after a
// few failed logins, each further attempt must wait for a delay that doubles
// with every failure, up to a cap. It keeps its counters in an
// auth.StateStore, so with Redis every instance sees the same counts.
//
// # How a login uses it
//
//	a, wait, err := t.Check(ctx, email, clientIP, device) // before hashing
//	if err != nil { ... 503 ... }
//	if wait > 0 { ... 429 rate_limited, Retry-After: ceil(wait) ... }
//	defer a.Release(ctx)          // the pool refused, the client left: give the slot back
//	ok, err := verify(password)   // the expensive hash
//	if ok { a.Success(ctx) } else if err == nil { a.Failure(ctx) }
//
// Every admitted attempt ends in exactly one of Success, Failure or
// Release, which gives back the slot it holds; later calls do nothing.
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
// who keeps guessing never gets a fresh set of free failures. A count of n
// free failures is kept FirstWindow·2^(n-1) after the last one (15 min for
// one, 4 h for five, never more than Window): a guesser who waits for them
// to be forgotten gets at most 4 guesses an hour, 96 a day, fewer than the
// delays allow, while the random emails of a spray are forgotten quickly.
//
// NIST limits consecutive failures on an account to 100 and suggests, as
// here, waits that grow as the account nears that limit. The throttle keeps
// any short period well under 100 but does not stop at the 100th failure:
// over days the count keeps growing at 4 an hour. A hard stop would let
// anyone lock any account until a password reset, which this design avoids
// on purpose.
//
// Concurrency cannot be used to slip past the limit. An admitted attempt
// holds one of the account's FreeFailures+1 slots, taken atomically (SetNX)
// with a value of its own, and gives back only that value (DeleteIfEqual),
// so one attempt's end never frees another's slot. The failures recorded
// plus the attempts in flight stay within FreeFailures+1 (so they can open
// at most the first window), and once the account is delayed one attempt
// runs at a time. Check reads slots, counts and windows again after taking
// a slot and backs off if they no longer leave room, so neither a failure
// recorded, a window opened nor a slot taken meanwhile slips past: with the
// defaults, any number of wrong passwords, simultaneous or staggered, get 6
// password checks before the first window (TestSlotBound). A slot whose
// attempt never ends (a crash) lapses after AttemptTimeout.
//
// # Why the owner is never locked out for good
//
// Every window expires by itself, at most MaxDelay after the failure that
// opened it, and the owner's next correct password (Success) clears the
// account's counts. Password reset does not go through the throttle, so it
// always works, and it ends every session an attacker might have opened.
//
// # Devices: no lockout lever
//
// Windows on the account are public (Retry-After), so an attacker who
// spends one guess at the end of each window keeps the owner on 429 for as
// long as the attack lasts. A device the owner has logged in from before
// escapes that (OWASP's device cookies): the caller verifies a device
// token it issued at a successful login and passes its id to Check, and the
// attempt is then held only by the counts of its own (account, device)
// pair, with the same free failures and windows, never by the account's or
// a client's. Its Success clears that pair only, so an owner who logs in
// often gives an attacker no fresh free failures; its failures are not
// counted on the account. An attacker thus gets the account's budget, plus
// one more per device token it has stolen; a wrong, forged or other
// account's token gets nothing (the caller passes no device).
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
// Keys never contain an email address, client key or device id, only a
// truncated SHA-256 (or, with Params.HashKey, HMAC-SHA-256) of each, so a
// dump of Redis names no user. All keys of one account share a {hash tag},
// so they live on one Redis Cluster slot. Window ends are stored as
// timestamps and compared with the injected clock; the keys' ttls only
// clean them up.
//
// A failed login on an unknown email leaves two entries (the account's count
// and the pair's) for FirstWindow, so a spray of random emails holds about
// 2 × hashing rate × FirstWindow entries; a good login leaves none. An
// in-process store may also be capped (memstate.WithMaxKeys): at the cap,
// an attempt that finds no room for its slot is refused with an error
// matching auth.ErrOverloaded (503), and a failure that finds no room for
// its count or window keeps its slot for as long as they would have lasted
// instead. Nothing held is dropped to make room, so a flood of new keys
// neither resets a budget nor opens a bypass.
package throttle

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
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
	DefaultFirstWindow    = 15 * time.Minute
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
	// Window is how long the failure count of a delayed account (or pair,
	// or device) is kept after its last failure. Default 24h.
	Window time.Duration
	// FirstWindow is how long a single failure is kept; each further free
	// failure doubles it, up to Window. Default 15m; lowered to Window if
	// above it.
	FirstWindow time.Duration
	// AttemptTimeout bounds how long an admitted attempt holds its slot
	// when the caller ends it with none of Success, Failure or Release (a
	// crash, a store outage). It should exceed the longest login: queue
	// wait plus hash. Default 10s.
	AttemptTimeout time.Duration
	// HashKey, when set, keys the hash of emails, client keys and device
	// ids (HMAC-SHA-256), so that a copy of the store cannot be matched
	// against a list of addresses. Every instance sharing the store must use
	// the same.
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
	if p.FirstWindow <= 0 {
		p.FirstWindow = DefaultFirstWindow
	}
	p.FirstWindow = min(p.FirstWindow, p.Window)
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

// keep returns how long a failure count of n is kept after its last
// failure: FirstWindow for one, doubling per failure up to Window, and
// Window once the count is delayed.
func (p Params) keep(n int64) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > int64(p.FreeFailures) {
		return p.Window
	}
	shift := n - 1
	if shift >= 62 || p.FirstWindow > p.Window>>shift {
		return p.Window
	}
	return p.FirstWindow << shift
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

// counter is a failure count and the end of the window it opened.
type counter struct{ fails, window string }

// scope names the entries that decide one attempt: the counters it is held
// by and records its failure on, and the prefix of its slots.
type scope struct {
	counters []counter // the first is the one whose slots are taken
	slots    string    // slot i is slots+strconv.Itoa(i)
	device   bool
}

// scope returns the entries of an attempt on email from clientKey, or with
// a device token (device non-empty) those of the (account, device) pair.
func (t *Throttle) scope(email, clientKey, device string) scope {
	// "{acct}" is a Redis Cluster hash tag: one slot per account.
	acct := "throttle:{" + t.digest("email", auth.NormalizeEmail(email)) + "}:"
	if device != "" {
		dev := acct + "d:" + t.digest("device", device) + ":"
		return scope{counters: []counter{{dev + "f", dev + "w"}}, slots: dev + "s", device: true}
	}
	pair := acct + "c:" + t.digest("client", clientKey) + ":"
	return scope{
		counters: []counter{{acct + "f", acct + "w"}, {pair + "f", pair + "w"}},
		slots:    acct + "s",
	}
}

// digest returns 128 bits of a keyed or plain SHA-256 of s, in hex. The
// kind separates the email, client and device namespaces.
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

// Attempt is one login attempt admitted by Check. It holds one of its
// account's slots until the caller ends it with exactly one of Success,
// Failure or Release; the first of them ends it and later calls do nothing
// and return nil, so `defer a.Release(ctx)` after Check is the safe idiom.
// The methods give the slot back even when ctx is cancelled (a client that
// left must not leave its slot behind); the store's own timeouts bound them.
// An Attempt is not for concurrent use.
type Attempt struct {
	t     *Throttle
	sc    scope
	slot  string
	token []byte // the slot's value: unique to this attempt
	ended bool
}

// Device reports whether the attempt is held only by its (account,
// device) pair, as Check was given a device.
func (a *Attempt) Device() bool { return a.sc.device }

// Check decides whether a login attempt on email from clientKey may go
// ahead. device is the id from a device token the caller has verified as
// this account's, or "" without one: with it, the attempt is held only by
// the counters of the (account, device) pair, never by the account's or
// the client's. Check returns an Attempt when the attempt is admitted; the
// caller hashes and then ends it with exactly one of Success, Failure or
// Release. Otherwise it returns how long to wait (answer 429 with
// Retry-After rounded up to whole seconds, without hashing). An error
// (wrapping auth.ErrUnavailable when the store is down, auth.ErrOverloaded
// when an in-process store is at its key cap) admits nothing; callers
// should fail closed with 503. email is normalised here too. Check may
// block for a few store round trips.
func (t *Throttle) Check(ctx context.Context, email, clientKey, device string) (*Attempt, time.Duration, error) {
	sc := t.scope(email, clientKey, device)
	st, err := t.read(ctx, sc)
	if err != nil || st.wait > 0 {
		return nil, st.wait, err
	}
	if !t.room(st, false) {
		// If the attempts in flight fail, a window opens.
		return nil, t.p.BaseDelay, nil
	}
	token := newToken()
	for i, held := range st.held {
		if held {
			continue
		}
		won, err := t.st.SetNX(ctx, t.slot(sc, i), token, t.p.AttemptTimeout)
		if err != nil {
			return nil, 0, fmt.Errorf("throttle: check: take slot: %w", err)
		}
		if !won {
			continue
		}
		a := &Attempt{t: t, sc: sc, slot: t.slot(sc, i), token: token}
		// Decide again on what holds now that the slot is ours: failures
		// recorded, windows opened, other slots taken meanwhile. Of attempts
		// that race, each sees the others' slots, so at worst all back off.
		st, err := t.read(ctx, sc)
		if err == nil && st.wait == 0 && !t.room(st, true) {
			st.wait = t.p.BaseDelay
		}
		if err != nil || st.wait > 0 {
			if rerr := a.Release(ctx); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return nil, st.wait, err
		}
		return a, 0, nil
	}
	return nil, t.p.BaseDelay, nil
}

// state is what read found: the time left in the scope's windows, its
// highest failure count, and which of its slots are held.
type state struct {
	wait  time.Duration
	fails int64
	held  []bool
}

// room reports whether st leaves room for its reader's attempt (mine: the
// reader holds one of the slots read): the failures recorded plus the
// attempts in flight stay within FreeFailures+1, so that they reach at most
// the first window, and once that is passed one attempt at a time.
func (t *Throttle) room(st state, mine bool) bool {
	inFlight := int64(0)
	for _, h := range st.held {
		if h {
			inFlight++
		}
	}
	if !mine {
		inFlight++
	}
	return inFlight <= max(1, int64(t.p.FreeFailures)+1-st.fails)
}

func (t *Throttle) slot(sc scope, i int) string { return sc.slots + strconv.Itoa(i) }

// read returns the scope's state in one round trip. The slots are read
// before the counts: a failure is counted before its slot is given back, so
// a reader may count a failing attempt twice, never miss it.
func (t *Throttle) read(ctx context.Context, sc scope) (state, error) {
	nslots := t.p.FreeFailures + 1
	keys := make([]string, 0, nslots+2*len(sc.counters))
	for i := range nslots {
		keys = append(keys, t.slot(sc, i))
	}
	for _, c := range sc.counters {
		keys = append(keys, c.window, c.fails)
	}
	vals, err := t.st.MGet(ctx, keys...)
	if err != nil {
		return state{}, fmt.Errorf("throttle: check: %w", err)
	}
	st := state{held: make([]bool, nslots)}
	for i := range nslots {
		st.held[i] = vals[i] != nil
	}
	now := t.now()
	for i := nslots; i < len(vals); i += 2 {
		w, err := remaining(now, vals[i])
		if err != nil {
			return state{}, err
		}
		n, err := count(vals[i+1])
		if err != nil {
			return state{}, err
		}
		st.wait, st.fails = max(st.wait, w), max(st.fails, n)
	}
	return st, nil
}

// newToken returns a value no other attempt's slot holds.
func newToken() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return b
}

// end marks a ended and returns a context for its last writes that is not
// cancelled with ctx, or false when a had already ended.
func (a *Attempt) end(ctx context.Context) (context.Context, bool) {
	if a == nil || a.ended {
		return nil, false
	}
	a.ended = true
	return context.WithoutCancel(ctx), true
}

// Release ends an attempt that was neither a success nor a failure (the
// hash pool refused it, the client left, a dependency failed): it gives the
// slot back and records nothing. It does nothing if the attempt has ended.
func (a *Attempt) Release(ctx context.Context) error {
	ctx, ok := a.end(ctx)
	if !ok {
		return nil
	}
	return a.release(ctx)
}

func (a *Attempt) release(ctx context.Context) error {
	if _, err := a.t.st.DeleteIfEqual(ctx, a.slot, a.token); err != nil {
		return fmt.Errorf("throttle: release: %w", err)
	}
	return nil
}

// Failure ends an attempt whose password was wrong (also for an unknown
// email): it counts the failure on each of the attempt's counters (the
// account and the (account, client) pair, or the (account, device) pair),
// opens a window on each whose count is past FreeFailures, and then gives
// the slot back. It does nothing if the attempt has ended.
//
// When the store has no room for a new entry (an in-process store at its
// cap), the slot is kept instead, for as long as the count or window that
// could not be written would have lasted: the failure still holds the
// account back, and no guess goes uncounted.
func (a *Attempt) Failure(ctx context.Context) error {
	ctx, ok := a.end(ctx)
	if !ok {
		return nil
	}
	t := a.t
	now := t.now()
	var (
		errs []error
		hold time.Duration // keep the slot this long instead of releasing it
	)
	// Windows are written before the slot is given back, so the next
	// attempt's Check sees them.
	for _, c := range a.sc.counters {
		h, err := t.fail(ctx, now, c)
		if errors.Is(err, auth.ErrOverloaded) {
			hold = max(hold, h)
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if hold > 0 {
		if _, err := t.st.Expire(ctx, a.slot, hold); err != nil {
			errs = append(errs, fmt.Errorf("throttle: failure: hold slot: %w", err))
		}
		return errors.Join(errs...)
	}
	if err := a.release(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// fail counts one failure on c and opens its window. When the store refuses
// a new entry (an error matching auth.ErrOverloaded) it also returns how
// long the unwritten state would have lasted.
func (t *Throttle) fail(ctx context.Context, now time.Time, c counter) (time.Duration, error) {
	n, err := t.st.Incr(ctx, c.fails, t.p.keep(1))
	if err != nil {
		return t.p.keep(1), fmt.Errorf("throttle: failure: count: %w", err)
	}
	// Keep the count longer as it grows, from this failure on. Concurrent
	// failures may set their ttls out of order: that shortens a life by one
	// step at most, and loses no increment.
	if n > 1 {
		if _, err := t.st.Expire(ctx, c.fails, t.p.keep(n)); err != nil {
			return 0, fmt.Errorf("throttle: failure: keep count: %w", err)
		}
	}
	d := t.p.delay(n)
	if d == 0 {
		return 0, nil
	}
	end := strconv.AppendInt(nil, now.Add(d).UnixNano(), 10)
	if err := t.st.Set(ctx, c.window, end, d+windowSlack); err != nil {
		return d, fmt.Errorf("throttle: failure: open window: %w", err)
	}
	return 0, nil
}

// Success ends an attempt whose password was right. Without a device it
// clears the account's counts and window, and this client's pair; other
// clients' pairs and every device's are kept (see the package doc). With a
// device it clears that device's counts only: the account-wide counts an
// attacker built up stay. Either way it gives the slot back. It does
// nothing if the attempt has ended.
func (a *Attempt) Success(ctx context.Context) error {
	ctx, ok := a.end(ctx)
	if !ok {
		return nil
	}
	keys := make([]string, 0, 2*len(a.sc.counters))
	for _, c := range a.sc.counters {
		keys = append(keys, c.fails, c.window)
	}
	var errs []error
	if err := a.t.st.Delete(ctx, keys...); err != nil {
		errs = append(errs, fmt.Errorf("throttle: success: %w", err))
	}
	if err := a.release(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// remaining returns the time left in the window whose end is stored in b
// (nil: no window).
func remaining(now time.Time, b []byte) (time.Duration, error) {
	if b == nil {
		return 0, nil
	}
	ns, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("throttle: check: corrupt window end %q", b)
	}
	return max(0, time.Unix(0, ns).Sub(now)), nil
}

// count parses a stored counter (nil: 0).
func count(b []byte) (int64, error) {
	if b == nil {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("throttle: check: corrupt failure count %q", b)
	}
	return n, nil
}
