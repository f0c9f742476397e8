package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestEarlyFailureLeaksNothing checks that when start-up fails after parts
// were built (the hash pool's workers, the database's connection opener),
// run stops them before it returns. Not parallel: goleak must see only
// run's goroutines come and go.
func TestEarlyFailureLeaksNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"public port busy", map[string]string{"AUTHD_HTTP_ADDR": busy.Addr().String()}, "AUTHD_HTTP_ADDR"},
		{"admin port busy", map[string]string{"AUTHD_ADMIN_ADDR": busy.Addr().String()}, "AUTHD_ADMIN_ADDR"},
		{"bad redis url", map[string]string{"AUTHD_REDIS_URL": "redis://127.0.0.1:1/not-a-db"}, "AUTHD_REDIS_URL"},
		{"database not migratable", map[string]string{"AUTHD_DATABASE_URL": "sqlite:" + t.TempDir()}, "AUTHD_DATABASE_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			adminAddr := freeAddr(t)
			vars := map[string]string{
				"AUTHD_HTTP_ADDR":    "127.0.0.1:0",
				"AUTHD_ADMIN_ADDR":   adminAddr,
				"AUTHD_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "authd.db"),
				"AUTHD_HASH_WORKERS": "2",
			}
			for k, v := range tc.env {
				vars[k] = v
			}
			err := run(context.Background(), nil, func(k string) string { return vars[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error naming %s", err, tc.want)
			}
			// The listener opened before the failure is closed too.
			if tc.name == "public port busy" {
				ln, err := net.Listen("tcp", adminAddr)
				if err != nil {
					t.Fatalf("the admin listener outlived run: %v", err)
				}
				ln.Close()
			}
		})
	}
}
