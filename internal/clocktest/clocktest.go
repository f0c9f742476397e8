// Package clocktest is the one manual clock of authd's tests: every part
// takes a `now func() time.Time`, and a test passes Clock.Now to decide when
// time moves instead of sleeping.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a manual clock: Now returns a fixed instant that moves only when
// Advance is called. Safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time // mu guards now
}

// New returns a Clock that reads t until advanced.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's current instant; pass the method value as a
// component's `now func() time.Time`.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
