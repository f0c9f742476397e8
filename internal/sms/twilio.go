package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/authd/authd/internal/auth"
)

// DefaultTwilioBaseURL is Twilio's API.
const DefaultTwilioBaseURL = "https://api.twilio.com"

// TwilioParams configures a Twilio sender.
type TwilioParams struct {
	AccountSID string // AUTHD_SMS_TWILIO_ACCOUNT_SID, "AC…"
	AuthToken  string // AUTHD_SMS_TWILIO_AUTH_TOKEN
	From       string // AUTHD_SMS_TWILIO_FROM: an E.164 number or a Messaging Service SID "MG…"
	// BaseURL replaces DefaultTwilioBaseURL (AUTHD_SMS_TWILIO_BASE_URL):
	// https, or http to a loopback host (tests).
	BaseURL string
}

// Twilio delivers SMS through Twilio's Messages API: a form POST to
// {base}/2010-04-01/Accounts/{sid}/Messages.json with HTTP basic auth. It
// is safe for concurrent use; Close releases its idle connections.
type Twilio struct {
	*base
	endpoint string
	sid      string
	token    string
	from     string
	service  bool // From is a Messaging Service SID
}

var _ auth.Sender = (*Twilio)(nil)

// NewTwilio returns a Twilio sender for p. It returns an error when a
// field is missing or malformed or the logger is nil; the error never
// contains the auth token.
func NewTwilio(p TwilioParams, logger *slog.Logger) (*Twilio, error) {
	if p.AccountSID == "" || p.AuthToken == "" || p.From == "" {
		return nil, errors.New("sms: twilio: AUTHD_SMS_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM are all required")
	}
	if !strings.HasPrefix(p.AccountSID, "AC") || strings.ContainsAny(p.AccountSID, "/?#% ") {
		return nil, fmt.Errorf("sms: twilio: AUTHD_SMS_TWILIO_ACCOUNT_SID %q is not an account SID (AC…)", p.AccountSID)
	}
	service := strings.HasPrefix(p.From, "MG")
	if !service && !e164.MatchString(p.From) {
		return nil, fmt.Errorf("sms: twilio: AUTHD_SMS_TWILIO_FROM %q is neither an E.164 number nor a Messaging Service SID (MG…)", p.From)
	}
	baseURL := p.BaseURL
	if baseURL == "" {
		baseURL = DefaultTwilioBaseURL
	}
	u, err := checkURL("AUTHD_SMS_TWILIO_BASE_URL", baseURL)
	if err != nil {
		return nil, err
	}
	b, err := newBase("twilio", logger)
	if err != nil {
		return nil, err
	}
	return &Twilio{
		base:     b,
		endpoint: strings.TrimRight(u.String(), "/") + "/2010-04-01/Accounts/" + p.AccountSID + "/Messages.json",
		sid:      p.AccountSID,
		token:    p.AuthToken,
		from:     p.From,
		service:  service,
	}, nil
}

// twilioError is the body of a Twilio error answer.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// twilioRetryable are Twilio error codes sent with a 4xx that are
// nevertheless worth retrying: 20429 too many requests, 20003 and 20005
// authentication and a suspended account (the operator's to fix).
var twilioRetryable = map[int]bool{20429: true, 20003: true, 20005: true}

// Deliver creates the message at Twilio and returns when Twilio answered
// or ctx ended. 201 means queued (accepted). An error wrapping
// auth.ErrUndeliverable (a message that cannot be rendered, or a 4xx such
// as 21211 invalid number or 21610 unsubscribed) is not worth retrying;
// any other error (5xx, 429, 401/403, network) is. The error names
// Twilio's code, not its message (which may quote the number).
func (t *Twilio) Deliver(ctx context.Context, m auth.Message) error {
	return t.deliver(ctx, m, func() error {
		text, err := t.render(m)
		if err != nil {
			return err
		}
		form := url.Values{"To": {m.To}, "Body": {text}}
		if t.service {
			form.Set("MessagingServiceSid", t.from)
		} else {
			form.Set("From", t.from)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return fmt.Errorf("sms: twilio: %w", err)
		}
		req.SetBasicAuth(t.sid, t.token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "authd")
		status, body, err := t.do(req)
		if err != nil {
			return err
		}
		if status/100 == 2 {
			return nil
		}
		var te twilioError
		if json.Unmarshal(body, &te) != nil || te.Code == 0 {
			return statusError("twilio", status, "")
		}
		detail := fmt.Sprintf(" error %d", te.Code)
		if te.MoreInfo != "" {
			detail += " (" + te.MoreInfo + ")"
		}
		if twilioRetryable[te.Code] {
			return fmt.Errorf("sms: twilio answered %d%s", status, detail)
		}
		return statusError("twilio", status, detail)
	})
}
