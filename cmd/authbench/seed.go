package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// api calls authd's public endpoints for set-up work (seeding users, getting
// a token), retrying refusals the way a well-behaved client does: a 503 or 429
// is retried after its Retry-After (bounded by maxWait), a connection error
// after a second, at most attempts times in all. It is safe for concurrent
// use. Bodies are never logged: they carry passwords and tokens.
type api struct {
	client   *http.Client
	base     *url.URL
	attempts int
	maxWait  time.Duration
	// wait pauses for d or until ctx is done; tests replace it.
	wait func(ctx context.Context, d time.Duration) error
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// credentials is the body of register and login.
type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func credentialsJSON(email, password string) []byte {
	b, _ := json.Marshal(credentials{Email: email, Password: password}) // cannot fail: two strings
	return b
}

// problem is the part of an RFC 9457 body worth printing.
type problem struct {
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

// statusError is a response the caller did not expect.
type statusError struct {
	op     string
	status int
	prob   problem
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s: status %d", e.op, e.status)
	if e.prob.Code != "" {
		msg += " " + e.prob.Code
	}
	if d := e.prob.Detail; d != "" {
		msg += ": " + d
	} else if e.prob.Title != "" {
		msg += ": " + e.prob.Title
	}
	return msg
}

// attemptStats counts what retries a call needed.
type attemptStats struct {
	retries    int
	retryAfter map[string]int64
}

func (s *attemptStats) sawRetryAfter(v string) {
	if s.retryAfter == nil {
		s.retryAfter = map[string]int64{}
	}
	s.retryAfter[v]++
}

// post sends body to path and returns the status and up to 1 MiB of the
// answer, retrying 503, 429 and connection errors as described on api.
func (a *api) post(ctx context.Context, path string, body []byte, st *attemptStats) (int, []byte, error) {
	u := a.base.JoinPath(path).String()
	var lastErr error
	for attempt := 1; ; attempt++ {
		status, hdr, resp, err := a.postOnce(ctx, u, body)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return 0, nil, err
			}
			lastErr, wait = err, time.Second
		case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
			ra := hdr.Get("Retry-After")
			if ra != "" {
				st.sawRetryAfter(ra)
			}
			lastErr = &statusError{op: "POST " + path, status: status, prob: parseProblem(resp)}
			wait = retryAfterDelay(ra, time.Now())
		default:
			return status, resp, nil
		}
		if attempt >= a.attempts {
			return 0, nil, fmt.Errorf("after %d attempts: %w", attempt, lastErr)
		}
		st.retries++
		if err := a.wait(ctx, min(wait, a.maxWait)); err != nil {
			return 0, nil, fmt.Errorf("%w (last: %w)", err, lastErr)
		}
	}
}

func (a *api) postOnce(ctx context.Context, u string, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// retryAfterDelay turns a Retry-After value (seconds or an HTTP date) into a
// wait, 1s when it is missing or unreadable.
func retryAfterDelay(v string, now time.Time) time.Duration {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return max(time.Duration(n)*time.Second, 100*time.Millisecond)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 100*time.Millisecond)
	}
	return time.Second
}

func parseProblem(b []byte) problem {
	var p problem
	_ = json.Unmarshal(b, &p) // best effort: only used to explain a failure
	return p
}

// register creates a user; it reports whether the account already existed
// (409, which is fine: a run with the same -run-id reuses its users).
func (a *api) register(ctx context.Context, email, password string, st *attemptStats) (existed bool, err error) {
	status, body, err := a.post(ctx, "/v1/register", credentialsJSON(email, password), st)
	if err != nil {
		return false, fmt.Errorf("register %s: %w", email, err)
	}
	switch status {
	case http.StatusCreated, http.StatusOK:
		return false, nil
	case http.StatusConflict:
		return true, nil
	}
	return false, &statusError{op: "register " + email, status: status, prob: parseProblem(body)}
}

// login returns an access token for the user.
func (a *api) login(ctx context.Context, email, password string, st *attemptStats) (string, error) {
	status, body, err := a.post(ctx, "/v1/login", credentialsJSON(email, password), st)
	if err != nil {
		return "", fmt.Errorf("login %s: %w", email, err)
	}
	if status != http.StatusOK {
		return "", &statusError{op: "login " + email, status: status, prob: parseProblem(body)}
	}
	var pair struct {
		AccessToken string `json:"access_token"`
		MFARequired bool   `json:"mfa_required"`
	}
	if err := json.Unmarshal(body, &pair); err != nil {
		return "", fmt.Errorf("login %s: decode answer: %w", email, err)
	}
	if pair.MFARequired {
		return "", fmt.Errorf("login %s: the account asks for MFA; use a fresh -run-id", email)
	}
	if pair.AccessToken == "" {
		return "", fmt.Errorf("login %s: no access_token in the answer", email)
	}
	return pair.AccessToken, nil
}

// seedReport says how seeding went.
type seedReport struct {
	Users      int               `json:"users"`
	Created    int64             `json:"created"`
	Existed    int64             `json:"existed"`
	Retries    int64             `json:"retries"`
	RetryAfter []retryAfterCount `json:"retry_after,omitempty"`
	Elapsed    float64           `json:"elapsed_seconds"`
	TimedOut   bool              `json:"timed_out,omitempty"`
}

// seedUsers registers every email with password using conc workers, within
// timeout. It returns the emails that exist afterwards (created or already
// there) and a report. Any answer but 201/409 (after retries) stops seeding
// with an error: it is systemic (a password policy, a broken server). Running
// out of time is not an error as long as some users exist; the report says so.
func seedUsers(ctx context.Context, a *api, emails []string, password string, conc int, timeout time.Duration) ([]string, seedReport, error) {
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)

	ok := make([]bool, len(emails))
	var created, existed, retries atomic.Int64
	var next atomic.Int64
	stats := make([]attemptStats, max(conc, 1))
	var wg sync.WaitGroup
	for w := range max(conc, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(emails) {
					return
				}
				ex, err := a.register(ctx, emails[i], password, &stats[w])
				if err != nil {
					if ctx.Err() == nil {
						stop(err)
					}
					return
				}
				ok[i] = true
				if ex {
					existed.Add(1)
				} else {
					created.Add(1)
				}
			}
		})
	}
	wg.Wait()

	ra := map[string]int64{}
	for _, s := range stats {
		retries.Add(int64(s.retries))
		for v, n := range s.retryAfter {
			ra[v] += n
		}
	}
	rep := seedReport{
		Users: len(emails), Created: created.Load(), Existed: existed.Load(), Retries: retries.Load(),
		RetryAfter: retryAfterCounts(ra), Elapsed: time.Since(start).Seconds(),
	}
	var done []string
	for i, e := range emails {
		if ok[i] {
			done = append(done, e)
		}
	}
	if err := parent.Err(); err != nil {
		return done, rep, fmt.Errorf("seed: %w", err)
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return done, rep, fmt.Errorf("seed: %w", err)
	}
	if len(done) < len(emails) {
		rep.TimedOut = true
		if len(done) == 0 {
			return nil, rep, fmt.Errorf("seed: no user could be registered within %s", timeout)
		}
	}
	return done, rep, nil
}
