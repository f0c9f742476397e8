package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authd/authd/internal/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testTo     = "+15551234567"
	testCode   = "493817"
	testToken  = "whsec-0123456789"
	testSID    = "AC00000000000000000000000000000001"
	testAuthTk = "twilio-auth-token-abcdef"
	testFrom   = "+15557654321"
)

func mfa() auth.Message {
	return auth.Message{Channel: auth.ChannelSMS, To: testTo, Template: auth.TemplateMFACode,
		Data: map[string]string{"code": testCode}, IdempotencyKey: "mfa:u1:7"}
}

// request is what a test provider received.
type request struct {
	method, path, auth, contentType, idemKey string
	body                                     []byte
}

// provider is an httptest server whose answer each test sets; it records
// what it received.
type provider struct {
	*httptest.Server
	mu  sync.Mutex
	got []request
}

func newProvider(t *testing.T, answer http.HandlerFunc) *provider {
	t.Helper()
	p := &provider{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.got = append(p.got, request{r.Method, r.URL.Path, r.Header.Get("Authorization"),
			r.Header.Get("Content-Type"), r.Header.Get("Idempotency-Key"), b})
		p.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *provider) requests() []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]request(nil), p.got...)
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// hang answers only when the client goes away (or the test ends).
func hang(release <-chan struct{}) http.HandlerFunc {
	return func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

func logger(buf *bytes.Buffer) *slog.Logger {
	var w io.Writer = io.Discard
	if buf != nil {
		w = buf
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newWebhook(t *testing.T, url string, buf *bytes.Buffer) *Webhook {
	t.Helper()
	w, err := NewWebhook(WebhookParams{URL: url, Token: testToken}, logger(buf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func newTwilio(t *testing.T, baseURL, from string, buf *bytes.Buffer) *Twilio {
	t.Helper()
	tw, err := NewTwilio(TwilioParams{AccountSID: testSID, AuthToken: testAuthTk, From: from, BaseURL: baseURL}, logger(buf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tw.Close() })
	return tw
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestWebhookDelivers(t *testing.T) {
	t.Parallel()
	p := newProvider(t, status(http.StatusAccepted, `{"id":"1"}`))
	w := newWebhook(t, p.URL+"/send", nil)
	if err := w.Deliver(ctxTimeout(t, 5*time.Second), mfa()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got := p.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	r := got[0]
	if r.method != http.MethodPost || r.path != "/send" || r.auth != "Bearer "+testToken ||
		r.contentType != "application/json" || r.idemKey != "mfa:u1:7" {
		t.Errorf("request %+v", r)
	}
	var body map[string]string
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	if len(body) != 2 || body["to"] != testTo || !strings.Contains(body["body"], testCode) {
		t.Errorf("body %s, want {to, body with the code}", r.body)
	}
}

func TestWebhookWithoutToken(t *testing.T) {
	t.Parallel()
	p := newProvider(t, status(http.StatusNoContent, ""))
	w, err := NewWebhook(WebhookParams{URL: p.URL}, logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Deliver(ctxTimeout(t, 5*time.Second), mfa()); err != nil {
		t.Fatal(err)
	}
	if a := p.requests()[0].auth; a != "" {
		t.Errorf("Authorization %q, want none", a)
	}
}

func TestWebhookStatusClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status        int
		ok            bool
		undeliverable bool
	}{
		{status: 200, ok: true},
		{status: 201, ok: true},
		{status: 204, ok: true},
		{status: 400, undeliverable: true},
		{status: 404, undeliverable: true},
		{status: 422, undeliverable: true},
		{status: 401},
		{status: 403},
		{status: 408},
		{status: 429},
		{status: 500},
		{status: 502},
		{status: 503},
		{status: 302},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, func(w http.ResponseWriter, _ *http.Request) {
				if tt.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
			})
			err := newWebhook(t, p.URL, nil).Deliver(ctxTimeout(t, 5*time.Second), mfa())
			if (err == nil) != tt.ok || errors.Is(err, auth.ErrUndeliverable) != tt.undeliverable {
				t.Fatalf("status %d: Deliver = %v; want ok=%v undeliverable=%v", tt.status, err, tt.ok, tt.undeliverable)
			}
			if n := len(p.requests()); n != 1 {
				t.Fatalf("%d requests, want 1 (no redirect followed)", n)
			}
		})
	}
}

func TestWebhookSlowProviderWithinDeadline(t *testing.T) {
	t.Parallel()
	p := newProvider(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(200 * time.Millisecond): // a slow provider, not a clock
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	if err := newWebhook(t, p.URL, nil).Deliver(ctxTimeout(t, 5*time.Second), mfa()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
}

func TestNetworkErrorIsRetryable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	w := newWebhook(t, "http://"+addr+"/send?key="+testToken, nil)
	err = w.Deliver(ctxTimeout(t, 5*time.Second), mfa())
	if err == nil || errors.Is(err, auth.ErrUndeliverable) {
		t.Fatalf("Deliver = %v, want retryable", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error quotes the URL's key: %v", err)
	}
	tw := newTwilio(t, "http://"+addr, testFrom, nil)
	if err := tw.Deliver(ctxTimeout(t, 5*time.Second), mfa()); err == nil || errors.Is(err, auth.ErrUndeliverable) {
		t.Fatalf("Twilio Deliver = %v, want retryable", err)
	}
}

// A provider that never answers frees the caller at ctx's deadline and
// leaves no goroutine behind. Not parallel: goleak.VerifyNone sees the
// whole process.
func TestHangingProviderReturnsAtDeadline(t *testing.T) {
	for _, name := range []string{"webhook", "twilio"} {
		t.Run(name, func(t *testing.T) {
			release := make(chan struct{})
			p := httptest.NewServer(hang(release))
			var s auth.Sender
			var closer func() error
			if name == "webhook" {
				w, err := NewWebhook(WebhookParams{URL: p.URL}, logger(nil))
				if err != nil {
					t.Fatal(err)
				}
				s, closer = w, w.Close
			} else {
				tw, err := NewTwilio(TwilioParams{AccountSID: testSID, AuthToken: testAuthTk, From: testFrom, BaseURL: p.URL}, logger(nil))
				if err != nil {
					t.Fatal(err)
				}
				s, closer = tw, tw.Close
			}
			const deadline = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			start := time.Now()
			err := s.Deliver(ctx, mfa())
			took := time.Since(start)
			cancel()
			if err == nil || errors.Is(err, auth.ErrUndeliverable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Deliver = %v, want a retryable deadline error", err)
			}
			if took < deadline || took > deadline+time.Second {
				t.Errorf("Deliver returned after %v, want about %v", took, deadline)
			}
			_ = closer()
			close(release)
			p.Close()
			goleak.VerifyNone(t)
		})
	}
}

func TestRenderErrorsAreUndeliverable(t *testing.T) {
	t.Parallel()
	p := newProvider(t, status(http.StatusOK, ""))
	senders := map[string]auth.Sender{
		"webhook": newWebhook(t, p.URL, nil),
		"twilio":  newTwilio(t, p.URL, testFrom, nil),
	}
	tests := map[string]func(m *auth.Message){
		"unknown template": func(m *auth.Message) { m.Template = auth.TemplateWelcome },
		"missing key":      func(m *auth.Message) { m.Data = map[string]string{"link": "x"} },
		"nil data":         func(m *auth.Message) { m.Data = nil },
		"reset needs link": func(m *auth.Message) { m.Template = auth.TemplateResetPassword },
		"email channel":    func(m *auth.Message) { m.Channel = auth.ChannelEmail },
		"not E.164":        func(m *auth.Message) { m.To = "5551234567" },
	}
	for sname, s := range senders {
		for name, mutate := range tests {
			m := mfa()
			mutate(&m)
			if err := s.Deliver(ctxTimeout(t, 5*time.Second), m); !errors.Is(err, auth.ErrUndeliverable) {
				t.Errorf("%s %s: Deliver = %v, want ErrUndeliverable", sname, name, err)
			}
		}
	}
	if n := len(p.requests()); n != 0 {
		t.Errorf("%d requests for messages that cannot be rendered", n)
	}
}

func TestTemplatesRender(t *testing.T) {
	t.Parallel()
	b, err := newBase("test", logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := map[string]string{"link": "https://auth.example.com/r?token=abc", "code": testCode}
	for _, name := range templateNames {
		body, err := b.render(auth.Message{Channel: auth.ChannelSMS, To: testTo, Template: name, Data: data})
		if err != nil || strings.TrimSpace(body) == "" || len(body) > 160 {
			t.Errorf("%s: %q, %v (want a non-empty body of one SMS)", name, body, err)
		}
	}
}

func TestTwilioDelivers(t *testing.T) {
	t.Parallel()
	for _, from := range []string{testFrom, "MG00000000000000000000000000000002"} {
		p := newProvider(t, status(http.StatusCreated, `{"sid":"SM1","status":"queued"}`))
		tw := newTwilio(t, p.URL, from, nil)
		if err := tw.Deliver(ctxTimeout(t, 5*time.Second), mfa()); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		r := p.requests()[0]
		req, _ := http.NewRequest(r.method, "/", bytes.NewReader(r.body))
		req.Header.Set("Content-Type", r.contentType)
		req.Header.Set("Authorization", r.auth)
		if err := req.ParseForm(); err != nil {
			t.Fatal(err)
		}
		user, pass, ok := req.BasicAuth()
		if r.method != http.MethodPost || r.path != "/2010-04-01/Accounts/"+testSID+"/Messages.json" ||
			!ok || user != testSID || pass != testAuthTk {
			t.Errorf("request %s %s basic=%v %q", r.method, r.path, ok, user)
		}
		f := req.PostForm
		if f.Get("To") != testTo || !strings.Contains(f.Get("Body"), testCode) {
			t.Errorf("form %v", f)
		}
		if strings.HasPrefix(from, "MG") {
			if f.Get("MessagingServiceSid") != from || f.Has("From") {
				t.Errorf("form %v, want MessagingServiceSid", f)
			}
		} else if f.Get("From") != from {
			t.Errorf("form %v, want From", f)
		}
	}
}

func TestTwilioErrors(t *testing.T) {
	t.Parallel()
	twErr := func(status, code int) string {
		b, _ := json.Marshal(map[string]any{"code": code, "status": status,
			"message":   "The 'To' number " + testTo + " is not valid.",
			"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code)})
		return string(b)
	}
	tests := []struct {
		name          string
		status        int
		body          string
		undeliverable bool
		wantCode      string
	}{
		{"21211 invalid number", 400, twErr(400, 21211), true, "21211"},
		{"21610 unsubscribed", 400, twErr(400, 21610), true, "21610"},
		{"20429 too many requests", 429, twErr(429, 20429), false, "20429"},
		{"20003 authentication", 401, twErr(401, 20003), false, "20003"},
		{"20429 with 400", 400, twErr(400, 20429), false, "20429"},
		{"500 not JSON", 500, "<html>oops</html>", false, "500"},
		{"400 not JSON", 400, "bad", true, "400"},
		{"503", 503, twErr(503, 20500), false, "20500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, status(tt.status, tt.body))
			err := newTwilio(t, p.URL, testFrom, nil).Deliver(ctxTimeout(t, 5*time.Second), mfa())
			if err == nil || errors.Is(err, auth.ErrUndeliverable) != tt.undeliverable {
				t.Fatalf("Deliver = %v, want undeliverable=%v", err, tt.undeliverable)
			}
			if !strings.Contains(err.Error(), tt.wantCode) {
				t.Errorf("error %q lacks %s", err, tt.wantCode)
			}
			for _, secret := range []string{testTo, testAuthTk, testCode} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains %q", err, secret)
				}
			}
		})
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	t.Parallel()
	l := logger(nil)
	webhooks := map[string]WebhookParams{
		"empty":          {},
		"plain http":     {URL: "http://sms.example.com/send"},
		"ftp":            {URL: "ftp://sms.example.com/send"},
		"no host":        {URL: "https:///send"},
		"userinfo":       {URL: "https://u:hunter22@sms.example.com/send"},
		"not a URL":      {URL: "https://sms.example.com:x:y/%zz?hunter22"},
		"http localhost": {URL: "http://localhost:1/send"}, // allowed: checked below
	}
	for name, p := range webhooks {
		_, err := NewWebhook(p, l)
		if (err == nil) != (name == "http localhost") {
			t.Errorf("NewWebhook(%s) = %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter22") {
			t.Errorf("NewWebhook(%s) error reveals a secret: %v", name, err)
		}
	}
	if _, err := NewWebhook(WebhookParams{URL: "https://sms.example.com"}, nil); err == nil {
		t.Error("NewWebhook without a logger succeeded")
	}
	good := TwilioParams{AccountSID: testSID, AuthToken: testAuthTk, From: testFrom}
	twilios := map[string]func(p *TwilioParams){
		"no sid":        func(p *TwilioParams) { p.AccountSID = "" },
		"no token":      func(p *TwilioParams) { p.AuthToken = "" },
		"no from":       func(p *TwilioParams) { p.From = "" },
		"bad sid":       func(p *TwilioParams) { p.AccountSID = "XY123" },
		"sid with path": func(p *TwilioParams) { p.AccountSID = "AC1/../x" },
		"bad from":      func(p *TwilioParams) { p.From = "5551234" },
		"http base":     func(p *TwilioParams) { p.BaseURL = "http://api.example.com" },
	}
	for name, mutate := range twilios {
		p := good
		mutate(&p)
		_, err := NewTwilio(p, l)
		if err == nil {
			t.Errorf("NewTwilio(%s) succeeded", name)
		} else if strings.Contains(err.Error(), testAuthTk) {
			t.Errorf("NewTwilio(%s) error reveals the token: %v", name, err)
		}
	}
	tw, err := NewTwilio(good, l)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tw.endpoint, DefaultTwilioBaseURL+"/2010-04-01/Accounts/"+testSID+"/") {
		t.Errorf("endpoint %q", tw.endpoint)
	}
	_ = tw.Close()
	if _, err := NewTwilio(good, nil); err == nil {
		t.Error("NewTwilio without a logger succeeded")
	}
}

// The log holds channel, template, provider and outcome; never the number,
// the code, the link or a credential.
func TestLogHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	ok := newProvider(t, status(http.StatusCreated, `{}`))
	refused := newProvider(t, status(http.StatusBadRequest, `{"code":21211,"message":"The 'To' number +15551234567 is not valid."}`))
	reset := auth.Message{Channel: auth.ChannelSMS, To: testTo, Template: auth.TemplateResetPassword,
		Data: map[string]string{"link": "https://auth.example.com/reset?token=c2VjcmV0dG9rZW4"}}
	for _, s := range []auth.Sender{
		newWebhook(t, ok.URL, &buf), newTwilio(t, ok.URL, testFrom, &buf),
		newWebhook(t, refused.URL, &buf), newTwilio(t, refused.URL, testFrom, &buf),
	} {
		for _, m := range []auth.Message{mfa(), reset} {
			_ = s.Deliver(ctxTimeout(t, 5*time.Second), m)
		}
	}
	out := buf.String()
	for _, secret := range []string{testTo, "5551234567", testCode, "c2VjcmV0dG9rZW4", testToken, testAuthTk, "mfa:u1"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`"outcome":"accepted"`, `"outcome":"undeliverable"`, `"template":"mfa_code"`,
		`"template":"reset_password"`, `"provider":"twilio"`, `"provider":"webhook"`, `"channel":"sms"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
