// Package redistest holds test helpers for Redis-backed suites: the server
// named by AUTHD_TEST_REDIS_URL, a key prefix of each test's own (deleted
// when the test ends, so that suites share one server and run in parallel),
// and a TCP proxy that a test cuts and restores to play a Redis outage.
//
// It imports only go-redis and the standard library, so that the tests of
// any package, internal/redis's own included, may use it. It is imported
// only from tests.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// EnvVar names the server the Redis suites run against.
const EnvVar = "AUTHD_TEST_REDIS_URL"

// URL returns the Redis URL in EnvVar. It skips the test, naming EnvVar,
// when the variable is unset.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvVar)
	if u == "" {
		t.Skipf("%s is not set: skipping the Redis suite", EnvVar)
	}
	return u
}

// Prefix returns a random key prefix of the test's own ("authdtest:" and 16
// hex digits and ":"). When the test ends it deletes the keys under that
// prefix, and nothing else (the server is shared), with SCAN and DEL on c,
// failing the test if it cannot.
//
// c must still be open when the test's cleanups run: register its Close
// with t.Cleanup before calling Prefix (cleanups run last-registered first),
// never with defer.
func Prefix(t testing.TB, c goredis.UniversalClient) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	prefix := "authdtest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var keys []string
		it := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		if err := it.Err(); err != nil {
			t.Errorf("redistest: scan %s*: %v", prefix, err)
			return
		}
		for chunk := range slices.Chunk(keys, 500) {
			if err := c.Del(ctx, chunk...).Err(); err != nil {
				t.Errorf("redistest: delete %s*: %v", prefix, err)
				return
			}
		}
	})
	return prefix
}

// Proxy forwards TCP connections from a loopback address to a target, so
// that a test can cut its clients off a server (Stop) and restore it
// (Start) while they keep the same address. Its methods are safe for
// concurrent use.
type Proxy struct {
	target, addr string

	ctl sync.Mutex // serialises Stop, Start and Close

	mu     sync.Mutex
	ln     net.Listener          // nil while stopped; mu guards ln, conns and closed
	conns  map[net.Conn]struct{} // open client and upstream connections
	closed bool

	wg sync.WaitGroup // the accept loop and every forwarding goroutine
}

// NewProxy listens on 127.0.0.1:0 and forwards every connection to target
// (host:port). It fails the test if it cannot listen, and closes the proxy
// when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: make(map[net.Conn]struct{})}
	p.mu.Lock()
	p.serveLocked(ln)
	p.mu.Unlock()
	t.Cleanup(p.Close)
	return p
}

// Addr is the address (host:port) clients dial; Stop and Start keep it.
func (p *Proxy) Addr() string { return p.addr }

// Stop closes the listener and every open connection, as if the server
// had died, and waits for the proxy's goroutines to end. It does nothing
// when the proxy is already stopped.
func (p *Proxy) Stop() {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.stop()
}

// Start listens again on Addr after Stop; it does nothing while the proxy
// runs. It fails when the proxy is closed or the address cannot be had
// again.
func (p *Proxy) Start() error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return errors.New("redistest: proxy: start after Close")
	case p.ln != nil:
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("redistest: proxy: listen again on %s: %w", p.addr, err)
	}
	p.serveLocked(ln)
	return nil
}

// Close stops the proxy for good: Start fails afterwards. NewProxy
// registers it as a cleanup of the test.
func (p *Proxy) Close() {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.stop()
}

func (p *Proxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// serveLocked accepts on ln until it is closed; p.mu must be held.
func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by stop
			}
			p.wg.Go(func() { p.forward(ln, c) })
		}
	})
}

// forward copies between c and a new connection to the target until either
// side closes or stop closes both.
func (p *Proxy) forward(ln net.Listener, c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln != ln { // stopped meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src) // an error (reset, closed) ends the pair like EOF
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}
