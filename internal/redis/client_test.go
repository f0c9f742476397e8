package redis_test

import (
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/internal/redis"
)

func TestNewClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		url         string
		wantAddr    string
		wantDB      int
		wantTLS     bool
		wantDial    time.Duration
		wantRead    time.Duration
		wantPool    time.Duration
		wantRetries int
	}{
		{
			name: "defaults", url: "redis://127.0.0.1:6379/0",
			wantAddr: "127.0.0.1:6379", wantDial: redis.DefaultDialTimeout, wantRead: redis.DefaultReadTimeout,
			wantPool: redis.DefaultPoolTimeout, wantRetries: redis.DefaultMaxRetries,
		},
		{
			name: "tls and db", url: "rediss://user:secret@cache.example:6380/3",
			wantAddr: "cache.example:6380", wantDB: 3, wantTLS: true, wantDial: redis.DefaultDialTimeout,
			wantRead: redis.DefaultReadTimeout, wantPool: redis.DefaultPoolTimeout, wantRetries: redis.DefaultMaxRetries,
		},
		{
			name: "url overrides", url: "redis://h:1/0?dial_timeout=2s&read_timeout=3s&pool_timeout=4s&max_retries=5",
			wantAddr: "h:1", wantDial: 2 * time.Second, wantRead: 3 * time.Second,
			wantPool: 4 * time.Second, wantRetries: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := redis.NewClient(tt.url)
			if err != nil {
				t.Fatalf("NewClient(%q): %v", tt.url, err)
			}
			defer c.Close()
			o := c.Options()
			if o.Addr != tt.wantAddr || o.DB != tt.wantDB || (o.TLSConfig != nil) != tt.wantTLS {
				t.Errorf("addr=%q db=%d tls=%t; want %q %d %t", o.Addr, o.DB, o.TLSConfig != nil, tt.wantAddr, tt.wantDB, tt.wantTLS)
			}
			if o.DialTimeout != tt.wantDial || o.ReadTimeout != tt.wantRead || o.PoolTimeout != tt.wantPool {
				t.Errorf("dial=%v read=%v pool=%v; want %v %v %v", o.DialTimeout, o.ReadTimeout, o.PoolTimeout, tt.wantDial, tt.wantRead, tt.wantPool)
			}
			if o.MaxRetries != tt.wantRetries {
				t.Errorf("MaxRetries = %d, want %d", o.MaxRetries, tt.wantRetries)
			}
			if o.DialerRetries != 1 || !o.ContextTimeoutEnabled {
				t.Errorf("DialerRetries=%d ContextTimeoutEnabled=%t; want 1, true", o.DialerRetries, o.ContextTimeoutEnabled)
			}
		})
	}
}

func TestNewClientRejectsBadURLs(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, url string }{
		{"scheme", "http://hunter2@localhost:6379"},
		{"db", "redis://:hunter2@localhost:6379/notanumber"},
		{"option", "redis://:hunter2@localhost:6379/0?bogus=1"},
		{"escape", "redis://:hunter2@local%zzhost:6379"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := redis.NewClient(tt.url)
			if err == nil {
				c.Close()
				t.Fatalf("NewClient(%q): no error", tt.url)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("NewClient error leaks the password: %v", err)
			}
		})
	}
}
