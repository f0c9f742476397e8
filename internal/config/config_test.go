package config

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/internal/throttle"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.AdminAddr != "127.0.0.1:9090" || c.DatabaseURL != "sqlite:authd.db" || c.RedisURL != "" {
		t.Errorf("listeners/storage defaults: %+v", c)
	}
	if c.Hash.Workers != runtime.NumCPU() || c.Hash.Queue != QueuePerWorker*runtime.NumCPU() {
		t.Errorf("hash defaults: %+v", c.Hash)
	}
	if c.Argon2 != (Argon2{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}) {
		t.Errorf("argon2 defaults: %+v", c.Argon2)
	}
	if c.AccessTokenTTL != 15*time.Minute || c.RefreshTokenTTL != 720*time.Hour {
		t.Errorf("ttl defaults: %v %v", c.AccessTokenTTL, c.RefreshTokenTTL)
	}
	if c.JWTIssuer != "http://localhost:8080" || c.JWTAudience != "authd" || c.PublicURL != "http://localhost:8080" {
		t.Errorf("jwt defaults: %q %q %q", c.JWTIssuer, c.JWTAudience, c.PublicURL)
	}
	if c.AccountThrottleBaseDelay != throttle.DefaultBaseDelay || c.AccountThrottleMaxDelay != throttle.DefaultMaxDelay {
		t.Errorf("account throttle delays %v, %v; want the throttle's defaults", c.AccountThrottleBaseDelay, c.AccountThrottleMaxDelay)
	}
	if c.PasswordMinLength != 15 {
		t.Errorf("password minimum length %d, want NIST's 15", c.PasswordMinLength)
	}
	if c.ShutdownTimeout != 20*time.Second {
		t.Errorf("shutdown timeout: %v", c.ShutdownTimeout)
	}
	if c.LogLevel != slog.LevelInfo {
		t.Errorf("log level: %v", c.LogLevel)
	}
}

func TestFlagWinsOverEnv(t *testing.T) {
	t.Parallel()
	c, err := Parse([]string{"-hash-workers", "3", "-http-addr=127.0.0.1:0"},
		env(map[string]string{"AUTHD_HASH_WORKERS": "7", "AUTHD_HASH_QUEUE": "5", "AUTHD_HTTP_ADDR": ":1"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash.Workers != 3 || c.Hash.Queue != 5 || c.HTTPAddr != "127.0.0.1:0" {
		t.Errorf("got %+v %q", c.Hash, c.HTTPAddr)
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ env, value string }{
		{"AUTHD_HASH_WORKERS", "abc"},
		{"AUTHD_HASH_WORKERS", "0"},
		{"AUTHD_HASH_QUEUE", "-1"},
		{"AUTHD_DATABASE_URL", "mysql://x"},
		{"AUTHD_DATABASE_URL", "postgres://%zz"},
		{"AUTHD_REDIS_URL", "http://localhost:6379"},
		{"AUTHD_ACCESS_TOKEN_TTL", "-5m"},
		{"AUTHD_REFRESH_TOKEN_TTL", "soon"},
		{"AUTHD_SHUTDOWN_TIMEOUT", "-1s"},
		{"AUTHD_ARGON2_MEMORY_KIB", "1024"},
		{"AUTHD_ARGON2_ITERATIONS", "1"},
		{"AUTHD_RATE_LIMIT_RPS", "0"},
		{"AUTHD_TRUSTED_PROXIES", "10.0.0.0/33"},
		{"AUTHD_LOG_LEVEL", "loud"},
		{"AUTHD_HTTP_ADDR", "8080"},
		{"AUTHD_PUBLIC_URL", "ftp://x"},
		{"AUTHD_SECRET_KEY", "short-secret"},
		{"AUTHD_ACCOUNT_THROTTLE_BASE_DELAY", "0s"},
		{"AUTHD_ACCOUNT_THROTTLE_MAX_DELAY", "48h"},
		{"AUTHD_PASSWORD_MIN_LENGTH", "7"},
		{"AUTHD_PASSWORD_MIN_LENGTH", "65"},
		{"AUTHD_PASSWORD_MIN_LENGTH", "long"},
	} {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(nil, env(map[string]string{tc.env: tc.value}), nil)
			var se *Error
			if !errors.As(err, &se) || se.Env != tc.env {
				t.Fatalf("err = %v, want *Error naming %s", err, tc.env)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.env) || strings.Contains(msg, "\n") {
				t.Errorf("message %q must be one line naming %s", msg, tc.env)
			}
			if tc.env == "AUTHD_SECRET_KEY" && strings.Contains(msg, tc.value) {
				t.Errorf("message leaks the secret: %q", msg)
			}
		})
	}
}

func TestSecretURLRedacted(t *testing.T) {
	t.Parallel()
	_, err := Parse(nil, env(map[string]string{"AUTHD_REDIS_URL": "http://user:hunter22@cache"}), nil)
	if err == nil || strings.Contains(err.Error(), "hunter22") {
		t.Fatalf("err = %v: want an error without the password", err)
	}
}

// TestPublicURLFollowsListener checks that without AUTHD_PUBLIC_URL the
// public URL, and so the default issuer, is where the listener is.
func TestPublicURLFollowsListener(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env         map[string]string
		url, issuer string
	}{
		{nil, "http://localhost:8080", "http://localhost:8080"},
		{map[string]string{"AUTHD_HTTP_ADDR": ":9000"}, "http://localhost:9000", "http://localhost:9000"},
		{map[string]string{"AUTHD_HTTP_ADDR": "0.0.0.0:9000"}, "http://localhost:9000", "http://localhost:9000"},
		{map[string]string{"AUTHD_HTTP_ADDR": "[::]:9000"}, "http://localhost:9000", "http://localhost:9000"},
		{map[string]string{"AUTHD_HTTP_ADDR": "127.0.0.1:9000"}, "http://127.0.0.1:9000", "http://127.0.0.1:9000"},
		{map[string]string{"AUTHD_HTTP_ADDR": "[::1]:9000"}, "http://[::1]:9000", "http://[::1]:9000"},
		{map[string]string{"AUTHD_HTTP_ADDR": "auth.internal:9000"}, "http://auth.internal:9000", "http://auth.internal:9000"},
		{map[string]string{"AUTHD_HTTP_ADDR": ":9000", "AUTHD_PUBLIC_URL": "https://auth.example.com/"}, "https://auth.example.com", "https://auth.example.com"},
		{map[string]string{"AUTHD_HTTP_ADDR": ":9000", "AUTHD_JWT_ISSUER": "https://id.example.com"}, "http://localhost:9000", "https://id.example.com"},
	} {
		c, err := Parse(nil, env(tc.env), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.PublicURL != tc.url || c.JWTIssuer != tc.issuer {
			t.Errorf("%v: public URL %q, issuer %q; want %q, %q", tc.env, c.PublicURL, c.JWTIssuer, tc.url, tc.issuer)
		}
	}
}

// TestProviderSettings checks the email and SMS providers' settings, alone
// and together: each bad value or combination stops start-up with one line
// naming a setting and never showing a password or token.
func TestProviderSettings(t *testing.T) {
	t.Parallel()
	twilio := map[string]string{"AUTHD_SMS_TWILIO_ACCOUNT_SID": "AC123", "AUTHD_SMS_TWILIO_AUTH_TOKEN": "hunter22", "AUTHD_SMS_TWILIO_FROM": "+15005550006"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := maps.Clone(base)
		if m == nil {
			m = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		bad  string // the setting named, "" when accepted
	}{
		{"none", nil, ""},
		{"smtp", with(nil, "AUTHD_SMTP_URL", "smtp://user:hunter22@mail:587", "AUTHD_MAIL_FROM", "Example <no-reply@example.com>"), ""},
		{"smtps", with(nil, "AUTHD_SMTP_URL", "smtps://mail", "AUTHD_MAIL_FROM", "authd@example.com"), ""},
		{"smtp without from", with(nil, "AUTHD_SMTP_URL", "smtp://user:hunter22@mail:587"), "AUTHD_MAIL_FROM"},
		{"from without smtp", with(nil, "AUTHD_MAIL_FROM", "authd@example.com"), "AUTHD_MAIL_FROM"},
		{"smtp bad scheme", with(nil, "AUTHD_SMTP_URL", "http://user:hunter22@mail", "AUTHD_MAIL_FROM", "authd@example.com"), "AUTHD_SMTP_URL"},
		{"smtp with a path", with(nil, "AUTHD_SMTP_URL", "smtp://mail/x", "AUTHD_MAIL_FROM", "authd@example.com"), "AUTHD_SMTP_URL"},
		{"bad from", with(nil, "AUTHD_SMTP_URL", "smtp://mail", "AUTHD_MAIL_FROM", "not an address"), "AUTHD_MAIL_FROM"},
		{"webhook", with(nil, "AUTHD_SMS_WEBHOOK_URL", "https://sms.example.com/send", "AUTHD_SMS_WEBHOOK_TOKEN", "hunter22"), ""},
		{"webhook on loopback", with(nil, "AUTHD_SMS_WEBHOOK_URL", "http://127.0.0.1:9999/send"), ""},
		{"webhook in clear", with(nil, "AUTHD_SMS_WEBHOOK_URL", "http://sms.example.com/send"), "AUTHD_SMS_WEBHOOK_URL"},
		{"token without webhook", with(nil, "AUTHD_SMS_WEBHOOK_TOKEN", "hunter22"), "AUTHD_SMS_WEBHOOK_TOKEN"},
		{"twilio", twilio, ""},
		{"twilio without token", with(twilio, "AUTHD_SMS_TWILIO_AUTH_TOKEN", ""), "AUTHD_SMS_TWILIO_AUTH_TOKEN"},
		{"twilio without from", with(twilio, "AUTHD_SMS_TWILIO_FROM", ""), "AUTHD_SMS_TWILIO_FROM"},
		{"twilio base alone", with(nil, "AUTHD_SMS_TWILIO_BASE_URL", "http://127.0.0.1:9999"), "AUTHD_SMS_TWILIO_BASE_URL"},
		{"two SMS providers", with(twilio, "AUTHD_SMS_WEBHOOK_URL", "https://hunter22@sms.example.com/send"), "AUTHD_SMS_WEBHOOK_URL"},
	} {
		c, err := Parse(nil, env(tc.vars), nil)
		if tc.bad == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", tc.name, err)
			} else if c.Notify.SMTPURL != tc.vars["AUTHD_SMTP_URL"] || c.Notify.TwilioAuthToken != tc.vars["AUTHD_SMS_TWILIO_AUTH_TOKEN"] {
				t.Errorf("%s: settings not kept: %+v", tc.name, c.Notify)
			}
			continue
		}
		var se *Error
		if !errors.As(err, &se) || se.Env != tc.bad {
			t.Errorf("%s: err = %v, want an *Error naming %s", tc.name, err, tc.bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q leaks a secret or spans lines", tc.name, err)
		}
	}
}

// AUTHD_NOTIFY_TIMEOUT is the Courier's: accepted and bounded.
func TestNotifyTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 5 * time.Second, true},
		{"2s", 2 * time.Second, true},
		{"10ms", 0, false},
		{"1h", 0, false},
		{"soon", 0, false},
	} {
		c, err := Parse(nil, env(map[string]string{"AUTHD_NOTIFY_TIMEOUT": tc.value}), nil)
		if tc.ok != (err == nil) || (tc.ok && c.Notify.Timeout != tc.want) {
			t.Errorf("AUTHD_NOTIFY_TIMEOUT=%q: %v, %v; want %v (ok %v)", tc.value, c, err, tc.want, tc.ok)
		}
	}
}

func TestLogLevel(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil, env(map[string]string{"AUTHD_LOG_LEVEL": "DEBUG"}), nil)
	if err != nil || c.LogLevel != slog.LevelDebug {
		t.Fatalf("DEBUG: %v, %v", c, err)
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	_, err := Parse([]string{"-h"}, env(nil), &buf)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range settings() {
		if !strings.Contains(buf.String(), s.env) || !strings.Contains(buf.String(), "-"+s.flag) {
			t.Errorf("help lacks %s", s.env)
		}
	}
}

// TestSecretKeyRequiredWithPostgres: a generated secret would be stored beside
// the signing keys it seals, so only the SQLite default may do without one.
func TestSecretKeyRequiredWithPostgres(t *testing.T) {
	t.Parallel()
	const pg = "postgres://authd@db:5432/authd"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		refused bool
	}{
		{"postgres without a secret", map[string]string{"AUTHD_DATABASE_URL": pg}, true},
		{"postgresql:// without a secret", map[string]string{"AUTHD_DATABASE_URL": "postgresql://db/authd"}, true},
		{"postgres with a secret", map[string]string{"AUTHD_DATABASE_URL": pg, "AUTHD_SECRET_KEY": strings.Repeat("k", 32)}, false},
		{"sqlite file without a secret", map[string]string{"AUTHD_DATABASE_URL": "sqlite:authd.db"}, false},
		{"sqlite in memory without a secret", map[string]string{"AUTHD_DATABASE_URL": "sqlite::memory:"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(nil, env(tc.env), nil)
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Env != "AUTHD_SECRET_KEY" {
				t.Fatalf("err = %v, want *Error naming AUTHD_SECRET_KEY", err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "PostgreSQL") {
				t.Errorf("message %q: want one line that says why", msg)
			}
		})
	}
}

// TestTrustedProxiesErrorSaysItOnce: the line shows the value once and the
// reason once (netip's message repeats its input; the clientip wrapper did too).
func TestTrustedProxiesErrorSaysItOnce(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"10.0.0.0/33", "foo", "10.0.0.1, 1.2.3.400"} {
		_, err := Parse([]string{"-trusted-proxies", v}, env(nil), nil)
		if err == nil {
			t.Fatalf("%q accepted", v)
		}
		msg := err.Error()
		bad := v[strings.LastIndex(v, " ")+1:]
		if n := strings.Count(msg, bad); n != 1 || strings.Contains(msg, "netip") || strings.Contains(msg, "clientip") {
			t.Errorf("%q: %q names %q %d times", v, msg, bad, n)
		}
	}
}

// TestHelpShowsDerivedDefaults: -h shows what a derived default becomes,
// never "(empty)" for a setting that is not empty by default.
func TestHelpShowsDerivedDefaults(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if _, err := Parse([]string{"-h"}, env(nil), &buf); !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		for env, want := range map[string]string{
			"AUTHD_HASH_QUEUE": "32×workers",
			"AUTHD_JWT_ISSUER": "AUTHD_PUBLIC_URL",
			"AUTHD_PUBLIC_URL": "http://AUTHD_HTTP_ADDR",
			"AUTHD_LOG_FORMAT": "text on a terminal",
		} {
			if f := strings.Fields(line); len(f) > 2 && f[0] == env && !strings.HasPrefix(strings.Join(f[2:], " "), want) {
				t.Errorf("-h shows %q; want the default %q", line, want)
			}
		}
	}
}

func TestRequestTimeoutAndDrainDelay(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RequestTimeout != 3*time.Second || c.ShutdownDrainDelay != 5*time.Second {
		t.Errorf("defaults: request timeout %v, drain delay %v; want 3s and 5s", c.RequestTimeout, c.ShutdownDrainDelay)
	}
	c, err = Parse([]string{"-request-timeout=800ms", "-shutdown-drain-delay=0"}, env(map[string]string{"AUTHD_HASH_MAX_WAIT": "0"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RequestTimeout != 800*time.Millisecond || c.ShutdownDrainDelay != 0 {
		t.Errorf("set: request timeout %v, drain delay %v", c.RequestTimeout, c.ShutdownDrainDelay)
	}
	for _, tc := range []struct {
		vars map[string]string
		env  string
	}{
		{map[string]string{"AUTHD_REQUEST_TIMEOUT": "0"}, "AUTHD_REQUEST_TIMEOUT"},
		{map[string]string{"AUTHD_REQUEST_TIMEOUT": "1m"}, "AUTHD_REQUEST_TIMEOUT"}, // past the 30 s write timeout
		{map[string]string{"AUTHD_REQUEST_TIMEOUT": "1s"}, "AUTHD_REQUEST_TIMEOUT"}, // not above the 1 s hash wait
		{map[string]string{"AUTHD_REQUEST_TIMEOUT": "2s", "AUTHD_HASH_MAX_WAIT": "2s"}, "AUTHD_REQUEST_TIMEOUT"},
		{map[string]string{"AUTHD_SHUTDOWN_DRAIN_DELAY": "-1s"}, "AUTHD_SHUTDOWN_DRAIN_DELAY"},
		{map[string]string{"AUTHD_SHUTDOWN_DRAIN_DELAY": "soon"}, "AUTHD_SHUTDOWN_DRAIN_DELAY"},
	} {
		_, err := Parse(nil, env(tc.vars), nil)
		var se *Error
		if !errors.As(err, &se) || se.Env != tc.env || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want a one-line *Error naming %s", tc.vars, err, tc.env)
		}
	}
}
