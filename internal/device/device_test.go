package device_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/device"
)

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const userID = "0190a6b2-7c1e-7d3f-9a4b-123456789abc"

func newTokens(t testing.TB, key byte, clock *clocktest.Clock) *device.Tokens {
	t.Helper()
	d, err := device.New(bytes.Repeat([]byte{key}, 32), 0, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(epoch)
	d := newTokens(t, 1, clock)
	tok := d.Issue(userID, 7, "")
	c, err := d.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != userID || c.Generation != 7 || len(c.Device) != 32 || !c.ExpiresAt.Equal(epoch.Add(device.DefaultTTL)) {
		t.Fatalf("claims = %+v", c)
	}
	// Two new devices differ; a renewal keeps the device and moves the expiry.
	if other, _ := d.Parse(d.Issue(userID, 7, "")); other.Device == c.Device {
		t.Fatal("two new tokens share a device id")
	}
	clock.Advance(time.Hour)
	renewed, err := d.Parse(d.Issue(userID, 7, c.Device))
	if err != nil || renewed.Device != c.Device || !renewed.ExpiresAt.Equal(c.ExpiresAt.Add(time.Hour)) {
		t.Fatalf("renewed = %+v, %v", renewed, err)
	}
	if strings.Contains(tok, userID) || len(tok) > device.MaxLen {
		t.Errorf("token %q shows the account id or is too long", tok)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(epoch)
	d := newTokens(t, 1, clock)
	tok := d.Issue(userID, 0, "")
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	cases := map[string]string{
		"empty":       "",
		"not base64":  "!!!" + tok,
		"padded":      tok + "=",
		"truncated":   tok[:len(tok)-4],
		"too long":    strings.Repeat("A", device.MaxLen+1),
		"other key":   newTokens(t, 2, clock).Issue(userID, 0, ""),
		"short":       base64.RawURLEncoding.EncodeToString(raw[:40]),
		"bad version": flip(raw, 0, 0x02),
	}
	// Every flipped bit is a forgery.
	for i := range raw {
		cases["bit flip at "+string(rune('0'+i%10))+"/"+strings.Repeat("x", i/10)] = flip(raw, i, 0x01)
	}
	for name, s := range cases {
		if c, err := d.Parse(s); !errors.Is(err, device.ErrInvalid) {
			t.Errorf("%s: Parse = %+v, %v; want ErrInvalid", name, c, err)
		}
	}
	clock.Advance(device.DefaultTTL - time.Second)
	if _, err := d.Parse(tok); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := d.Parse(tok); !errors.Is(err, device.ErrInvalid) {
		t.Fatalf("at expiry: %v; want ErrInvalid", err)
	}
}

func flip(raw []byte, i int, bit byte) string {
	b := bytes.Clone(raw)
	b[i] ^= bit
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestShortKey(t *testing.T) {
	t.Parallel()
	if _, err := device.New(make([]byte, 31), 0, time.Now); err == nil {
		t.Fatal("a 31-byte key was accepted")
	}
}

// FuzzParse: no input panics, and what Parse accepts was made with the key.
func FuzzParse(f *testing.F) {
	clock := clocktest.New(epoch)
	d := newTokens(f, 1, clock)
	f.Add(d.Issue(userID, 3, ""))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := d.Parse(s)
		if err != nil {
			return
		}
		if again, err := d.Parse(d.Issue(c.UserID, c.Generation, c.Device)); err != nil || again.Device != c.Device || again.UserID != c.UserID {
			t.Fatalf("accepted %q (%+v) but cannot reissue it: %+v, %v", s, c, again, err)
		}
	})
}
