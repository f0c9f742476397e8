package httpapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/app"
	"github.com/authd/authd/internal/app/apptest"
	"github.com/authd/authd/internal/auth"
	"github.com/authd/authd/internal/config"
	"github.com/authd/authd/internal/courier"
)

const newPassword = "a brand new passphrase"

// newPasswordFixture is newFixture with a provider that records messages
// and, unless throttleDelay is 0, the account throttle's windows all
// throttleDelay long.
func newPasswordFixture(t *testing.T, db stores, throttleDelay time.Duration) (*fixture, outbox) {
	t.Helper()
	logs := &apptest.Logs{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	cfg := apptest.Config(t)
	cfg.RateLimit = config.RateLimit{RPS: 1, Burst: 1000}
	if throttleDelay != 0 {
		cfg.AccountThrottleBaseDelay, cfg.AccountThrottleMaxDelay = throttleDelay, throttleDelay
	}
	sent := make(outbox, 100)
	svc := apptest.Build(t, cfg, logger, reg, app.WithStores(db),
		app.WithSenders(courier.Senders{Email: sent, SMS: sent}))
	srv := httptest.NewServer(svc.API)
	t.Cleanup(srv.Close)
	return &fixture{url: srv.URL, pool: svc.Pool, logs: logs, reg: reg}, sent
}

// sentMessages returns the next n messages of template that the provider
// was given, skipping others (a registration's verification email).
func sentMessages(t *testing.T, sent outbox, template string, n int) []auth.Message {
	t.Helper()
	var got []auth.Message
	for len(got) < n {
		if m := sent.next(t); m.Template == template {
			got = append(got, m)
		}
	}
	return got
}

// forgotCount returns the forgot requests the workers have finished, by outcome.
func forgotCount(t *testing.T, f *fixture) map[string]float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "authd_password_forgot_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// waitForgot waits until the workers have finished n forgot requests.
func waitForgot(t *testing.T, f *fixture, n float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := forgotCount(t, f)
		var sum float64
		for o, v := range c {
			if o != "dropped" {
				sum += v
			}
		}
		if sum >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("forgot requests handled: %v, want %v", c, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func forgot(t *testing.T, f *fixture, email string) response {
	t.Helper()
	r := f.post(t, "/v1/password/forgot", `{"email":"`+email+`"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("forgot %s: %d %s", email, r.status, r.body)
	}
	return r
}

// resetToken returns the token of a reset link, checking the link's form.
func resetToken(t *testing.T, m auth.Message) string {
	t.Helper()
	link := m.Data["link"]
	u, err := url.Parse(link)
	if err != nil || !strings.HasPrefix(link, apptest.Issuer+"/reset-password?") || u.Query().Get("token") == "" {
		t.Fatalf("reset link %q: want %s/reset-password?token=…", link, apptest.Issuer)
	}
	return u.Query().Get("token")
}

func resetBody(tok, pw string) string {
	return `{"token":"` + tok + `","password":"` + pw + `"}`
}

func loginWith(f *fixture, t *testing.T, email, pw string) response {
	t.Helper()
	return f.post(t, "/v1/login", `{"email":"`+email+`","password":"`+pw+`"}`)
}

// TestPasswordReset: forgot → the email's token → reset: every earlier
// session is dead, the new password works and the old one does not, the
// token works once, and nothing secret reaches the log.
func TestPasswordReset(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open func(t *testing.T) stores) {
		f, sent := newPasswordFixture(t, open(t), 0)
		register(t, f, "ada@example.com")
		a, b := login(t, f, "ada@example.com"), login(t, f, "ada@example.com")

		forgot(t, f, " Ada@Example.com")
		msgs := sentMessages(t, sent, auth.TemplateResetPassword, 1)
		if m := msgs[0]; m.To != "ada@example.com" || m.Channel != auth.ChannelEmail || m.IdempotencyKey == "" {
			t.Errorf("reset message %+v", m)
		}
		tok := resetToken(t, msgs[0])

		// The policy applies, and a refused password spends nothing.
		for _, pw := range []string{"short", "ada@example.com is me"} {
			m := wantProblem(t, f.post(t, "/v1/password/reset", resetBody(tok, pw)), 400, "validation_failed")
			if errs, _ := m["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["field"] != "password" {
				t.Errorf("reset with %q: %v, want an error on password", pw, m)
			}
		}
		if r := f.post(t, "/v1/password/reset", resetBody(tok, newPassword)); r.status != http.StatusNoContent {
			t.Fatalf("reset: %d %s", r.status, r.body)
		}
		// Spent.
		m := wantProblem(t, f.post(t, "/v1/password/reset", resetBody(tok, "yet another passphrase")), 400, "validation_failed")
		if errs, _ := m["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["field"] != "token" {
			t.Errorf("second reset: %v, want an error on token", m)
		}

		for _, p := range []string{a.AccessToken, b.AccessToken} {
			if r := f.do(t, http.MethodGet, "/v1/me", "", "", p); r.status != http.StatusUnauthorized {
				t.Errorf("/v1/me with a token from before the reset: %d", r.status)
			}
		}
		for _, p := range []string{a.RefreshToken, b.RefreshToken} {
			if r := f.post(t, "/v1/token/refresh", `{"refresh_token":"`+p+`"}`); r.status != http.StatusUnauthorized {
				t.Errorf("refresh from before the reset: %d %s", r.status, r.body)
			}
		}
		wantProblem(t, loginWith(f, t, "ada@example.com", goodPassword), 401, "invalid_credentials")
		if r := loginWith(f, t, "ada@example.com", newPassword); r.status != http.StatusOK {
			t.Errorf("login with the new password: %d %s", r.status, r.body)
		}

		logs := f.logs.String()
		if !strings.Contains(logs, `"route":"/v1/password/reset"`) {
			t.Fatalf("no request log lines: %s", logs)
		}
		for _, secret := range []string{tok, msgs[0].Data["link"], newPassword, goodPassword} {
			if strings.Contains(logs, secret) {
				t.Errorf("a secret reached the log: %.12s…", secret)
			}
		}
	})
}

// TestForgotSameAnswer: a known and an unknown address get the same status,
// headers and body, and the answer does not wait for the account lookup.
func TestForgotSameAnswer(t *testing.T) {
	t.Parallel()
	db := &slowLookup{stores: memDB(t), block: make(chan struct{})}
	known, unknown := newFixture(t, db, options{}), newFixture(t, db, options{})
	if err := db.stores.CreateUser(t.Context(), &auth.User{ID: "u1", Email: "ada@example.com", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	// Every account lookup now hangs: the answers must not wait for it.
	db.hang.Store(true)
	ra := known.post(t, "/v1/password/forgot", `{"email":"ada@example.com"}`)
	rb := unknown.post(t, "/v1/password/forgot", `{"email":"nobody@example.com"}`)
	if ra.status != http.StatusAccepted || rb.status != http.StatusAccepted {
		t.Fatalf("status %d and %d, want 202", ra.status, rb.status)
	}
	if n := db.returned.Load(); n != 0 {
		t.Errorf("%d hanging lookups returned before the answers: the answers waited for them", n)
	}
	if !bytes.Equal(ra.body, rb.body) {
		t.Errorf("bodies differ:\n%s\n%s", ra.body, rb.body)
	}
	for _, h := range []http.Header{ra.header, rb.header} {
		h.Del("Date")
		h.Del("X-Request-Id")
	}
	if a, b := headerText(ra.header), headerText(rb.header); a != b {
		t.Errorf("headers differ:\n%s\n%s", a, b)
	}
	close(db.block)
}

func headerText(h http.Header) string {
	var b strings.Builder
	h.Write(&b)
	return b.String()
}

// slowLookup is a store whose UserByEmail hangs, once hang is set, until
// block is closed (or the caller gives up).
type slowLookup struct {
	stores
	hang     atomic.Bool
	returned atomic.Int64 // hanging lookups that have returned
	block    chan struct{}
}

func (s *slowLookup) UserByEmail(ctx context.Context, email string) (*auth.User, error) {
	if s.hang.Load() {
		defer s.returned.Add(1)
		select {
		case <-s.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.stores.UserByEmail(ctx, email)
}

// TestForgotSendLimit: past 5 an hour per address nothing is sent, and the
// answer is still 202; an unknown address sends nothing.
func TestForgotSendLimit(t *testing.T) {
	t.Parallel()
	f, sent := newPasswordFixture(t, memDB(t), 0)
	register(t, f, "ada@example.com")
	first := forgot(t, f, "ada@example.com")
	for range 6 {
		if r := forgot(t, f, "ADA@example.com"); !bytes.Equal(r.body, first.body) {
			t.Errorf("body %s, want %s", r.body, first.body)
		}
	}
	forgot(t, f, "nobody@example.com")
	c := waitForgot(t, f, 8)
	if c["queued"] != 5 || c["limited"] != 2 || c["unknown"] != 1 {
		t.Errorf("forgot outcomes %v, want 5 queued, 2 limited, 1 unknown", c)
	}
	if msgs := sentMessages(t, sent, auth.TemplateResetPassword, 5); len(msgs) != 5 {
		t.Errorf("%d reset emails, want 5", len(msgs))
	}
}

// TestConcurrentResets: of 8 simultaneous resets with one token exactly one
// wins; its password is the one that works.
func TestConcurrentResets(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open func(t *testing.T) stores) {
		f, sent := newPasswordFixture(t, open(t), 0)
		register(t, f, "ada@example.com")
		forgot(t, f, "ada@example.com")
		tok := resetToken(t, sentMessages(t, sent, auth.TemplateResetPassword, 1)[0])
		const n = 8
		status := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				status[i] = f.post(t, "/v1/password/reset", resetBody(tok, newPassword+" "+string(rune('a'+i)))).status
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, s := range status {
			switch s {
			case http.StatusNoContent:
				if winner >= 0 {
					t.Fatalf("resets %d and %d both succeeded", winner, i)
				}
				winner = i
			case http.StatusBadRequest:
			default:
				t.Errorf("reset %d: status %d", i, s)
			}
		}
		if winner < 0 {
			t.Fatalf("no reset succeeded: %v", status)
		}
		if r := loginWith(f, t, "ada@example.com", newPassword+" "+string(rune('a'+winner))); r.status != http.StatusOK {
			t.Errorf("login with the winner's password: %d %s", r.status, r.body)
		}
	})
}

// TestPasswordChange: the current password is checked, the caller's
// session lives on and every other dies, and a password_changed email is
// queued.
func TestPasswordChange(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, open func(t *testing.T) stores) {
		f, sent := newPasswordFixture(t, open(t), 0)
		register(t, f, "ada@example.com")
		mine, other := login(t, f, "ada@example.com"), login(t, f, "ada@example.com")
		change := func(current, next string) response {
			return f.do(t, http.MethodPost, "/v1/password/change", "application/json",
				`{"current_password":"`+current+`","new_password":"`+next+`"}`, mine.AccessToken)
		}
		for _, tc := range []struct{ current, next, field string }{
			{"not the password", newPassword, "current_password"},
			{goodPassword, "short", "new_password"},
		} {
			m := wantProblem(t, change(tc.current, tc.next), 400, "validation_failed")
			if errs, _ := m["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["field"] != tc.field {
				t.Errorf("change(%q, %q): %v, want an error on %s", tc.current, tc.next, m, tc.field)
			}
		}
		wantProblem(t, f.do(t, http.MethodPost, "/v1/password/change", "application/json",
			`{"current_password":"`+goodPassword+`","new_password":"`+newPassword+`"}`, ""), 401, "unauthorized")
		if r := loginWith(f, t, "ada@example.com", goodPassword); r.status != http.StatusOK {
			t.Fatalf("refused changes changed the password: %d", r.status)
		}

		if r := change(goodPassword, newPassword); r.status != http.StatusNoContent {
			t.Fatalf("change: %d %s", r.status, r.body)
		}
		if r := f.do(t, http.MethodGet, "/v1/me", "", "", mine.AccessToken); r.status != http.StatusOK {
			t.Errorf("the caller's session after the change: %d", r.status)
		}
		if r := f.post(t, "/v1/token/refresh", `{"refresh_token":"`+mine.RefreshToken+`"}`); r.status != http.StatusOK {
			t.Errorf("the caller's refresh after the change: %d %s", r.status, r.body)
		}
		if r := f.do(t, http.MethodGet, "/v1/me", "", "", other.AccessToken); r.status != http.StatusUnauthorized {
			t.Errorf("another session's access token after the change: %d", r.status)
		}
		if r := f.post(t, "/v1/token/refresh", `{"refresh_token":"`+other.RefreshToken+`"}`); r.status != http.StatusUnauthorized {
			t.Errorf("another session's refresh after the change: %d", r.status)
		}
		wantProblem(t, loginWith(f, t, "ada@example.com", goodPassword), 401, "invalid_credentials")
		if r := loginWith(f, t, "ada@example.com", newPassword); r.status != http.StatusOK {
			t.Errorf("login with the new password: %d", r.status)
		}
		if m := sentMessages(t, sent, auth.TemplatePasswordChanged, 1)[0]; m.To != "ada@example.com" {
			t.Errorf("password_changed message %+v", m)
		}
		for _, secret := range []string{goodPassword, newPassword} {
			if strings.Contains(f.logs.String(), secret) {
				t.Errorf("a password reached the log")
			}
		}
	})
}

// TestPasswordBadInput: malformed requests are problems and change nothing.
func TestPasswordBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memDB(t), options{})
	register(t, f, "ada@example.com")
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"forgot bad email", "/v1/password/forgot", `{"email":"ada@"}`, 400, "validation_failed"},
		{"forgot no email", "/v1/password/forgot", `{}`, 400, "validation_failed"},
		{"forgot unknown field", "/v1/password/forgot", `{"email":"ada@example.com","x":1}`, 400, "malformed_request"},
		{"reset no token", "/v1/password/reset", `{"password":"` + newPassword + `"}`, 400, "validation_failed"},
		{"reset made-up token", "/v1/password/reset", resetBody("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", newPassword), 400, "validation_failed"},
		{"reset not a token", "/v1/password/reset", resetBody("../../etc", newPassword), 400, "validation_failed"},
		{"reset malformed", "/v1/password/reset", `{"token":`, 400, "malformed_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, f.post(t, tc.path, tc.body), tc.status, tc.code)
		})
	}
	if r := loginWith(f, t, "ada@example.com", goodPassword); r.status != http.StatusOK {
		t.Errorf("login after bad requests: %d", r.status)
	}
	if c := forgotCount(t, f); c["queued"]+c["unknown"]+c["limited"] != 0 {
		t.Errorf("bad forgot requests were handled: %v", c)
	}
}

// TestResetClearsThrottle: after a reset the owner logs in at once, though
// guessing had put the account in a window of an hour.
func TestResetClearsThrottle(t *testing.T) {
	t.Parallel()
	f, sent := newPasswordFixture(t, memDB(t), time.Hour)
	register(t, f, "ada@example.com")
	for range 6 {
		wantProblem(t, loginWith(f, t, "ada@example.com", "a wrong guess here"), 401, "invalid_credentials")
	}
	wantProblem(t, loginWith(f, t, "ada@example.com", goodPassword), 429, "rate_limited")
	forgot(t, f, "ada@example.com")
	tok := resetToken(t, sentMessages(t, sent, auth.TemplateResetPassword, 1)[0])
	if r := f.post(t, "/v1/password/reset", resetBody(tok, newPassword)); r.status != http.StatusNoContent {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	if r := loginWith(f, t, "ada@example.com", newPassword); r.status != http.StatusOK {
		t.Errorf("login after the reset: %d %s", r.status, r.body)
	}
}
