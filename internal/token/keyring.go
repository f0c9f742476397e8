package token

import (
	"bytes"
	"cmp"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/authd/authd/internal/auth"
)

// KeyParams is the keyring slice of the configuration.
type KeyParams struct {
	// AccessTTL is the access-token lifetime: a retired key keeps verifying
	// for this long (plus ReloadEvery and Leeway) so that every token it
	// signed can live out its life.
	AccessTTL time.Duration
	// ReloadEvery is how often Run re-reads the keys; 0 means one minute.
	// It is also how late an instance may pick up a rotation, so retired keys
	// verify ReloadEvery longer: an instance that has not yet seen the new
	// key signs with the old one until its next reload.
	ReloadEvery time.Duration
	// MinReloadGap rate-limits the reloads triggered by tokens with an
	// unknown kid (at most one per gap, shared by concurrent callers);
	// 0 means five seconds.
	MinReloadGap time.Duration
}

func (p *KeyParams) setDefaults() error {
	if p.AccessTTL <= 0 {
		return fmt.Errorf("token: access TTL %v is not positive", p.AccessTTL)
	}
	if p.ReloadEvery < 0 || p.MinReloadGap < 0 {
		return errors.New("token: negative reload interval")
	}
	if p.ReloadEvery == 0 {
		p.ReloadEvery = time.Minute
	}
	if p.MinReloadGap == 0 {
		p.MinReloadGap = 5 * time.Second
	}
	return nil
}

// grace is how long after RetireAt a key still verifies.
func (p KeyParams) grace() time.Duration { return p.AccessTTL + p.ReloadEvery + Leeway }

// key is one loaded signing key. Never modified after a keySet holds it.
type key struct {
	kid         string
	pub         ed25519.PublicKey
	priv        ed25519.PrivateKey
	createdAt   time.Time
	notBefore   time.Time
	retireAt    time.Time // zero while current
	verifyUntil time.Time // zero while current: retireAt + grace
}

// verifies reports whether tokens signed with k are accepted at now.
func (k *key) verifies(now time.Time) bool {
	return k.verifyUntil.IsZero() || now.Before(k.verifyUntil)
}

// keySet is an immutable snapshot of the ring: Reload swaps in a new one.
type keySet struct {
	keys  []*key // oldest first, by (notBefore, createdAt, kid)
	byKID map[string]*key
}

// signer returns the newest key that may sign at now: NotBefore reached,
// preferring keys not yet retired. Every instance reading the same rows
// picks the same key.
func (s *keySet) signer(now time.Time) *key {
	var fallback *key
	for _, k := range slices.Backward(s.keys) {
		if k.notBefore.After(now) {
			continue
		}
		if k.retireAt.IsZero() || now.Before(k.retireAt) {
			return k
		}
		if fallback == nil {
			fallback = k
		}
	}
	return fallback
}

// jwksDoc is a cached JWKS body and the keys it lists.
type jwksDoc struct {
	keys []*key
	body []byte
}

// Keyring holds the Ed25519 signing keys shared by every instance through
// the KeyStore. All methods are safe for concurrent use; signing and
// verification read an atomically swapped snapshot and never block on
// storage, except when a token names an unknown kid (see Verifier.Verify).
type Keyring struct {
	store  auth.KeyStore
	aead   cipher.AEAD
	p      KeyParams
	now    func() time.Time
	logger *slog.Logger

	set        atomic.Pointer[keySet]
	jwks       atomic.Pointer[jwksDoc]
	lastReload atomic.Int64 // unix nanos (injected clock) when the last unknown-kid reload ended
	reloads    singleflight.Group

	// reloadMu serialises Reload so that an older read never replaces a newer one.
	reloadMu sync.Mutex
}

// NewKeyring loads the signing keys from store, creating the first one when
// there is none, and returns a ring ready to sign. sealKey (SealKeySize
// bytes, derived from the service secret for this use alone) seals private
// seeds at rest. The ring keeps no goroutine: call Run to keep it fresh.
//
// Two instances starting together on an empty database may each create a
// key; both re-read after inserting and, once each has reloaded, sign with
// the same newest key while the other still verifies until it is retired.
func NewKeyring(ctx context.Context, store auth.KeyStore, sealKey []byte, p KeyParams, now func() time.Time, logger *slog.Logger) (*Keyring, error) {
	if err := p.setDefaults(); err != nil {
		return nil, err
	}
	aead, err := newSealer(sealKey)
	if err != nil {
		return nil, err
	}
	if store == nil || now == nil || logger == nil {
		return nil, errors.New("token: keyring needs a store, a clock and a logger")
	}
	r := &Keyring{store: store, aead: aead, p: p, now: now, logger: logger}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	if len(r.set.Load().keys) == 0 {
		kid, err := r.add(ctx)
		if err != nil {
			return nil, err
		}
		r.logger.Info("created the first signing key", "kid", kid)
		if err := r.Reload(ctx); err != nil {
			return nil, err
		}
	}
	if r.set.Load().signer(r.now()) == nil {
		return nil, errors.New("token: no signing key is valid now")
	}
	return r, nil
}

// Rotate creates a new signing key and stores it; the store retires the
// current key at the new key's NotBefore (now). This instance signs with the
// new key at once, others after their next reload; tokens signed with the
// old key keep verifying until they expire. It returns the new kid.
func (r *Keyring) Rotate(ctx context.Context) (string, error) {
	kid, err := r.add(ctx)
	if err != nil {
		return "", err
	}
	r.logger.Info("rotated the signing key", "kid", kid)
	if err := r.Reload(ctx); err != nil {
		return "", err
	}
	return kid, nil
}

// add generates a key, seals it and stores it.
func (r *Keyring) add(ctx context.Context) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("token: generate key: %w", err)
	}
	kid := thumbprint(pub)
	sealed, err := seal(r.aead, kid, priv.Seed())
	if err != nil {
		return "", err
	}
	now := r.now()
	k := auth.SigningKey{ID: kid, PublicKey: pub, Sealed: sealed, CreatedAt: now, NotBefore: now}
	if err := r.store.AddSigningKey(ctx, k); err != nil {
		return "", fmt.Errorf("token: store key %s: %w", kid, err)
	}
	return kid, nil
}

// Reload re-reads the keys from the store and swaps them in. On error the
// ring keeps the keys it had. It blocks on the store; safe for concurrent use.
func (r *Keyring) Reload(ctx context.Context) error {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	stored, err := r.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: load keys: %w", err)
	}
	old := r.set.Load()
	set := &keySet{keys: make([]*key, 0, len(stored)), byKID: make(map[string]*key, len(stored))}
	for _, sk := range stored {
		k, err := r.load(old, sk)
		if err != nil {
			return err
		}
		set.keys = append(set.keys, k)
		set.byKID[k.kid] = k
	}
	slices.SortFunc(set.keys, func(a, b *key) int {
		return cmp.Or(a.notBefore.Compare(b.notBefore), a.createdAt.Compare(b.createdAt), cmp.Compare(a.kid, b.kid))
	})
	r.set.Store(set)
	r.logChanges(old, set)
	return nil
}

// load turns a stored key into a ring key, reusing the already opened one
// when nothing changed (so the cache's key check and the JWKS stay cheap).
func (r *Keyring) load(old *keySet, sk auth.SigningKey) (*key, error) {
	if old != nil {
		if k, ok := old.byKID[sk.ID]; ok && k.retireAt.Equal(sk.RetireAt) && k.notBefore.Equal(sk.NotBefore) && bytes.Equal(k.pub, sk.PublicKey) {
			return k, nil
		}
	}
	if len(sk.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("token: key %s: public key is %d bytes", sk.ID, len(sk.PublicKey))
	}
	pub := ed25519.PublicKey(bytes.Clone(sk.PublicKey))
	priv, err := open(r.aead, sk.ID, sk.Sealed, pub)
	if err != nil {
		return nil, err
	}
	k := &key{kid: sk.ID, pub: pub, priv: priv, createdAt: sk.CreatedAt, notBefore: sk.NotBefore, retireAt: sk.RetireAt}
	if !sk.RetireAt.IsZero() {
		k.verifyUntil = sk.RetireAt.Add(r.p.grace())
	}
	return k, nil
}

func (r *Keyring) logChanges(old, set *keySet) {
	if old == nil {
		return
	}
	for _, k := range set.keys {
		if _, ok := old.byKID[k.kid]; !ok {
			r.logger.Info("signing key loaded", "kid", k.kid)
		}
	}
	for _, k := range old.keys {
		if _, ok := set.byKID[k.kid]; !ok {
			r.logger.Info("signing key removed", "kid", k.kid)
		}
	}
}

// Run keeps the ring fresh until ctx ends: every ReloadEvery it deletes the
// keys retired long enough ago that no token they signed can still be live,
// and re-reads the keys. Store errors are logged and retried at the next
// tick. It returns nil when ctx ends.
func (r *Keyring) Run(ctx context.Context) error {
	t := time.NewTicker(r.p.ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := r.store.DeleteSigningKeysRetiredBefore(ctx, r.now().Add(-r.p.grace())); err != nil && ctx.Err() == nil {
			r.logger.Warn("cannot delete old signing keys", "err", err)
		}
		if err := r.Reload(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("cannot reload signing keys", "err", err)
		}
	}
}

// signer returns the key to sign with now.
func (r *Keyring) signer() (*key, error) {
	if k := r.set.Load().signer(r.now()); k != nil {
		return k, nil
	}
	return nil, errors.New("token: no signing key is valid now")
}

// verifier returns the key named kid if it may verify at now, reloading the
// ring first when kid is unknown (rate-limited, shared by concurrent
// callers). nil means reject.
func (r *Keyring) verifier(ctx context.Context, kid string, now time.Time) *key {
	k := r.set.Load().byKID[kid]
	if k == nil {
		r.reloadForUnknown(ctx)
		k = r.set.Load().byKID[kid]
	}
	if k == nil || !k.verifies(now) {
		return nil
	}
	return k
}

// reloadForUnknown reloads the ring unless that was tried less than
// MinReloadGap ago; it waits for the shared reload or for ctx, whichever
// comes first. The reload itself runs on a context detached from any one
// caller and bounded by a timeout, so one caller leaving fails nobody else.
func (r *Keyring) reloadForUnknown(ctx context.Context) {
	if !r.reloadDue() {
		return
	}
	ch := r.reloads.DoChan("reload", func() (any, error) {
		if !r.reloadDue() {
			return nil, nil // another caller got in first
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.Reload(rctx); err != nil {
			r.logger.Warn("cannot reload signing keys for an unknown kid", "err", err)
		}
		// Stamped when done, so that callers arriving meanwhile join this
		// flight instead of skipping it and missing the key it brings.
		r.lastReload.Store(r.now().UnixNano())
		return nil, nil
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// reloadDue reports whether MinReloadGap has passed since the last
// unknown-kid reload.
func (r *Keyring) reloadDue() bool {
	last := r.lastReload.Load()
	return last == 0 || r.now().Sub(time.Unix(0, last)) >= r.p.MinReloadGap
}

// JWKS returns the JSON Web Key Set of every key that may verify a live
// token now: {"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"use":"sig","alg":"EdDSA"}]}.
// The body is cached and rebuilt only when that set of keys changes; the
// caller must not modify it. Safe for concurrent use; never blocks.
func (r *Keyring) JWKS() []byte {
	set, now := r.set.Load(), r.now()
	if doc := r.jwks.Load(); doc != nil && sameVisible(doc.keys, set, now) {
		return doc.body
	}
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
	}
	doc := &jwksDoc{}
	jwks := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	// Newest first: clients that take the first key get the current one.
	for _, k := range slices.Backward(set.keys) {
		if !k.verifies(now) {
			continue
		}
		doc.keys = append(doc.keys, k)
		jwks.Keys = append(jwks.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.pub), Kid: k.kid, Use: "sig", Alg: alg})
	}
	body, err := json.Marshal(jwks)
	if err != nil {
		panic("token: marshal JWKS: " + err.Error()) // strings only: cannot fail
	}
	doc.body = body
	r.jwks.Store(doc)
	return body
}

// sameVisible reports whether listed are exactly the keys of set that verify
// at now, newest first.
func sameVisible(listed []*key, set *keySet, now time.Time) bool {
	i := 0
	for _, k := range slices.Backward(set.keys) {
		if !k.verifies(now) {
			continue
		}
		if i >= len(listed) || listed[i] != k {
			return false
		}
		i++
	}
	return i == len(listed)
}
