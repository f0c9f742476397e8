package throttle

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	defaults := Params{}.withDefaults()
	tests := []struct {
		name string
		p    Params
		n    int64
		want time.Duration
	}{
		{"no failures", defaults, 0, 0},
		{"last free failure", defaults, 5, 0},
		{"first delayed", defaults, 6, time.Second},
		{"second delayed", defaults, 7, 2 * time.Second},
		{"512s", defaults, 15, 512 * time.Second},
		{"capped", defaults, 16, 15 * time.Minute},
		{"far past the cap", defaults, 1_000, 15 * time.Minute},
		{"shift overflow", defaults, 1 << 62, 15 * time.Minute},
		{"negative count", defaults, -3, 0},
		{"custom", Params{FreeFailures: 2, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults(), 6, 800 * time.Millisecond},
		{"custom capped", Params{FreeFailures: 2, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults(), 7, time.Second},
		{"max below base", Params{BaseDelay: time.Minute, MaxDelay: time.Second}.withDefaults(), 9, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.delay(tt.n); got != tt.want {
				t.Errorf("delay(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

func TestParamsDefaults(t *testing.T) {
	t.Parallel()
	got := Params{FreeFailures: -1, BaseDelay: -time.Second}.withDefaults()
	want := Params{
		FreeFailures: DefaultFreeFailures, BaseDelay: DefaultBaseDelay, MaxDelay: DefaultMaxDelay,
		Window: DefaultWindow, FirstWindow: DefaultFirstWindow, AttemptTimeout: DefaultAttemptTimeout,
	}
	if got.FreeFailures != want.FreeFailures || got.BaseDelay != want.BaseDelay || got.MaxDelay != want.MaxDelay ||
		got.Window != want.Window || got.FirstWindow != want.FirstWindow || got.AttemptTimeout != want.AttemptTimeout {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}

var hexKey = regexp.MustCompile(`^throttle:\{[0-9a-f]{32}\}:(f|w|s|[cd]:[0-9a-f]{32}:[fws])$`)

// FuzzKeys: whatever a client sends as email (and whatever its IP string
// is), the store keys are fixed-size hex and never contain the input.
func FuzzKeys(f *testing.F) {
	for _, s := range []string{"alice@example.com", "", "{", "}:a", "\x00\xff", strings.Repeat("x", 300)} {
		f.Add(s, "203.0.113.7")
	}
	th := &Throttle{p: Params{}.withDefaults(), now: time.Now} // keys needs no store
	f.Fuzz(func(t *testing.T, email, client string) {
		for _, device := range []string{"", client} {
			sc := th.scope(email, client, device)
			keys := []string{sc.slots}
			for _, c := range sc.counters {
				keys = append(keys, c.fails, c.window)
			}
			for _, key := range keys {
				if !hexKey.MatchString(key) {
					t.Fatalf("scope(%q, %q, %q): %q is not a hashed key", email, client, device, key)
				}
			}
			if sc2 := th.scope(auth.NormalizeEmail(email), client, device); !slices.Equal(sc2.counters, sc.counters) || sc2.slots != sc.slots {
				t.Fatalf("scope(%q) differs from the scope of its normalised form", email)
			}
		}
	})
}
