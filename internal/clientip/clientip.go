// Package clientip decides who a request comes from, for rate limiting and
// audit: the connection's peer address, or, only when that peer is a trusted
// reverse proxy, the client address the proxies recorded in X-Forwarded-For
// (walked from the right) or X-Real-IP. It also turns an address into the key
// a client is limited by: an IPv4 address, or the /64 an IPv6 address lies in,
// since one subscriber is routinely handed a whole /64.
//
// Headers from an untrusted peer are ignored: anyone can write them, and
// believing them would let one attacker pose as any number of clients.
package clientip

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds the client address of a request given the prefixes of the
// reverse proxies whose forwarding headers are believed. It is immutable and
// safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix // unmapped, masked
}

// NewResolver returns a Resolver that believes X-Forwarded-For and X-Real-IP
// only from peers inside one of the trusted prefixes. An empty list trusts no
// one: the peer address is always the client. The slice is copied.
func NewResolver(trusted []netip.Prefix) *Resolver {
	r := &Resolver{trusted: make([]netip.Prefix, 0, len(trusted))}
	for _, p := range trusted {
		if !p.IsValid() {
			continue
		}
		r.trusted = append(r.trusted, canonicalPrefix(p))
	}
	return r
}

// canonicalPrefix unmaps an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104 →
// 10.0.0.0/8) and masks it, so that Contains matches the unmapped addresses
// ClientIP compares.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// ClientIP returns the address of the client that sent r. It is the peer
// address from r.RemoteAddr unless the peer is a trusted proxy; then the
// X-Forwarded-For header lines (and comma lists within them) are walked from
// the right, trusted proxies are skipped, and the first untrusted address is
// the client (if every entry is trusted, the leftmost one is). With no
// X-Forwarded-For, a trusted peer's X-Real-IP is used. A malformed entry met
// on the walk, or a malformed X-Real-IP, means the peer address is returned:
// a trusted proxy never writes garbage, so garbage came from elsewhere.
//
// The result is unmapped (::ffff:192.0.2.1 becomes 192.0.2.1) and carries no
// zone. It is the zero Addr only when r.RemoteAddr is not an IP address (a
// Unix socket, say); Key maps that to one shared key. ClientIP never panics
// and does not allocate for well-formed input.
func (res *Resolver) ClientIP(r *http.Request) netip.Addr {
	peer := parseHostPort(r.RemoteAddr)
	if !peer.IsValid() || !res.isTrusted(peer) {
		return peer
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		xr := r.Header.Values("X-Real-IP")
		if len(xr) == 0 {
			return peer
		}
		if a := parseHostPort(strings.TrimSpace(xr[len(xr)-1])); a.IsValid() {
			return a
		}
		return peer
	}
	var leftmost netip.Addr
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for {
			entry := line
			cut := strings.LastIndexByte(line, ',')
			if cut >= 0 {
				entry, line = line[cut+1:], line[:cut]
			}
			a := parseHostPort(strings.TrimSpace(entry))
			if !a.IsValid() {
				return peer
			}
			if !res.isTrusted(a) {
				return a
			}
			leftmost = a
			if cut < 0 {
				break
			}
		}
	}
	return leftmost
}

// Key returns the rate-limit key of the client that sent r: Key(res.ClientIP(r)).
// Its signature fits limiter.Middleware's keyOf.
func (res *Resolver) Key(r *http.Request) netip.Prefix {
	return Key(res.ClientIP(r))
}

func (res *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range res.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostPort parses "ip", "ipv4:port", "[ipv6]" or "[ipv6]:port" and
// returns the unmapped, zone-less address, or the zero Addr when s is none of
// those. It splits by syntax before parsing so that the common forms do not
// allocate an error on the way.
func parseHostPort(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	host := s
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		// Exactly one colon: IPv4 with a port (bare IPv6 has at least two).
		if !validPort(s[i+1:]) {
			return netip.Addr{}
		}
		host = s[:i]
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// validPort reports whether s is a decimal port number, 0 to 65535.
func validPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// Key returns the rate-limit key for a client address: the address itself as
// a /32 for IPv4 (IPv4-mapped IPv6 is unmapped first), and the enclosing /64
// for IPv6, because a single subscriber or attacker is routinely given a whole
// /64 and could otherwise rotate through 2^64 keys. The zero Addr maps to the
// zero Prefix, which callers treat as one shared key.
func Key(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64) // cannot fail: a is a valid IPv6 address without zone
	return p
}

// netipReason is the reason of a net/netip parse error without the input,
// which netip repeats (`netip.ParsePrefix("x/33"): prefix length out of
// range`) and the caller already shows: errors name an entry by position.
func netipReason(err error) string {
	msg := err.Error()
	if _, reason, ok := strings.Cut(msg, "): "); ok {
		return reason
	}
	return msg
}

// ParsePrefixes parses the comma-separated AUTHD_TRUSTED_PROXIES value: CIDR
// prefixes ("10.0.0.0/8", "2001:db8::/32") or bare addresses, which mean a
// single host (/32 or /128). Space around entries is ignored; an empty string
// yields no prefixes. Host bits are cleared (10.1.2.3/8 is 10.0.0.0/8) and
// IPv4-mapped IPv6 forms become IPv4. An empty entry, a zone, or anything
// unparsable is an error naming the entry by position (entry 2: …), not by
// its text, which the caller already shows.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]netip.Prefix, 0, len(parts))
	for i, part := range parts {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("clientip: entry %d is empty", i+1)
		}
		var p netip.Prefix
		if strings.Contains(part, "/") {
			var err error
			p, err = netip.ParsePrefix(part)
			if err != nil {
				return nil, fmt.Errorf("clientip: entry %d: %s", i+1, netipReason(err))
			}
			if p.Addr().Is4In6() && p.Bits() < 96 {
				return nil, fmt.Errorf("clientip: entry %d: IPv4-mapped prefix shorter than /96", i+1)
			}
		} else {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("clientip: entry %d: %s", i+1, netipReason(err))
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("clientip: entry %d: zones are not allowed", i+1)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, canonicalPrefix(p))
	}
	return out, nil
}
