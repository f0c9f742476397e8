package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/app/apptest"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/courier"
)

// outbox is a provider that hands every message it accepts to the test.
type outbox chan auth.Message

func (o outbox) Deliver(ctx context.Context, m auth.Message) error {
	select {
	case o <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next returns the next message delivered, failing after 10 s.
func (o outbox) next(t *testing.T) auth.Message {
	t.Helper()
	select {
	case m := <-o:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message delivered within 10s")
		return auth.Message{}
	}
}

// verifyToken returns the token of a verification email's link, checking
// that the link is built from the public URL.
func verifyToken(t *testing.T, m auth.Message, to string) string {
	t.Helper()
	if m.Channel != auth.ChannelEmail || m.Template != auth.TemplateVerifyEmail || m.To != to {
		t.Fatalf("message %s/%s to %s, want a verification email to %s", m.Channel, m.Template, m.To, to)
	}
	link, err := url.Parse(m.Data["link"])
	if err != nil || !strings.HasPrefix(m.Data["link"], apptest.Issuer+"/verify-email?token=") {
		t.Fatalf("link %q: want %s/verify-email?token=… (%v)", m.Data["link"], apptest.Issuer, err)
	}
	tok := link.Query().Get("token")
	if len(tok) < 22 { // 128 bits in base64url
		t.Fatalf("token %q is too short", tok)
	}
	return tok
}

// newMailFixture is newFixture with a provider that records messages.
func newMailFixture(t *testing.T, db stores) (*fixture, outbox) {
	t.Helper()
	logs := &apptest.Logs{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	sent := make(outbox, 100)
	svc := apptest.Build(t, apptest.Config(t), logger, reg, app.WithStores(db),
		app.WithSenders(courier.Senders{Email: sent, SMS: sent}))
	srv := httptest.NewServer(svc.API)
	t.Cleanup(srv.Close)
	return &fixture{url: srv.URL, pool: svc.Pool, logs: logs, reg: reg}, sent
}

// Registration queues a verification email; its link's token verifies the
// address once.
func TestEmailVerification(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open func(t *testing.T) stores) {
		f, sent := newMailFixture(t, open(t))
		register(t, f, "ada@example.com")
		tok := verifyToken(t, sent.next(t), "ada@example.com")

		pair := login(t, f, "ada@example.com")
		if me := f.do(t, http.MethodGet, "/v1/me", "", "", pair.AccessToken).json(t); me["email_verified"] != false {
			t.Fatalf("before verification: %v", me)
		}
		wantProblem(t, f.post(t, "/v1/email/verify", `{"token":"`+tok+`x"}`), 400, "validation_failed")
		if r := f.post(t, "/v1/email/verify", `{"token":"`+tok+`"}`); r.status != http.StatusNoContent {
			t.Fatalf("verify: %d %s", r.status, r.body)
		}
		if me := f.do(t, http.MethodGet, "/v1/me", "", "", pair.AccessToken).json(t); me["email_verified"] != true {
			t.Fatalf("after verification: %v", me)
		}
		p := wantProblem(t, f.post(t, "/v1/email/verify", `{"token":"`+tok+`"}`), 400, "validation_failed")
		if errs, _ := p["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["field"] != "token" {
			t.Errorf("second use: %v, want the token field named", p)
		}
		wantProblem(t, f.post(t, "/v1/email/verify", `{}`), 400, "validation_failed")

		// Nothing left to verify: a resend sends nothing.
		r := f.do(t, http.MethodPost, "/v1/email/resend", "", "", pair.AccessToken)
		if r.status != http.StatusAccepted || r.json(t)["queued"] != false {
			t.Errorf("resend when verified: %d %s", r.status, r.body)
		}
		if logs := f.logs.String(); strings.Contains(logs, tok) {
			t.Errorf("the log holds the verification token:\n%s", logs)
		}
	})
}

// A resend queues a new email, up to 5 an hour per address; then 429 with
// the time to the next window.
func TestEmailResendLimit(t *testing.T) {
	t.Parallel()
	f, sent := newMailFixture(t, memDB(t))
	register(t, f, "bob@example.com")
	first := verifyToken(t, sent.next(t), "bob@example.com")
	pair := login(t, f, "bob@example.com")
	tokens := map[string]bool{first: true}
	for i := range 5 {
		r := f.do(t, http.MethodPost, "/v1/email/resend", "", "", pair.AccessToken)
		if r.status != http.StatusAccepted || r.json(t)["queued"] != true {
			t.Fatalf("resend %d: %d %s", i+1, r.status, r.body)
		}
		tokens[verifyToken(t, sent.next(t), "bob@example.com")] = true
	}
	if len(tokens) != 6 {
		t.Errorf("%d distinct tokens in 6 emails", len(tokens))
	}
	r := f.do(t, http.MethodPost, "/v1/email/resend", "", "", pair.AccessToken)
	wantProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 3600 {
		t.Errorf("Retry-After %q, want 1..3600 s", r.header.Get("Retry-After"))
	}
	wantProblem(t, f.do(t, http.MethodPost, "/v1/email/resend", "", "", ""), 401, "unauthorized")
	// Any of the tokens sent verifies the address (the first here).
	if r := f.post(t, "/v1/email/verify", `{"token":"`+first+`"}`); r.status != http.StatusNoContent {
		t.Fatalf("verify with the first token: %d %s", r.status, r.body)
	}
}

// hanging is a provider that never answers: each attempt ends at its deadline.
type hanging struct{ calls chan struct{} }

func (h hanging) Deliver(ctx context.Context, _ auth.Message) error {
	select {
	case h.calls <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// A provider that never answers does not hold up the request that queues
// its message: registration answers as fast as with a healthy one.
func TestRegistrationDoesNotWaitForAHangingProvider(t *testing.T) {
	t.Parallel()
	cfg := apptest.Config(t)
	cfg.Notify.Timeout = 300 * time.Millisecond
	cfg.RateLimit = config.RateLimit{RPS: 1, Burst: 1000}
	h := hanging{calls: make(chan struct{}, 1)}
	svc := apptest.Build(t, cfg, nil, nil, app.WithSenders(courier.Senders{Email: h, SMS: h}))
	srv := httptest.NewServer(svc.API)
	t.Cleanup(srv.Close)
	f := &fixture{url: srv.URL}
	const n = 40
	lat := make([]time.Duration, 0, n)
	for i := range n {
		begin := time.Now()
		register(t, f, "user"+strconv.Itoa(i)+"@example.com")
		lat = append(lat, time.Since(begin))
	}
	slices.Sort(lat)
	p50, worst := lat[n/2], lat[n-1]
	t.Logf("registration with a hanging provider: p50 %v, max %v over %d", p50, worst, n)
	select {
	case <-h.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("the provider was never called")
	}
	// An attempt takes the whole timeout; a request that waited for one
	// would take at least that.
	if worst >= cfg.Notify.Timeout {
		t.Errorf("slowest registration %v: it waited for the provider (timeout %v)", worst, cfg.Notify.Timeout)
	}
}
