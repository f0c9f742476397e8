package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// This workplace forbids generating load against other hosts, so authbench
// only ever talks to the loopback interface. The rule is enforced twice: every
// URL is checked when the flags are read (checkLoopbackURL), and the dialer
// refuses any connection whose resolved address is not a loopback address
// (loopbackOnly), which also covers "localhost" resolving somewhere odd and
// redirects (which are not followed anyway).

// errNotLoopback is returned for any target that is not on this machine.
var errNotLoopback = errors.New("only loopback targets are allowed (127.0.0.0/8, ::1 or localhost)")

// checkLoopbackURL parses raw and returns it if it is an http(s) URL whose host
// is a loopback IP address or "localhost"; any other host is refused.
func checkLoopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: credentials in the URL are not supported", raw)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%q: %w", raw, errNotLoopback)
	}
	return u, nil
}

// checkLoopbackAddr checks a host:port listen address for the naive server:
// an empty host (all interfaces) is refused like any non-loopback one.
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("listen address %q: %w", addr, errNotLoopback)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackOnly is a net.Dialer Control function that refuses to connect to
// anything but a loopback address, after name resolution.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("dial %s: %w", address, errNotLoopback)
	}
	return nil
}

// newClient returns the one HTTP client a run uses: keep-alive, at least conns
// idle connections kept per host so that every worker keeps its own, no
// proxy, no compression, no redirects followed (a 3xx is counted as it is),
// and a dialer that only reaches loopback addresses. Per-request deadlines
// come from the request context. The caller calls CloseIdleConnections on its
// Transport when done.
func newClient(conns int) *http.Client {
	conns = max(conns, 1)
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: loopbackOnly}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// closeClient releases the idle connections of a client made by newClient.
func closeClient(c *http.Client) {
	if tr, ok := c.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}
