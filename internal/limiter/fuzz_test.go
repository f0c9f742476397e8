package limiter

import (
	"net/netip"
	"testing"
)

// FuzzKeyOf checks that two prefixes share an in-process bucket exactly when
// they share a Redis key (canonical), so both limiters group clients alike.
func FuzzKeyOf(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, uint8(32), []byte{192, 0, 2, 1}, uint8(24))
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(128), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}, uint8(64))
	f.Add([]byte{}, uint8(0), []byte{0, 0, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, a []byte, abits uint8, b []byte, bbits uint8) {
		pa, pb := prefixFrom(a, abits), prefixFrom(b, bbits)
		ka, kb := keyOf(pa), keyOf(pb)
		if ka.lo == 0 || kb.lo == 0 {
			t.Fatalf("key with lo == 0 (the empty-slot mark): %v %v", ka, kb)
		}
		if (ka == kb) != (canonical(pa) == canonical(pb)) {
			t.Fatalf("%v and %v: same key %v, same canonical %v (%v, %v)", pa, pb, ka == kb, canonical(pa) == canonical(pb), canonical(pa), canonical(pb))
		}
	})
}

func prefixFrom(b []byte, bits uint8) netip.Prefix {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, int(bits)) // invalid (zero) when bits is too long
}
