package clientip_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/authd/authd/internal/clientip"
)

func mustPrefixes(t testing.TB, s string) []netip.Prefix {
	t.Helper()
	ps, err := clientip.ParsePrefixes(s)
	if err != nil {
		t.Fatalf("ParsePrefixes(%q): %v", s, err)
	}
	return ps
}

func request(remote string, headers map[string][]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/login", nil)
	r.RemoteAddr = remote
	for k, vs := range headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return r
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	const trusted = "10.0.0.0/8, 2001:db8:ffff::/48, 192.0.2.1"
	tests := []struct {
		name    string
		trusted string
		remote  string
		headers map[string][]string
		want    string
	}{
		{"no proxies, plain peer", "", "203.0.113.7:5555", nil, "203.0.113.7"},
		{"no proxies ignore xff", "", "203.0.113.7:5555", map[string][]string{"X-Forwarded-For": {"1.1.1.1"}}, "203.0.113.7"},
		{"untrusted peer ignores xff", trusted, "203.0.113.7:5555", map[string][]string{"X-Forwarded-For": {"1.1.1.1"}}, "203.0.113.7"},
		{"untrusted peer ignores x-real-ip", trusted, "203.0.113.7:5555", map[string][]string{"X-Real-IP": {"1.1.1.1"}}, "203.0.113.7"},
		{"trusted peer no headers", trusted, "10.1.2.3:80", nil, "10.1.2.3"},
		{"trusted peer xff single", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"198.51.100.4"}}, "198.51.100.4"},
		{"rightmost untrusted wins over spoofed left", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.4"}}, "198.51.100.4"},
		{"skips trusted hops", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.4, 10.9.9.9, 192.0.2.1"}}, "198.51.100.4"},
		{"multiple header lines", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.4", "10.9.9.9"}}, "198.51.100.4"},
		{"all trusted takes leftmost", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"10.0.0.5, 10.0.0.6"}}, "10.0.0.5"},
		{"malformed hop falls back to peer", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"198.51.100.4, garbage"}}, "10.1.2.3"},
		{"empty entry falls back to peer", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"198.51.100.4, "}}, "10.1.2.3"},
		{"garbage left of client is never read", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"garbage,, 198.51.100.4"}}, "198.51.100.4"},
		{"xff with port", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"198.51.100.4:1234"}}, "198.51.100.4"},
		{"xff bracketed v6 with port", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"[2001:db8:1::9]:443"}}, "2001:db8:1::9"},
		{"xff mapped v4 unmapped", trusted, "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"::ffff:198.51.100.4"}}, "198.51.100.4"},
		{"x-real-ip when no xff", trusted, "10.1.2.3:80", map[string][]string{"X-Real-IP": {"198.51.100.4"}}, "198.51.100.4"},
		{"xff wins over x-real-ip", trusted, "10.1.2.3:80", map[string][]string{"X-Real-IP": {"1.1.1.1"}, "X-Forwarded-For": {"198.51.100.4"}}, "198.51.100.4"},
		{"malformed x-real-ip", trusted, "10.1.2.3:80", map[string][]string{"X-Real-IP": {"nope"}}, "10.1.2.3"},
		{"v6 trusted peer", trusted, "[2001:db8:ffff::1]:443", map[string][]string{"X-Forwarded-For": {"2001:db8:1::9"}}, "2001:db8:1::9"},
		{"mapped peer unmapped and trusted", trusted, "[::ffff:10.1.2.3]:80", map[string][]string{"X-Forwarded-For": {"198.51.100.4"}}, "198.51.100.4"},
		{"peer zone stripped", "", "[fe80::1%eth0]:80", nil, "fe80::1"},
		{"peer without port", "", "203.0.113.7", nil, "203.0.113.7"},
		{"unparsable peer", trusted, "@", map[string][]string{"X-Forwarded-For": {"198.51.100.4"}}, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := clientip.NewResolver(mustPrefixes(t, tt.trusted))
			got := res.ClientIP(request(tt.remote, tt.headers))
			if got.String() != tt.want {
				t.Errorf("ClientIP = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::ffff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := clientip.Key(netip.MustParseAddr(tt.in)); got.String() != tt.want {
				t.Errorf("Key(%s) = %v, want %s", tt.in, got, tt.want)
			}
		})
	}
	if got := clientip.Key(netip.Addr{}); got.IsValid() {
		t.Errorf("Key(zero) = %v, want zero Prefix", got)
	}
}

// TestSpoofing covers the ways a client might try to be counted as someone
// else, or as many people.
func TestSpoofing(t *testing.T) {
	t.Parallel()
	res := clientip.NewResolver(mustPrefixes(t, "10.0.0.0/8"))

	t.Run("untrusted client rotating XFF is one key", func(t *testing.T) {
		t.Parallel()
		want := clientip.Key(netip.MustParseAddr("203.0.113.7"))
		for i := range 50 {
			r := request("203.0.113.7:4000", map[string][]string{
				"X-Forwarded-For": {netip.AddrFrom4([4]byte{1, 2, 3, byte(i)}).String()},
				"X-Real-IP":       {netip.AddrFrom4([4]byte{5, 6, 7, byte(i)}).String()},
			})
			if got := res.Key(r); got != want {
				t.Fatalf("request %d keyed %v, want %v", i, got, want)
			}
		}
	})
	t.Run("two clients behind a trusted proxy get two keys", func(t *testing.T) {
		t.Parallel()
		a := res.Key(request("10.0.0.2:80", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}))
		b := res.Key(request("10.0.0.2:80", map[string][]string{"X-Forwarded-For": {"198.51.100.2"}}))
		if a == b {
			t.Fatalf("both clients keyed %v", a)
		}
		if a.String() != "198.51.100.1/32" || b.String() != "198.51.100.2/32" {
			t.Fatalf("keys %v, %v", a, b)
		}
	})
	t.Run("client prepending fake hops behind trusted proxy", func(t *testing.T) {
		t.Parallel()
		want := clientip.Key(netip.MustParseAddr("198.51.100.1"))
		for i := range 20 {
			fake := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}).String() // even trusted-looking fakes
			r := request("10.0.0.2:80", map[string][]string{"X-Forwarded-For": {fake + ", 198.51.100.1"}})
			if got := res.Key(r); got != want {
				t.Fatalf("keyed %v, want %v", got, want)
			}
		}
	})
	t.Run("IPv6 addresses in one /64 share a key", func(t *testing.T) {
		t.Parallel()
		a := res.Key(request("[2001:db8:aa:bb::1]:443", nil))
		b := res.Key(request("[2001:db8:aa:bb:ffff:ffff:ffff:fffe]:443", nil))
		c := res.Key(request("[2001:db8:aa:bc::1]:443", nil))
		if a != b {
			t.Errorf("same /64 keyed %v and %v", a, b)
		}
		if a == c {
			t.Errorf("different /64s share key %v", a)
		}
	})
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string // space-joined
		wantErr bool
	}{
		{"", "", false},
		{"  ", "", false},
		{"10.0.0.0/8", "10.0.0.0/8", false},
		{" 10.1.2.3/8 , 192.0.2.1,2001:db8::1 ", "10.0.0.0/8 192.0.2.1/32 2001:db8::1/128", false},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", false},
		{"::ffff:192.0.2.1", "192.0.2.1/32", false},
		{"10.0.0.0/8,", "", true},
		{"10.0.0.0/33", "", true},
		{"nope", "", true},
		{"fe80::1%eth0", "", true},
		{"::ffff:0:0/80", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			ps, err := clientip.ParsePrefixes(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if s := strings.Join(got, " "); s != tt.want {
				t.Errorf("got %q, want %q", s, tt.want)
			}
		})
	}
}

func TestClientIPAllocs(t *testing.T) {
	res := clientip.NewResolver(mustPrefixes(t, "10.0.0.0/8"))
	r := request("10.0.0.2:80", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1, 10.0.0.9"}})
	if n := testing.AllocsPerRun(100, func() { _ = res.Key(r) }); n != 0 {
		t.Errorf("Key allocates %v times per call, want 0", n)
	}
}

// FuzzClientIP checks that arbitrary headers never panic and that the answer
// is always either the peer or, when the peer is trusted, a valid address that
// appears in X-Forwarded-For or X-Real-IP.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.2:80", "198.51.100.1, 10.0.0.9", "", "1.2.3.4")
	f.Add("203.0.113.7:1", "1.1.1.1", "2.2.2.2", "")
	f.Add("[2001:db8::1]:443", "[::1]:80,,", "garbage", "::ffff:1.2.3.4")
	f.Add("10.0.0.2:80", ",,,", "", "")
	f.Add("10.0.0.2", "fe80::1%zone, 10.1.1.1", "", "")
	res := clientip.NewResolver([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"),
	})
	f.Fuzz(func(t *testing.T, remote, xff1, xff2, realIP string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				r.Header.Add("X-Forwarded-For", v)
			}
		}
		if realIP != "" {
			r.Header.Set("X-Real-IP", realIP)
		}
		got := res.ClientIP(r)
		peer := clientip.NewResolver(nil).ClientIP(r)
		if got == peer {
			return
		}
		if !got.IsValid() {
			t.Fatalf("invalid result %v for peer %v", got, peer)
		}
		if got.Is4In6() || got.Zone() != "" {
			t.Fatalf("result %v not unmapped/zone-free", got)
		}
		if !peer.IsValid() || !res.ClientIP(&http.Request{RemoteAddr: remote}).IsValid() {
			t.Fatalf("result %v differs from invalid peer", got)
		}
		all := xff1 + "," + xff2 + "," + realIP
		found := false
		for _, part := range strings.Split(all, ",") {
			if a := clientip.NewResolver(nil).ClientIP(&http.Request{RemoteAddr: strings.TrimSpace(part)}); a == got {
				found = true
			}
		}
		if !found {
			t.Fatalf("result %v is neither the peer %v nor an entry of %q", got, peer, all)
		}
		_ = clientip.Key(got)
	})
}

func BenchmarkKey(b *testing.B) {
	res := clientip.NewResolver([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for _, bc := range []struct {
		name string
		r    *http.Request
	}{
		{"direct", request("198.51.100.7:40000", nil)},
		{"behind-proxy", request("10.0.0.2:80", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 2001:db8:aa:bb::1, 10.0.0.9"}})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = res.Key(bc.r)
			}
		})
	}
}
