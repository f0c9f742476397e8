package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

// SealKeySize is the size of the key that seals private seeds at rest: an
// AES-256-GCM key, derived by the caller from the service secret for this
// one use.
const SealKeySize = 32

// newSealer returns the AES-256-GCM cipher that seals private key seeds.
func newSealer(key []byte) (cipher.AEAD, error) {
	if len(key) != SealKeySize {
		return nil, fmt.Errorf("token: sealing key is %d bytes, want %d", len(key), SealKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("token: sealing cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("token: sealing cipher: %w", err)
	}
	return aead, nil
}

// seal encrypts seed with the kid as additional data, so that a sealed seed
// moved to another key's row fails to open. Output: nonce || ciphertext.
func seal(aead cipher.AEAD, kid string, seed []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(seed)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("token: seal key %s: %w", kid, err)
	}
	return aead.Seal(nonce, nonce, seed, []byte(kid)), nil
}

// open reverses seal and checks that the seed belongs to pub.
func open(aead cipher.AEAD, kid string, sealed []byte, pub ed25519.PublicKey) (ed25519.PrivateKey, error) {
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, fmt.Errorf("token: open key %s: sealed seed is too short", kid)
	}
	seed, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("token: open key %s (is the secret key the one it was sealed with?): %w", kid, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("token: open key %s: seed is %d bytes", kid, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if subtle.ConstantTimeCompare(priv.Public().(ed25519.PublicKey), pub) != 1 {
		return nil, errors.New("token: open key " + kid + ": private key does not match the public key")
	}
	return priv, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key: the
// base64url SHA-256 of its canonical JWK. Used as kid, it is stable and lets
// anyone holding the JWKS recompute it.
func thumbprint(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
