package app

import (
	"encoding/hex"
	"testing"
)

// TestDerivedKeysAreStable pins the derivation: a changed info string or
// algorithm would make every signing key sealed so far unreadable. The
// sealing key was computed with the x/crypto/hkdf code of earlier releases.
func TestDerivedKeysAreStable(t *testing.T) {
	t.Parallel()
	k, err := deriveKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(k.seal), "fd86683c543b129522452b6f887ac18d31c7efd7dc99a82bd88090f0d9b8c52c"; got != want {
		t.Errorf("sealing key %s, want %s", got, want)
	}
	if len(k.throttle) != 32 || string(k.throttle) == string(k.seal) {
		t.Errorf("throttle key %x: want 32 bytes of its own", k.throttle)
	}
	if len(k.device) != 32 || string(k.device) == string(k.seal) || string(k.device) == string(k.throttle) {
		t.Errorf("device token key %x: want 32 bytes of its own", k.device)
	}
}
