// Package config reads authd's settings from the environment and the command
// line (a flag wins over its variable), validates every value once at start,
// and hands each part of the service only its own slice of the result.
//
// The list of settings, their defaults and meaning is the table in settings;
// `authd -h` prints it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authd/authd/internal/clientip"
	"github.com/authd/authd/internal/password"
)

// Config is every setting, parsed and validated.
type Config struct {
	HTTPAddr  string
	AdminAddr string

	DatabaseURL    string // "sqlite:PATH", "sqlite::memory:" or "postgres://…"
	RedisURL       string // empty: in-process state
	RedisKeyPrefix string // every Redis key starts with it

	Hash   Hash
	Argon2 Argon2

	PasswordMinLength int // characters after NFKC; 8..64

	RateLimit      RateLimit
	TrustedProxies []netip.Prefix

	// The per-account login throttle's delays: the first, doubled with each
	// further failure, up to the cap.
	AccountThrottleBaseDelay time.Duration
	AccountThrottleMaxDelay  time.Duration

	AccessTokenTTL    time.Duration
	RefreshTokenTTL   time.Duration
	KeyReloadInterval time.Duration // how often signing keys are re-read
	JWTIssuer         string
	JWTAudience       string
	SecretKey         string // empty: generated and stored (SQLite only, development)
	PublicURL         string // default: derived from HTTPAddr

	Notify Notify

	ShutdownTimeout time.Duration
	LogLevel        slog.Level
	LogFormat       string // text or json; empty: text on a terminal, json otherwise

	// ShutdownDrainDelay is how long /readyz answers 503 while requests are
	// still served, before the listeners close.
	ShutdownDrainDelay time.Duration
	// RequestTimeout is the deadline of every public request and of each
	// database call.
	RequestTimeout time.Duration
}

// Notify is the Courier's: how long one delivery attempt may take, and
// the email and SMS providers (empty: the log).
type Notify struct {
	Timeout         time.Duration
	SMTPURL         string
	MailFrom        string
	SMSWebhookURL   string
	SMSWebhookToken string

	TwilioAccountSID, TwilioAuthToken, TwilioFrom, TwilioBaseURL string
}

// Hash sizes the Forge's worker pool.
type Hash struct {
	Workers int
	Queue   int
	MaxWait time.Duration
}

// Argon2 is the cost of new password hashes.
type Argon2 struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// RateLimit is the per-client token bucket on the auth endpoints.
type RateLimit struct {
	RPS   float64
	Burst int
}

// QueuePerWorker is the default hash queue length per worker: at the default
// Argon2 cost (about 26 ms a hash on one core) a job at the back of a full
// queue waits about 32 × 26 ms ≈ 0.85 s, inside the one-second wait target.
const QueuePerWorker = 32

// Error is a bad setting. Its message is one line naming the variable.
type Error struct {
	Env, Flag, Value, Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid setting %s (-%s) = %q: %s", e.Env, e.Flag, e.Value, e.Reason)
}

// ErrHelp is returned by Parse when -h or -help was given; usage has been written.
var ErrHelp = flag.ErrHelp

type setting struct {
	env, flag, def, usage string
	secret                bool
	set                   func(c *Config, v string) error
}

func settings() []setting {
	ncpu := runtime.NumCPU()
	return []setting{
		{"AUTHD_HTTP_ADDR", "http-addr", ":8080", "public API listener", false, func(c *Config, v string) error { c.HTTPAddr = v; return addr(v) }},
		{"AUTHD_ADMIN_ADDR", "admin-addr", "127.0.0.1:9090", "admin listener: /metrics, /debug/pprof/", false, func(c *Config, v string) error { c.AdminAddr = v; return addr(v) }},
		{"AUTHD_DATABASE_URL", "database-url", "sqlite:authd.db", "sqlite:PATH, sqlite::memory: or postgres://…", true, func(c *Config, v string) error { c.DatabaseURL = v; return databaseURL(v) }},
		{"AUTHD_REDIS_URL", "redis-url", "", "redis://host:port/db or rediss://…; empty = in-process state", true, func(c *Config, v string) error {
			c.RedisURL = v
			return optionalURL(v, "redis", "rediss")
		}},
		{"AUTHD_REDIS_KEY_PREFIX", "redis-key-prefix", "authd:", "prefix of every Redis key (several deployments may share one Redis)", false, func(c *Config, v string) error {
			c.RedisKeyPrefix = v
			if v == "" || len(v) > 64 || strings.ContainsAny(v, " {}") {
				return errors.New("must be 1 to 64 bytes without spaces or braces")
			}
			return nil
		}},
		{"AUTHD_HASH_WORKERS", "hash-workers", strconv.Itoa(ncpu), "Argon2id workers (default: number of CPUs)", false, func(c *Config, v string) error { return positiveInt(v, 1, 1024, &c.Hash.Workers) }},
		{"AUTHD_HASH_QUEUE", "hash-queue", "", fmt.Sprintf("hash jobs that may wait; beyond it 503 (default: %d per worker)", QueuePerWorker), false, func(c *Config, v string) error {
			if v == "" {
				c.Hash.Queue = -1 // resolved after workers are known
				return nil
			}
			return positiveInt(v, 0, 1<<20, &c.Hash.Queue)
		}},
		{"AUTHD_HASH_MAX_WAIT", "hash-max-wait", "1s", "refuse a hash job (503) whose expected queue wait exceeds this, whatever the queue length; 0 = by length only", false, func(c *Config, v string) error {
			if v == "0" {
				c.Hash.MaxWait = 0
				return nil
			}
			return duration(v, 10*time.Millisecond, time.Hour, &c.Hash.MaxWait)
		}},
		{"AUTHD_ARGON2_MEMORY_KIB", "argon2-memory-kib", "19456", "Argon2id memory per hash in KiB (OWASP floor 19456)", false, func(c *Config, v string) error {
			var n int
			if err := positiveInt(v, 19456, 256<<10, &n); err != nil {
				return err
			}
			c.Argon2.MemoryKiB = uint32(n)
			return nil
		}},
		{"AUTHD_ARGON2_ITERATIONS", "argon2-iterations", "2", "Argon2id iterations (OWASP floor 2)", false, func(c *Config, v string) error {
			var n int
			if err := positiveInt(v, 2, 16, &n); err != nil {
				return err
			}
			c.Argon2.Iterations = uint32(n)
			return nil
		}},
		{"AUTHD_ARGON2_PARALLELISM", "argon2-parallelism", "1", "Argon2id lanes per hash", false, func(c *Config, v string) error {
			var n int
			if err := positiveInt(v, 1, 16, &n); err != nil {
				return err
			}
			c.Argon2.Parallelism = uint8(n)
			return nil
		}},
		{"AUTHD_PASSWORD_MIN_LENGTH", "password-min-length", strconv.Itoa(password.DefaultMinLength),
			fmt.Sprintf("least characters of a new password (%d to %d; NIST SP 800-63B-4: 15 when the password is the only factor)", password.MinRunes, password.MaxMinLength), false,
			func(c *Config, v string) error {
				return positiveInt(v, password.MinRunes, password.MaxMinLength, &c.PasswordMinLength)
			}},
		{"AUTHD_RATE_LIMIT_RPS", "rate-limit-rps", "5", "per-client sustained requests per second on the auth endpoints", false, func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 || f > 1e6 {
				return errors.New("must be a number above 0")
			}
			c.RateLimit.RPS = f
			return nil
		}},
		{"AUTHD_RATE_LIMIT_BURST", "rate-limit-burst", "20", "per-client burst on the auth endpoints", false, func(c *Config, v string) error { return positiveInt(v, 1, 1e6, &c.RateLimit.Burst) }},
		{"AUTHD_ACCOUNT_THROTTLE_BASE_DELAY", "account-throttle-base-delay", "1s", "per-account login throttle: the delay after the free failures, doubled with each further failure", false, func(c *Config, v string) error {
			return duration(v, time.Millisecond, time.Hour, &c.AccountThrottleBaseDelay)
		}},
		{"AUTHD_ACCOUNT_THROTTLE_MAX_DELAY", "account-throttle-max-delay", "15m", "per-account login throttle: the longest delay (raised to the base delay if below it)", false, func(c *Config, v string) error {
			return duration(v, time.Millisecond, 24*time.Hour, &c.AccountThrottleMaxDelay)
		}},
		{"AUTHD_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-For / X-Real-IP is believed", false, func(c *Config, v string) error {
			p, err := clientip.ParsePrefixes(v)
			c.TrustedProxies = p
			if err != nil {
				// The setting's line already shows the whole value; say only
				// which entry is wrong and why, once.
				return errors.New(strings.TrimPrefix(err.Error(), "clientip: "))
			}
			return nil
		}},
		{"AUTHD_ACCESS_TOKEN_TTL", "access-token-ttl", "15m", "access token lifetime", false, func(c *Config, v string) error { return duration(v, time.Minute, 24*time.Hour, &c.AccessTokenTTL) }},
		{"AUTHD_REFRESH_TOKEN_TTL", "refresh-token-ttl", "720h", "refresh token (session) lifetime", false, func(c *Config, v string) error { return duration(v, time.Minute, 8760*time.Hour, &c.RefreshTokenTTL) }},
		{"AUTHD_KEY_RELOAD_INTERVAL", "key-reload-interval", "1m", "how often signing keys are re-read: a rotation reaches every instance within it", false, func(c *Config, v string) error {
			return duration(v, 100*time.Millisecond, time.Hour, &c.KeyReloadInterval)
		}},
		{"AUTHD_JWT_ISSUER", "jwt-issuer", "", "iss of issued tokens (default: AUTHD_PUBLIC_URL)", false, func(c *Config, v string) error {
			c.JWTIssuer = v
			return optionalURL(v, "http", "https")
		}},
		{"AUTHD_JWT_AUDIENCE", "jwt-audience", "authd", "aud of issued tokens", false, func(c *Config, v string) error {
			c.JWTAudience = v
			if v == "" {
				return errors.New("must not be empty")
			}
			return nil
		}},
		{"AUTHD_SECRET_KEY", "secret-key", "", "at least 32 bytes; encrypts TOTP secrets and signing keys at rest (required with PostgreSQL; with SQLite default: generated and stored, development only)", true, func(c *Config, v string) error {
			c.SecretKey = v
			if v != "" && len(v) < 32 {
				return errors.New("must be at least 32 bytes")
			}
			return nil
		}},
		{"AUTHD_PUBLIC_URL", "public-url", "", "where clients reach authd: base of links and of discovery (default: http:// and AUTHD_HTTP_ADDR, localhost for an empty or wildcard host)", false, func(c *Config, v string) error {
			c.PublicURL = strings.TrimRight(v, "/")
			return optionalURL(v, "http", "https")
		}},
		// The Courier's providers (docs/API.md, "Email and SMS providers"). With
		// none configured, messages go to the log and start-up says so.
		{"AUTHD_SMTP_URL", "smtp-url", "", "email provider: smtp://[user:pass@]host[:587] (STARTTLS; required with credentials unless loopback) or smtps://…[:465] (implicit TLS); empty: emails go to the log", true, func(c *Config, v string) error {
			c.Notify.SMTPURL = v
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil {
				return errors.New("not a URL")
			}
			if u.Scheme != "smtp" && u.Scheme != "smtps" || u.Hostname() == "" || u.Path != "" || u.RawQuery != "" {
				return errors.New("must be smtp://[user:password@]host[:port] or smtps://…, without a path or query")
			}
			return nil
		}},
		{"AUTHD_MAIL_FROM", "mail-from", "", "From of every email (required with AUTHD_SMTP_URL)", false, func(c *Config, v string) error {
			c.Notify.MailFrom = v
			if v == "" {
				return nil
			}
			if _, err := mail.ParseAddress(v); err != nil {
				return errors.New("must be an address such as authd@example.com or \"Example <no-reply@example.com>\"")
			}
			return nil
		}},
		{"AUTHD_SMS_WEBHOOK_URL", "sms-webhook-url", "", "SMS provider: a JSON POST {to, body} per message; https (http only to loopback); empty: SMS go to the log", true, func(c *Config, v string) error {
			c.Notify.SMSWebhookURL = v
			return providerURL(v)
		}},
		{"AUTHD_SMS_WEBHOOK_TOKEN", "sms-webhook-token", "", "bearer token sent to AUTHD_SMS_WEBHOOK_URL", true, func(c *Config, v string) error {
			c.Notify.SMSWebhookToken = v
			return nil
		}},
		{"AUTHD_SMS_TWILIO_ACCOUNT_SID", "sms-twilio-account-sid", "", "SMS through Twilio's Messages API: the account SID (with _AUTH_TOKEN and _FROM)", false, func(c *Config, v string) error {
			c.Notify.TwilioAccountSID = v
			return nil
		}},
		{"AUTHD_SMS_TWILIO_AUTH_TOKEN", "sms-twilio-auth-token", "", "Twilio auth token", true, func(c *Config, v string) error {
			c.Notify.TwilioAuthToken = v
			return nil
		}},
		{"AUTHD_SMS_TWILIO_FROM", "sms-twilio-from", "", "Twilio sender: an E.164 number or a Messaging Service SID (MG…)", false, func(c *Config, v string) error {
			c.Notify.TwilioFrom = v
			return nil
		}},
		{"AUTHD_SMS_TWILIO_BASE_URL", "sms-twilio-base-url", "", "Twilio API base (default https://api.twilio.com; for tests and proxies)", false, func(c *Config, v string) error {
			c.Notify.TwilioBaseURL = v
			return providerURL(v)
		}},
		{"AUTHD_NOTIFY_TIMEOUT", "notify-timeout", "5s", "deadline of each attempt to deliver an email or SMS to its provider; a provider that does not answer in time is retried later", false, func(c *Config, v string) error {
			return duration(v, 100*time.Millisecond, 5*time.Minute, &c.Notify.Timeout)
		}},
		{"AUTHD_SHUTDOWN_TIMEOUT", "shutdown-timeout", "20s", "graceful shutdown budget", false, func(c *Config, v string) error { return duration(v, time.Millisecond, time.Hour, &c.ShutdownTimeout) }},
		{"AUTHD_SHUTDOWN_DRAIN_DELAY", "shutdown-drain-delay", "5s", "on SIGTERM, /readyz answers 503 this long while requests are still served, then the shutdown budget starts; 0 = none", false, func(c *Config, v string) error {
			return duration(v, 0, 10*time.Minute, &c.ShutdownDrainDelay)
		}},
		{"AUTHD_REQUEST_TIMEOUT", "request-timeout", "3s", "deadline of every public request and of each database call; past it 503 unavailable with Retry-After; must exceed AUTHD_HASH_MAX_WAIT", false, func(c *Config, v string) error {
			return duration(v, 100*time.Millisecond, 25*time.Second, &c.RequestTimeout)
		}},
		{"AUTHD_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", false, func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case "debug", "info", "warn", "error":
				return c.LogLevel.UnmarshalText([]byte(v))
			}
			return errors.New("must be debug, info, warn or error")
		}},
		{"AUTHD_LOG_FORMAT", "log-format", "", "text or json (default: text on a terminal, json otherwise)", false, func(c *Config, v string) error {
			c.LogFormat = strings.ToLower(v)
			switch c.LogFormat {
			case "", "text", "json":
				return nil
			}
			return errors.New("must be text or json")
		}},
	}
}

// Parse reads the settings: defaults, then getenv, then args (flags). It
// returns ErrHelp after writing usage to out when asked for help, and an
// *Error naming the setting for the first bad value.
func Parse(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	ss := settings()
	fs := flag.NewFlagSet("authd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := make([]*string, len(ss))
	for i, s := range ss {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		vals[i] = fs.String(s.flag, v, s.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(out)
			return nil, ErrHelp
		}
		return nil, fmt.Errorf("%w (authd -h lists the settings)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (authd -h lists the settings)", fs.Arg(0))
	}
	c := &Config{}
	for i, s := range ss {
		if err := s.set(c, *vals[i]); err != nil {
			shown := *vals[i]
			switch {
			case s.env == "AUTHD_SECRET_KEY", s.env == "AUTHD_SMS_WEBHOOK_TOKEN", s.env == "AUTHD_SMS_TWILIO_AUTH_TOKEN":
				shown = "REDACTED"
			case s.secret:
				shown = redactURL(shown)
			}
			return nil, &Error{Env: s.env, Flag: s.flag, Value: shown, Reason: err.Error()}
		}
	}
	if c.Hash.Queue < 0 {
		c.Hash.Queue = QueuePerWorker * c.Hash.Workers
	}
	if c.PublicURL == "" {
		c.PublicURL = publicURLOf(c.HTTPAddr)
	}
	if c.JWTIssuer == "" {
		c.JWTIssuer = c.PublicURL
	}
	// A generated secret is kept in the database beside the signing keys it
	// seals: a copy of that database alone would mint tokens. Only the
	// embedded SQLite default (development) may do without one.
	if c.SecretKey == "" && !strings.HasPrefix(c.DatabaseURL, "sqlite:") {
		return nil, &Error{Env: "AUTHD_SECRET_KEY", Flag: "secret-key", Value: "",
			Reason: "must be set with PostgreSQL: a generated key would be stored in the database beside the signing keys it protects"}
	}
	if err := checkNotify(c.Notify); err != nil {
		return nil, err
	}
	// A login may wait AUTHD_HASH_MAX_WAIT for a hash worker: a request
	// deadline no longer than that would fail logins the pool admitted.
	if c.Hash.MaxWait > 0 && c.RequestTimeout <= c.Hash.MaxWait {
		return nil, &Error{Env: "AUTHD_REQUEST_TIMEOUT", Flag: "request-timeout", Value: c.RequestTimeout.String(),
			Reason: fmt.Sprintf("must exceed AUTHD_HASH_MAX_WAIT (%s)", c.Hash.MaxWait)}
	}
	return c, nil
}

// publicURLOf is the default AUTHD_PUBLIC_URL: where a client on this
// machine reaches the public listener at addr (":9000" and "0.0.0.0:9000"
// give http://localhost:9000, "127.0.0.1:9000" gives http://127.0.0.1:9000).
// addr has passed addr().
func publicURLOf(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if a, err := netip.ParseAddr(host); host == "" || err == nil && a.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// providerURL accepts an empty value, an https URL, or an http URL to a
// loopback host (a local gateway, a test).
func providerURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return errors.New("not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if h := u.Hostname(); h == "localhost" || net.ParseIP(h) != nil && net.ParseIP(h).IsLoopback() {
			return nil
		}
		return errors.New("must be https (http only to a loopback host)")
	}
	return errors.New("must be an https URL")
}

// checkNotify checks the providers' settings together: From with SMTP, one
// SMS provider, and all of Twilio's three or none.
func checkNotify(n Notify) *Error {
	if n.SMTPURL != "" && n.MailFrom == "" {
		return &Error{Env: "AUTHD_MAIL_FROM", Flag: "mail-from", Reason: "must be set with AUTHD_SMTP_URL"}
	}
	if n.MailFrom != "" && n.SMTPURL == "" {
		return &Error{Env: "AUTHD_MAIL_FROM", Flag: "mail-from", Value: n.MailFrom, Reason: "has no effect without AUTHD_SMTP_URL (emails go to the log)"}
	}
	if n.SMSWebhookToken != "" && n.SMSWebhookURL == "" {
		return &Error{Env: "AUTHD_SMS_WEBHOOK_TOKEN", Flag: "sms-webhook-token", Value: "REDACTED", Reason: "has no effect without AUTHD_SMS_WEBHOOK_URL"}
	}
	twilio := []struct{ env, flag, v string }{
		{"AUTHD_SMS_TWILIO_ACCOUNT_SID", "sms-twilio-account-sid", n.TwilioAccountSID},
		{"AUTHD_SMS_TWILIO_AUTH_TOKEN", "sms-twilio-auth-token", n.TwilioAuthToken},
		{"AUTHD_SMS_TWILIO_FROM", "sms-twilio-from", n.TwilioFrom},
	}
	set := 0
	for _, t := range twilio {
		if t.v != "" {
			set++
		}
	}
	if set == 0 && n.TwilioBaseURL != "" {
		return &Error{Env: "AUTHD_SMS_TWILIO_BASE_URL", Flag: "sms-twilio-base-url", Value: n.TwilioBaseURL, Reason: "has no effect without the other Twilio settings"}
	}
	if set > 0 && set < len(twilio) {
		for _, t := range twilio {
			if t.v == "" {
				return &Error{Env: t.env, Flag: t.flag, Reason: "must be set with the other Twilio settings"}
			}
		}
	}
	if set > 0 && n.SMSWebhookURL != "" {
		return &Error{Env: "AUTHD_SMS_WEBHOOK_URL", Flag: "sms-webhook-url", Value: redactURL(n.SMSWebhookURL), Reason: "only one SMS provider: unset it or the Twilio settings"}
	}
	return nil
}

// Usage writes every setting with its default.
func Usage(out io.Writer) {
	fmt.Fprintf(out, "Usage: authd [flags]\n       authd keys rotate [flags]\n\nEvery setting is an environment variable and the same-named flag; a flag wins.\n\n")
	UsageOf(out)
}

// UsageOf writes the settings named by envs (all of them when envs is empty)
// with their defaults, as a table.
func UsageOf(out io.Writer, envs ...string) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tFLAG\tDEFAULT\tMEANING")
	// Defaults derived from other settings are shown as what they become.
	derived := map[string]string{
		"AUTHD_HASH_QUEUE": fmt.Sprintf("%d×workers", QueuePerWorker),
		"AUTHD_JWT_ISSUER": "AUTHD_PUBLIC_URL",
		"AUTHD_PUBLIC_URL": "http://AUTHD_HTTP_ADDR",
		"AUTHD_LOG_FORMAT": "text on a terminal, else json",
		"AUTHD_SECRET_KEY": "generated (dev only)",
	}
	for _, s := range settings() {
		if len(envs) > 0 && !slices.Contains(envs, s.env) {
			continue
		}
		def := s.def
		if d, ok := derived[s.env]; ok && def == "" {
			def = d
		}
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(tw, "%s\t-%s\t%s\t%s\n", s.env, s.flag, def, s.usage)
	}
	tw.Flush()
}

func positiveInt(v string, lo, hi int, dst *int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return errors.New("must be an integer")
	}
	if n < lo || n > hi {
		return fmt.Errorf("must be between %d and %d", lo, hi)
	}
	*dst = n
	return nil
}

func duration(v string, lo, hi time.Duration, dst *time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("must be a Go duration such as 15m or 720h")
	}
	if d < lo || d > hi {
		return fmt.Errorf("must be between %s and %s", lo, hi)
	}
	*dst = d
	return nil
}

func addr(v string) error {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return errors.New("must be host:port or :port")
	}
	if n, err := strconv.Atoi(v[i+1:]); err != nil || n < 0 || n > 65535 {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

func databaseURL(v string) error {
	switch {
	case strings.HasPrefix(v, "sqlite:"):
		if strings.TrimPrefix(v, "sqlite:") == "" {
			return errors.New("sqlite: needs a path (or :memory:)")
		}
		return nil
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return errors.New("is not a valid postgres:// URL")
		}
		return nil
	}
	return errors.New("must start with sqlite: or postgres://")
}

func optionalURL(v string, schemes ...string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("is not a valid URL")
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" {
				return errors.New("URL has no host")
			}
			return nil
		}
	}
	return fmt.Errorf("URL scheme must be %s", strings.Join(schemes, " or "))
}

// redactURL hides a URL's password so a bad secret setting can be reported.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" {
		return "REDACTED"
	}
	// Userinfo (a password, or a token in the user position) and the query
	// (an API key) may be secrets: neither is shown.
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.String()
}
