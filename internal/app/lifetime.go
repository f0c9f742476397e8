package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Part is one long-lived piece of the service. Run, if set, does the part's
// work until its context ends (or Close makes it return) and returns nil on
// a clean stop. Close, if set, stops the part within ctx's deadline: it
// drains, flushes or releases what the part holds. A part has Run, Close or
// both (an HTTP server: Run serves, Close shuts it down gracefully).
type Part struct {
	Name  string
	Run   func(ctx context.Context) error
	Close func(ctx context.Context) error
}

// Lifetime is the ordered list of the service's parts. Add appends a part
// once it is built, Start runs every Run in its own goroutine, and Stop stops
// the parts in reverse order: what was built last (the listeners) stops
// first, what everything else uses (the database) last. Its zero value is
// ready to use. Add, Start and Stop are called by the one goroutine that
// owns the lifetime (run, or a test), and so is Failed.
type Lifetime struct {
	parts   []Part
	running []*running // parallel to parts; nil until started

	failOnce sync.Once
	failed   chan struct{}
	stopped  bool
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // written by the goroutine before done closes
}

// Add appends p. It must not be called after Stop.
func (l *Lifetime) Add(p Part) {
	l.parts = append(l.parts, p)
	l.running = append(l.running, nil)
}

// Start runs every part's Run not yet started, each in its own goroutine,
// under a context that ctx's cancellation does not reach: a part stops when
// Stop gets to it, not before, since parts built later may still need it.
func (l *Lifetime) Start(ctx context.Context) {
	failed := l.failedChan()
	for i, p := range l.parts {
		if p.Run == nil || l.running[i] != nil {
			continue
		}
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := &running{cancel: cancel, done: make(chan struct{})}
		l.running[i] = r
		go func() {
			defer close(r.done)
			err := p.Run(rctx)
			if err != nil && rctx.Err() == nil {
				r.err = fmt.Errorf("%s: %w", p.Name, err)
			}
			if rctx.Err() == nil { // returned before Stop asked it to
				l.failOnce.Do(func() { close(failed) })
			}
		}()
	}
}

// Failed is closed when a started part's Run returns before Stop reached it:
// the service is no longer whole and should be stopped.
func (l *Lifetime) Failed() <-chan struct{} { return l.failedChan() }

func (l *Lifetime) failedChan() chan struct{} {
	if l.failed == nil {
		l.failed = make(chan struct{})
	}
	return l.failed
}

// Stop stops every part, last added first: it calls the part's Close, then
// cancels its Run and waits for it to return. Parts never started are only
// closed. Everything waits at most until ctx ends; a Run still going then is
// abandoned and reported. Stop returns the parts' errors joined, those of Run
// included. Calls after the first return nil.
func (l *Lifetime) Stop(ctx context.Context) error {
	if l.stopped {
		return nil
	}
	l.stopped = true
	var errs []error
	for i := len(l.parts) - 1; i >= 0; i-- {
		p, r := l.parts[i], l.running[i]
		if p.Close != nil {
			if err := p.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", p.Name, err))
			}
		}
		if r == nil {
			continue
		}
		r.cancel()
		select {
		case <-r.done:
			if r.err != nil {
				errs = append(errs, r.err)
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("stop %s: %w", p.Name, ctx.Err()))
		}
	}
	return errors.Join(errs...)
}
