// Package sms delivers authd's text messages: the auth.Senders of the SMS
// channel. Webhook posts each message as JSON to a gateway the operator
// runs; Twilio calls Twilio's Messages API. Bodies are rendered from text
// templates embedded in the binary.
//
// Both senders use their own http.Client (no shared transport, no client
// timeout: the caller's ctx bounds every attempt) and never follow a
// redirect, so credentials go only to the configured host. The URL must be
// https, except to a loopback host (a local gateway, tests), since the
// body carries codes and links.
package sms

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"text/template"

	"github.com/authd/authd/internal/auth"
)

//go:embed templates/*.txt
var templateFS embed.FS

// templateNames are the messages authd may send by SMS. A welcome by SMS
// is not one of them.
var templateNames = []string{
	auth.TemplateMFACode,
	auth.TemplateVerifyEmail,
	auth.TemplateResetPassword,
	auth.TemplatePasswordChanged,
}

// maxResponse caps how much of a provider's answer is read.
const maxResponse = 64 << 10

// e164 is an international phone number: + and 7 to 15 digits.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// base is what both senders share: templates, an HTTP client, a logger.
// It is safe for concurrent use.
type base struct {
	provider string
	client   *http.Client
	tpl      map[string]*template.Template
	logger   *slog.Logger
}

func newBase(provider string, logger *slog.Logger) (*base, error) {
	if logger == nil {
		return nil, fmt.Errorf("sms: %s: a logger is required", provider)
	}
	tpl := make(map[string]*template.Template, len(templateNames))
	for _, name := range templateNames {
		t, err := template.New(name+".txt").Option("missingkey=error").ParseFS(templateFS, "templates/"+name+".txt")
		if err != nil {
			return nil, fmt.Errorf("sms: template %s: %w", name, err)
		}
		tpl[name] = t
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &base{
		provider: provider,
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		tpl:    tpl,
		logger: logger.With("component", "sms", "provider", provider),
	}, nil
}

// checkURL parses a provider URL: https, or http to a loopback host. Its
// errors never quote the URL's userinfo.
func checkURL(setting, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("sms: %s is not a URL", setting)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("sms: %s %s: a host is required", setting, u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("sms: %s %s: no credentials in the URL", setting, u.Redacted())
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("sms: %s %s: must be https (http only to a loopback host)", setting, u.Redacted())
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// render checks m and returns its body. Its errors wrap
// auth.ErrUndeliverable and name the template, never the data.
func (b *base) render(m auth.Message) (string, error) {
	if m.Channel != auth.ChannelSMS {
		return "", fmt.Errorf("sms: channel %q: %w", m.Channel, auth.ErrUndeliverable)
	}
	if !e164.MatchString(m.To) {
		return "", fmt.Errorf("sms: recipient is not an E.164 number: %w", auth.ErrUndeliverable)
	}
	t, ok := b.tpl[m.Template]
	if !ok {
		return "", fmt.Errorf("sms: no SMS template %q: %w", m.Template, auth.ErrUndeliverable)
	}
	data := m.Data
	if data == nil {
		data = map[string]string{}
	}
	var body bytes.Buffer
	if err := t.Execute(&body, data); err != nil {
		return "", fmt.Errorf("sms: template %s: %w: %w", m.Template, auth.ErrUndeliverable, err)
	}
	return body.String(), nil
}

// do sends req and returns the status and (capped) body of the answer, or
// a retryable error.
func (b *base) do(req *http.Request) (int, []byte, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL, whose query may hold a key: keep
		// only what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, nil, fmt.Errorf("sms: %s: %s: %w", b.provider, ue.Op, ue.Err)
		}
		return 0, nil, fmt.Errorf("sms: %s: %w", b.provider, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil && resp.StatusCode/100 != 2 {
		return 0, nil, fmt.Errorf("sms: %s: read answer: %w", b.provider, err)
	}
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	return resp.StatusCode, body, nil
}

// statusError classifies a non-2xx status: a 4xx other than 401, 403, 408
// and 429 refuses the message for good (auth.ErrUndeliverable); 401 and
// 403 are the operator's credentials, fixable while the Courier retries;
// 408, 429, 5xx and anything else are retryable.
func statusError(provider string, status int, detail string) error {
	msg := fmt.Sprintf("sms: %s answered %d%s", provider, status, detail)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden,
		status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		return errors.New(msg)
	case status >= 400 && status < 500:
		return fmt.Errorf("%s: %w", msg, auth.ErrUndeliverable)
	default:
		return errors.New(msg)
	}
}

// deliver runs send and logs its outcome: channel, template, provider and
// outcome only, never the number, the body or the error text.
func (b *base) deliver(ctx context.Context, m auth.Message, send func() error) error {
	err := send()
	outcome := "accepted"
	switch {
	case errors.Is(err, auth.ErrUndeliverable):
		outcome = "undeliverable"
	case err != nil:
		outcome = "retryable"
	}
	b.logger.LogAttrs(ctx, slog.LevelDebug, "sms delivery",
		slog.String("channel", string(auth.ChannelSMS)),
		slog.String("template", m.Template),
		slog.String("outcome", outcome))
	return err
}

// Close closes the idle connections of the sender's client. Deliver may
// still be called after it (a new connection is made).
func (b *base) Close() error {
	b.client.CloseIdleConnections()
	return nil
}
