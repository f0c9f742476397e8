package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

func TestCheckLoopbackURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.1.2.3:8080/x", true},
		{"http://localhost:8080", true},
		{"https://LOCALHOST", true},
		{"http://[::1]:8080", true},
		{"http://10.0.0.1:8080", false},
		{"http://0.0.0.0:8080", false},
		{"http://example.com", false},
		{"http://localhost.example.com", false},
		{"http://127.0.0.1.nip.io", false},
		{"http://[::ffff:10.0.0.1]", false},
		{"ftp://127.0.0.1", false},
		{"127.0.0.1:8080", false},
		{"http://user:pw@127.0.0.1", false},
		{"http://%zz", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			_, err := checkLoopbackURL(tt.url)
			if (err == nil) != tt.ok {
				t.Fatalf("checkLoopbackURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
			}
		})
	}
}

func TestCheckLoopbackAddr(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:8181": true, "localhost:0": true, "[::1]:1": true,
		":8181": false, "0.0.0.0:8181": false, "192.168.1.1:80": false, "nonsense": false,
	} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			if err := checkLoopbackAddr(addr); (err == nil) != ok {
				t.Fatalf("checkLoopbackAddr(%q) = %v, want ok=%v", addr, err, ok)
			}
		})
	}
}

// The dialer is the second guard: even a request built by hand for another
// host never leaves the machine.
func TestClientRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	c := newClient(1)
	t.Cleanup(func() { closeClient(c) })
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://192.0.2.1:9/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("request to 192.0.2.1 went through")
	}
	if !errors.Is(err, errNotLoopback) {
		t.Fatalf("err = %v, want errNotLoopback", err)
	}
}
