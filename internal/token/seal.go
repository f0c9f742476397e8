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
	"io"

	"golang.org/x/crypto/hkdf"
)

// sealInfo binds the derived key to this one use: the same service secret
// also encrypts other things (TOTP secrets) under other info strings.
const sealInfo = "authd signing key v1"

// MinSecretSize is the shortest service secret NewKeyring accepts. The
// secret should be 32 random bytes; HKDF stretches nothing, it only separates.
const MinSecretSize = 16

// newSealer derives the AES-256-GCM key that seals private key seeds.
func newSealer(secret []byte) (cipher.AEAD, error) {
	if len(secret) < MinSecretSize {
		return nil, fmt.Errorf("token: secret is %d bytes, want at least %d", len(secret), MinSecretSize)
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte(sealInfo)), key); err != nil {
		return nil, fmt.Errorf("token: derive sealing key: %w", err)
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
