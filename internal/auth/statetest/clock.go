package statetest

import (
	"sync"
	"time"
)

// Clock is a manual clock for tests: Now returns a fixed instant that moves
// only when Advance is called. Safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time // mu guards now
}

// NewClock returns a Clock that reads t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

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
