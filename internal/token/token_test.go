package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authd/authd/internal/auth"
)

func TestIssueVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	raw, issued := f.issue(t)

	got, err := f.ver.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	now := f.clock.Now()
	switch {
	case got.Issuer != testParams.Issuer, got.Subject != issued.Subject, got.ID != issued.ID, got.SID != issued.SID:
		t.Errorf("claims = %+v, issued %+v", got, issued)
	case len(got.Audience) != 1 || got.Audience[0] != testParams.Audience:
		t.Errorf("aud = %v", got.Audience)
	case !got.ExpiresAt.Equal(now.Add(testParams.AccessTTL)), !got.IssuedAt.Equal(now), !got.NotBefore.Equal(now):
		t.Errorf("times exp=%v iat=%v nbf=%v, now %v", got.ExpiresAt, got.IssuedAt, got.NotBefore, now)
	case len(got.AMR) != 1 || got.AMR[0] != "pwd":
		t.Errorf("amr = %v", got.AMR)
	}

	header, payload := decodeSegments(t, raw)
	if header["alg"] != "EdDSA" || header["kid"] != f.ring.set.Load().signer(now).kid {
		t.Errorf("header = %v", header)
	}
	// aud is a plain string, and every claim authd promises is there.
	if _, ok := payload["aud"].(string); !ok {
		t.Errorf("aud encoded as %T, want string", payload["aud"])
	}
	for _, name := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "amr"} {
		if _, ok := payload[name]; !ok {
			t.Errorf("claim %q missing from %v", name, payload)
		}
	}
}

func TestIssueRequiresIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	for _, ids := range [][2]string{{"", "sid"}, {"user", ""}} {
		if _, _, err := f.iss.Issue(ids[0], ids[1], nil); err == nil {
			t.Errorf("Issue(%q, %q) succeeded", ids[0], ids[1])
		}
	}
}

func TestVerifiedClaimsAreACopy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	raw, _ := f.issue(t)
	for range 3 {
		c, err := f.ver.Verify(context.Background(), raw)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if c.Subject == "mutated" {
			t.Fatal("a caller's change reached the cache")
		}
		c.Subject = "mutated"
	}
}

func decodeSegments(t *testing.T, raw string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return header, payload
}

// claimsMap returns the claims of a valid token, for cases to alter.
func (f *fixture) claimsMap() jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{
		"iss": testParams.Issuer, "sub": "user-1", "aud": testParams.Audience,
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "jti-1", "sid": "sid-1", "amr": []string{"pwd"},
	}
}

// sign signs claims with the ring's real current key, so that only the
// altered part can be the reason for a rejection.
func (f *fixture) sign(t *testing.T, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	k := f.ring.set.Load().signer(f.clock.Now())
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = k.kid
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	raw, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	valid, _ := f.issue(t)
	kid := f.ring.set.Load().signer(f.clock.Now()).kid
	pub := f.ring.set.Load().signer(f.clock.Now()).pub
	now := f.clock.Now()

	with := func(name string, v any) jwt.MapClaims {
		c := f.claimsMap()
		if v == nil {
			delete(c, name)
		} else {
			c[name] = v
		}
		return c
	}
	signWith := func(m jwt.SigningMethod, key any) string {
		tok := jwt.NewWithClaims(m, f.claimsMap())
		tok.Header["kid"] = kid
		raw, err := tok.SignedString(key)
		if err != nil {
			t.Fatalf("sign %s: %v", m.Alg(), err)
		}
		return raw
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	tamper := func(seg string) string { // flip one character in the middle
		b := []byte(seg)
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}

	cases := []struct {
		name string
		raw  string
		want error // the reason, besides auth.ErrUnauthorized
	}{
		{"alg none", signWith(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType), jwt.ErrTokenSignatureInvalid},
		{"HS256 keyed with the public key", signWith(jwt.SigningMethodHS256, []byte(pub)), jwt.ErrTokenSignatureInvalid},
		{"HS256 keyed with the base64 public key", signWith(jwt.SigningMethodHS256, []byte(base64.RawURLEncoding.EncodeToString(pub))), jwt.ErrTokenSignatureInvalid},
		{"RS256", signWith(jwt.SigningMethodRS256, rsaKey), jwt.ErrTokenSignatureInvalid},
		{"ES256", signWith(jwt.SigningMethodES256, ecKey), jwt.ErrTokenSignatureInvalid},
		{"unknown kid", f.sign(t, f.claimsMap(), map[string]any{"kid": "no-such-kid"}), errUnknownKID},
		{"missing kid", f.sign(t, f.claimsMap(), map[string]any{"kid": nil}), errNoKID},
		{"kid not a string", f.sign(t, f.claimsMap(), map[string]any{"kid": 42}), errNoKID},
		{"crit header", f.sign(t, f.claimsMap(), map[string]any{"crit": []string{"exp"}}), errCrit},
		{"wrong iss", f.sign(t, with("iss", "https://evil.test"), nil), jwt.ErrTokenInvalidIssuer},
		{"missing iss", f.sign(t, with("iss", nil), nil), jwt.ErrTokenRequiredClaimMissing},
		{"wrong aud", f.sign(t, with("aud", "other"), nil), jwt.ErrTokenInvalidAudience},
		{"missing aud", f.sign(t, with("aud", nil), nil), jwt.ErrTokenRequiredClaimMissing},
		{"expired", f.sign(t, with("exp", now.Add(-Leeway-time.Second).Unix()), nil), jwt.ErrTokenExpired},
		{"missing exp", f.sign(t, with("exp", nil), nil), jwt.ErrTokenRequiredClaimMissing},
		// RFC 7519 §2: a NumericDate is a JSON number, never a string.
		{"exp a string", f.sign(t, with("exp", strconv.FormatInt(now.Add(time.Hour).Unix(), 10)), nil), jwt.ErrTokenMalformed},
		{"nbf a string", f.sign(t, with("nbf", strconv.FormatInt(now.Unix(), 10)), nil), jwt.ErrTokenMalformed},
		{"iat a string", f.sign(t, with("iat", strconv.FormatInt(now.Unix(), 10)), nil), jwt.ErrTokenMalformed},
		{"exp an object", f.sign(t, with("exp", map[string]int64{"n": now.Add(time.Hour).Unix()}), nil), jwt.ErrTokenMalformed},
		{"exp null", f.sign(t, with("exp", json.RawMessage("null")), nil), jwt.ErrTokenMalformed},
		{"nbf in the future beyond leeway", f.sign(t, with("nbf", now.Add(Leeway+2*time.Second).Unix()), nil), jwt.ErrTokenNotValidYet},
		{"missing nbf", f.sign(t, with("nbf", nil), nil), jwt.ErrTokenRequiredClaimMissing},
		{"iat in the future", f.sign(t, with("iat", now.Add(Leeway+2*time.Second).Unix()), nil), jwt.ErrTokenUsedBeforeIssued},
		{"missing iat", f.sign(t, with("iat", nil), nil), jwt.ErrTokenInvalidClaims},
		{"missing sub", f.sign(t, with("sub", nil), nil), jwt.ErrTokenInvalidClaims},
		{"missing jti", f.sign(t, with("jti", nil), nil), jwt.ErrTokenInvalidClaims},
		{"missing sid", f.sign(t, with("sid", nil), nil), jwt.ErrTokenInvalidClaims},
		{"tampered header", tamper(parts[0]) + "." + parts[1] + "." + parts[2], jwt.ErrTokenMalformed},
		{"tampered payload", parts[0] + "." + tamper(parts[1]) + "." + parts[2], jwt.ErrTokenMalformed},
		{"tampered signature", parts[0] + "." + parts[1] + "." + tamper(parts[2]), jwt.ErrTokenSignatureInvalid},
		{"signature from another token", parts[0] + "." + parts[1] + "." + strings.Split(f.sign(t, f.claimsMap(), nil), ".")[2], jwt.ErrTokenSignatureInvalid},
		{"no signature", parts[0] + "." + parts[1] + ".", jwt.ErrTokenSignatureInvalid},
		{"truncated", valid[:len(valid)-10], jwt.ErrTokenSignatureInvalid},
		{"two segments", parts[0] + "." + parts[1], jwt.ErrTokenMalformed},
		{"four segments", valid + ".AAAA", jwt.ErrTokenMalformed},
		{"padded base64", valid + "==", jwt.ErrTokenMalformed},
		{"bearer prefix", "Bearer " + valid, jwt.ErrTokenMalformed},
		{"1 MiB of garbage", strings.Repeat("A.", 1<<19), errTooLarge},
		{"just over the size cap", valid + strings.Repeat("A", MaxTokenSize-len(valid)+1), errTooLarge},
		{"empty", "", errEmpty},
		{"dots", "..", jwt.ErrTokenMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := f.ver.Verify(context.Background(), tc.raw)
			if err == nil {
				t.Fatalf("Verify accepted %s: %+v", tc.name, c)
			}
			if !errors.Is(err, auth.ErrUnauthorized) || !errors.Is(err, tc.want) {
				t.Errorf("error %v, want one wrapping auth.ErrUnauthorized and %v", err, tc.want)
			}
			if c != nil {
				t.Errorf("claims returned with error: %+v", c)
			}
		})
	}
	// The real token still passes after all that: nothing above poisoned the cache.
	if _, err := f.ver.Verify(context.Background(), valid); err != nil {
		t.Fatalf("valid token: %v", err)
	}
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	now := f.clock.Now()
	cases := []struct {
		name  string
		claim string
		at    time.Time
	}{
		{"nbf within leeway", "nbf", now.Add(Leeway - time.Second)},
		{"iat within leeway", "iat", now.Add(Leeway - time.Second)},
		{"exp passed within leeway", "exp", now.Add(-Leeway + time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := f.claimsMap()
			c[tc.claim] = tc.at.Unix()
			if _, err := f.ver.Verify(context.Background(), f.sign(t, c, nil)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyJWKSWithGoJose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	raw, issued := f.issue(t)

	var set jose.JSONWebKeySet
	if err := json.Unmarshal(f.ring.JWKS(), &set); err != nil {
		t.Fatalf("JWKS does not parse as a JWK set: %v\n%s", err, f.ring.JWKS())
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatalf("go-jose parse: %v", err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with kid %q", len(keys), kid)
	}
	k := keys[0]
	if k.Algorithm != "EdDSA" || k.Use != "sig" {
		t.Errorf("jwk alg=%q use=%q", k.Algorithm, k.Use)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(tp); got != kid {
		t.Errorf("kid %q is not the RFC 7638 thumbprint %q", kid, got)
	}
	payload, err := jws.Verify(k)
	if err != nil {
		t.Fatalf("go-jose verify: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["jti"] != issued.ID || claims["sub"] != issued.Subject || claims["aud"] != testParams.Audience {
		t.Errorf("payload = %v", claims)
	}
	// The raw JSON is exactly what API.md promises for each key.
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(f.ring.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid}
	for name, v := range want {
		if doc.Keys[0][name] != v {
			t.Errorf("jwk %s = %q, want %q", name, doc.Keys[0][name], v)
		}
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	store := &keyStore{}
	kp := KeyParams{AccessTTL: testParams.AccessTTL, ReloadEvery: time.Minute}
	f := newFixture(t, store, testParams, kp)
	ctx := context.Background()
	oldRaw, _ := f.issue(t)
	oldKID := f.ring.set.Load().signer(f.clock.Now()).kid
	if _, err := f.ver.Verify(ctx, oldRaw); err != nil { // cached from here on
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	rotatedAt := f.clock.Now()
	newKID, err := f.ring.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if newKID == oldKID {
		t.Fatal("Rotate returned the old kid")
	}
	newRaw, _ := f.issue(t)
	if h, _ := decodeSegments(t, newRaw); h["kid"] != newKID {
		t.Errorf("new token signed with %v, want %s", h["kid"], newKID)
	}
	for _, raw := range []string{oldRaw, newRaw} {
		if _, err := f.ver.Verify(ctx, raw); err != nil {
			t.Fatalf("Verify after rotation: %v", err)
		}
	}
	assertJWKS(t, f.ring, newKID, oldKID)

	// Just before the old key's grace ends, it still verifies and is published.
	f.clock.Advance(kp.grace() - time.Second)
	assertJWKS(t, f.ring, newKID, oldKID)
	// From RetireAt + AccessTTL + ReloadEvery + Leeway on, it does neither,
	// even for a token whose own exp were later (forged with the old key).
	f.clock.Advance(time.Second)
	if got := f.clock.Now(); !got.Equal(rotatedAt.Add(kp.grace())) {
		t.Fatalf("clock at %v", got)
	}
	c := f.claimsMap()
	k := f.ring.set.Load().byKID[oldKID]
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = oldKID
	forged, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ver.Verify(ctx, forged); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("token signed by the retired key: err = %v", err)
	}
	if _, err := f.ver.Verify(ctx, oldRaw); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("old token: err = %v", err)
	}
	assertJWKS(t, f.ring, newKID)
	if _, err := f.ver.Verify(ctx, f.mustIssue(t)); err != nil {
		t.Errorf("fresh token: %v", err)
	}
}

func (f *fixture) mustIssue(t *testing.T) string {
	raw, _ := f.issue(t)
	return raw
}

func assertJWKS(t *testing.T, r *Keyring, kids ...string) {
	t.Helper()
	var doc struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range doc.Keys {
		got = append(got, k.Kid)
	}
	if strings.Join(got, ",") != strings.Join(kids, ",") {
		t.Errorf("JWKS kids = %v, want %v (newest first)", got, kids)
	}
}

func TestJWKSIsCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	a, b := f.ring.JWKS(), f.ring.JWKS()
	if &a[0] != &b[0] {
		t.Error("JWKS rebuilt without a key change")
	}
	if _, err := f.ring.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := f.ring.JWKS(); &c[0] == &a[0] {
		t.Error("JWKS not rebuilt after a rotation")
	}
}

func TestCacheDropsExpired(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	raw, _ := f.issue(t)
	ctx := context.Background()
	if _, err := f.ver.Verify(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if f.ver.cache.len() != 1 {
		t.Fatalf("cache holds %d tokens, want 1", f.ver.cache.len())
	}
	f.clock.Advance(testParams.AccessTTL + Leeway - time.Second)
	if _, err := f.ver.Verify(ctx, raw); err != nil {
		t.Fatalf("just before exp+leeway: %v", err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.ver.Verify(ctx, raw); !errors.Is(err, auth.ErrUnauthorized) || !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("cached token after exp: err = %v", err)
	}
	if f.ver.cache.len() != 0 {
		t.Errorf("expired entry still cached")
	}
}

func TestCacheDropsTokensOfARemovedKey(t *testing.T) {
	t.Parallel()
	store := &keyStore{}
	f := newFixture(t, store, testParams, KeyParams{})
	ctx := context.Background()
	raw, _ := f.issue(t)
	if _, err := f.ver.Verify(ctx, raw); err != nil {
		t.Fatal(err)
	}
	// An operator removes the key (say it leaked): rotate, then delete every
	// retired key, and the ring reloads. The cached token dies with the key.
	if _, err := f.ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteSigningKeysRetiredBefore(ctx, f.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.ring.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ver.Verify(ctx, raw); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("cached token of a removed key: err = %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	p := testParams
	p.CacheSize = 64
	f := newFixture(t, &keyStore{}, p, KeyParams{})
	ctx := context.Background()
	var raws []string
	for range 500 {
		raw, _ := f.issue(t)
		raws = append(raws, raw)
		if _, err := f.ver.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.ver.cache.len(); n > 64 || n == 0 {
		t.Errorf("cache holds %d tokens, bound 64", n)
	}
	for _, raw := range raws { // evicted ones verify the slow way
		if _, err := f.ver.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCacheDisabled(t *testing.T) {
	t.Parallel()
	p := testParams
	p.CacheSize = -1
	f := newFixture(t, &keyStore{}, p, KeyParams{})
	if f.ver.cache != nil {
		t.Fatal("cache built with CacheSize -1")
	}
	if _, err := f.ver.Verify(context.Background(), f.mustIssue(t)); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownKIDReloads(t *testing.T) {
	t.Parallel()
	store := &keyStore{}
	a := newFixture(t, store, testParams, KeyParams{MinReloadGap: 5 * time.Second})
	b := newFixture(t, store, testParams, KeyParams{})
	ctx := context.Background()
	a.clock.Advance(time.Minute)
	b.clock.Advance(time.Minute)
	if _, err := b.ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// A meets B's new kid: it reloads once, concurrent callers share it.
	raw := b.mustIssue(t)
	before := store.reads.Load()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := a.ver.Verify(ctx, raw); err != nil {
				t.Errorf("A rejects B's token after B rotated: %v", err)
			}
		})
	}
	wg.Wait()
	if n := store.reads.Load() - before; n != 1 {
		t.Errorf("%d reloads for one unknown kid, want 1", n)
	}
	if h, _ := decodeSegments(t, a.mustIssue(t)); h["kid"] != b.ring.set.Load().signer(b.clock.Now()).kid {
		t.Error("A does not sign with the new key after picking it up")
	}

	// Garbage kids cannot make A hammer the store: one reload per gap.
	before = store.reads.Load()
	for i := range 20 {
		forged := a.sign(t, a.claimsMap(), map[string]any{"kid": "bogus-" + string(rune('a'+i))})
		if _, err := a.ver.Verify(ctx, forged); !errors.Is(err, auth.ErrUnauthorized) {
			t.Fatalf("unknown kid: err = %v", err)
		}
	}
	if n := store.reads.Load() - before; n != 0 {
		t.Errorf("%d reloads within the gap, want 0", n)
	}
	a.clock.Advance(5 * time.Second)
	for range 5 {
		_, _ = a.ver.Verify(ctx, a.sign(t, a.claimsMap(), map[string]any{"kid": "bogus"}))
	}
	if n := store.reads.Load() - before; n != 1 {
		t.Errorf("%d reloads after the gap, want 1", n)
	}
}

func TestConcurrentFirstStart(t *testing.T) {
	t.Parallel()
	store := &keyStore{}
	testConcurrentFirstStart(t, func(*testing.T) auth.KeyStore { return store })
}

// testConcurrentFirstStart starts instances together on an empty database
// (open returns each its own connection to it): each may create a key, and
// after a reload all sign with the same one and accept each other's tokens.
func testConcurrentFirstStart(t *testing.T, open func(*testing.T) auth.KeyStore) {
	t.Helper()
	const n = 4
	stores := make([]auth.KeyStore, n)
	for i := range stores {
		stores[i] = open(t)
	}
	ctx := context.Background()
	clock := newClock()
	rings := make([]*Keyring, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range rings {
		wg.Go(func() {
			rings[i], errs[i] = NewKeyring(ctx, stores[i], testSecret, KeyParams{AccessTTL: testParams.AccessTTL}, clock.Now, slog.New(slog.DiscardHandler))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	iss := make([]*Issuer, n)
	ver := make([]*Verifier, n)
	raws := make([]string, n)
	for i, r := range rings {
		var err error
		if iss[i], err = NewIssuer(r, testParams, clock.Now); err != nil {
			t.Fatal(err)
		}
		if ver[i], err = NewVerifier(r, testParams, clock.Now, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		// Signed before any reload: possibly with the instance's own first key.
		if raws[i], _, err = iss[i].Issue("user", "sid", nil); err != nil {
			t.Fatal(err)
		}
	}
	var kid string
	for i, r := range rings {
		if err := r.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		k := r.set.Load().signer(clock.Now()).kid
		if i > 0 && k != kid {
			t.Errorf("instance %d signs with %s, instance 0 with %s", i, k, kid)
		}
		kid = k
	}
	for i, v := range ver {
		for j, raw := range raws {
			if _, err := v.Verify(ctx, raw); err != nil {
				t.Errorf("instance %d rejects a token of instance %d: %v", i, j, err)
			}
		}
	}
}

func TestKeyringSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &keyStore{}
	f := newFixture(t, store, testParams, KeyParams{})
	k := f.ring.set.Load().signer(f.clock.Now())

	stored, _ := store.SigningKeys(ctx)
	if strings.Contains(string(stored[0].Sealed), string(k.priv.Seed())) {
		t.Fatal("the seed is stored in the clear")
	}
	kp := KeyParams{AccessTTL: time.Minute}
	if _, err := NewKeyring(ctx, store, bytes.Repeat([]byte{8}, SealKeySize), kp, time.Now, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewKeyring opened keys sealed under another secret")
	}
	if _, err := NewKeyring(ctx, &keyStore{}, []byte("short"), kp, time.Now, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewKeyring accepted a 5-byte sealing key")
	}
	// A sealed seed moved to another kid's row does not open (kid is the AAD).
	moved := &keyStore{keys: []auth.SigningKey{stored[0]}}
	moved.keys[0].ID = "other-kid"
	if _, err := NewKeyring(ctx, moved, testSecret, kp, time.Now, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a sealed seed opened under another kid")
	}
	if _, err := NewKeyring(ctx, &keyStore{}, testSecret, KeyParams{}, time.Now, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewKeyring accepted a zero access TTL")
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	for _, p := range []Params{
		{Audience: "a", AccessTTL: time.Minute},
		{Issuer: "i", AccessTTL: time.Minute},
		{Issuer: "i", Audience: "a"},
	} {
		if _, err := NewIssuer(f.ring, p, time.Now); err == nil {
			t.Errorf("NewIssuer(%+v) succeeded", p)
		}
		if _, err := NewVerifier(f.ring, p, time.Now, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("NewVerifier(%+v) succeeded", p)
		}
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	store := &keyStore{}
	kp := KeyParams{AccessTTL: testParams.AccessTTL, ReloadEvery: 5 * time.Millisecond}
	a := newFixture(t, store, testParams, kp)
	b := newFixture(t, store, testParams, kp)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.ring.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})

	// B rotates; A picks the new key up on its own, within a few intervals.
	newKID, err := b.ring.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return a.ring.set.Load().signer(a.clock.Now()).kid == newKID })

	// Once the old key's grace has passed (by A's clock), Run deletes it.
	a.clock.Advance(kp.grace() + time.Second)
	waitFor(t, func() bool { return store.len() == 1 })
	waitFor(t, func() bool { return len(a.ring.set.Load().keys) == 1 })
}

// waitFor polls cond while a background goroutine (Run) does its work.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatal("condition not met within 5s")
		case <-tick.C:
		}
	}
}

// TestWrongIssuerOrAudienceLoggedAtDebug checks that a token signed by our
// keys but for another issuer or audience (an instance set up differently)
// is refused and the refusal says, at debug level, what was expected and
// what came.
func TestWrongIssuerOrAudienceLoggedAtDebug(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &keyStore{}, testParams, KeyParams{})
	for _, tc := range []struct {
		name string
		p    Params
		want []string
	}{
		{"issuer", Params{Issuer: "http://other.test", Audience: testParams.Audience, AccessTTL: time.Minute},
			[]string{"issuer is not ours", "want=" + testParams.Issuer, "got=http://other.test"}},
		{"audience", Params{Issuer: testParams.Issuer, Audience: "billing", AccessTTL: time.Minute},
			[]string{"audience is not ours", "want=" + testParams.Audience, "got=[billing]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other, err := NewIssuer(f.ring, tc.p, f.clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			raw, _, err := other.Issue("0190c0de-0000-7000-8000-000000000001", "0190c0de-0000-7000-8000-0000000000a1", []string{"pwd"})
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			ver, err := NewVerifier(f.ring, testParams, f.clock.Now, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ver.Verify(t.Context(), raw); !errors.Is(err, auth.ErrUnauthorized) {
				t.Fatalf("Verify = %v, want ErrUnauthorized", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log %q lacks %q", logs.String(), w)
				}
			}
		})
	}
}
