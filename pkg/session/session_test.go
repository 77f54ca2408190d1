package session

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const (
	testIssuer = "https://auth.localhost:8443"
	testAud    = "smartmoney.localhost"
)

func newKeyset(tb testing.TB) *Keyset {
	tb.Helper()
	ks, err := GenerateKeyset()
	if err != nil {
		tb.Fatalf("GenerateKeyset: %v", err)
	}
	return ks
}

func appClaims(now time.Time) AppClaims {
	return AppClaims{
		Identity: Identity{
			Subject: "tid-1/oid-1", TenantID: "tid-1", ObjectID: "oid-1", Name: "Ada Lovelace",
			Username: "ada@example.com", Groups: []string{"g1"}, Roles: []string{"SmartMoney.User"},
			AuthTime: now.Add(-time.Minute).Unix(), SessionID: "sid-1",
		},
		AppID: "smartmoney", Audience: testAud, Binding: "bh", ReturnPath: "/x",
		IssuedAt: now.Unix(), Expiry: now.Add(8 * time.Hour).Unix(), Issuer: testIssuer,
	}
}

func signApp(tb testing.TB, ks *Keyset, c AppClaims) string {
	tb.Helper()
	tok, err := ks.Sign(TypeApp, c)
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	return tok
}

func staticVerifier(ks *Keyset, now time.Time) *Verifier {
	return NewVerifier(VerifierConfig{Static: ks.JWKS(), Issuer: testIssuer, Now: func() time.Time { return now }})
}

func b64(v any) string {
	data, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(data)
}

// forge builds a compact JWS with an arbitrary header and an HMAC-SHA256
// signature keyed with secret (or no signature when secret is nil).
func forge(header map[string]any, claims any, secret []byte) string {
	in := b64(header) + "." + b64(claims)
	if secret == nil {
		return in + "."
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestVerifyAppRefusals(t *testing.T) {
	ks := newKeyset(t)
	other := newKeyset(t)
	good := appClaims(t0)
	tok := signApp(t, ks, good)
	parts := strings.Split(tok, ".")
	tampered := func() string {
		c := good
		c.Roles = []string{"SmartMoney.Admin"}
		return parts[0] + "." + b64(c) + "." + parts[2]
	}()
	badSig := func() string {
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[0] ^= 1
		return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	}()
	sess, err := ks.Sign(TypeSession, SessionClaims{Identity: good.Identity, Audience: testAud, IssuedAt: t0.Unix(), Expiry: t0.Add(time.Hour).Unix(), Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(c *AppClaims)) string {
		c := good
		f(&c)
		return signApp(t, ks, c)
	}
	hdr := map[string]any{"typ": TypeApp, "kid": ks.ActiveKID()}
	algHdr := func(alg string) map[string]any {
		h := map[string]any{"alg": alg}
		for k, v := range hdr {
			h[k] = v
		}
		return h
	}
	noKid := func() string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: ks.keys[0].priv},
			(&jose.SignerOptions{}).WithType(TypeApp))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(good)
		jws, _ := signer.Sign(payload)
		s, _ := jws.CompactSerialize()
		return s
	}()
	pubBytes := []byte(ks.keys[0].priv.Public().(ed25519.PublicKey))
	extraHdr := func(name string, v any) map[string]any {
		h := algHdr("EdDSA")
		h[name] = v
		return h
	}

	tests := []struct {
		name     string
		token    string
		audience string
		now      time.Time
		want     error
	}{
		{"valid", tok, testAud, t0, nil},
		{"valid within skew after exp", tok, testAud, time.Unix(good.Expiry+29, 0), nil},
		{"expired beyond skew", tok, testAud, time.Unix(good.Expiry+30, 0), ErrExpired},
		{"issued in the future", tok, testAud, t0.Add(-31 * time.Second), ErrNotYetValid},
		{"iat within skew", tok, testAud, t0.Add(-29 * time.Second), nil},
		{"nbf in the future", with(func(c *AppClaims) { c.NotBefore = t0.Add(time.Minute).Unix() }), testAud, t0, ErrNotYetValid},
		{"wrong audience (token for app A on app B)", tok, "wiki.localhost", t0, ErrWrongAudience},
		{"empty audience wanted", tok, "", t0, ErrWrongAudience},
		{"wrong issuer", with(func(c *AppClaims) { c.Issuer = "https://evil.example" }), testAud, t0, ErrWrongIssuer},
		{"wrong key", signApp(t, other, good), testAud, t0, ErrUnknownKey},
		{"tampered claims", tampered, testAud, t0, ErrBadSignature},
		{"flipped signature bit", badSig, testAud, t0, ErrBadSignature},
		{"session token used as app token", sess, testAud, t0, ErrWrongType},
		{"alg none", forge(algHdr("none"), good, nil), testAud, t0, ErrMalformed},
		{"alg HS256 keyed with the public key", forge(algHdr("HS256"), good, pubBytes), testAud, t0, ErrMalformed},
		{"no kid", noKid, testAud, t0, ErrMalformed},
		// The shared header policy (pkg/jws), as this package's callers see
		// it: the headers that would let a token pick its own key, the
		// encoding of its payload or a second reading of alg.
		{"jku header", edSigned(t, ks, extraHdr("jku", "https://evil.example/jwks"), good), testAud, t0, ErrMalformed},
		{"x5u header", edSigned(t, ks, extraHdr("x5u", "https://evil.example/cert"), good), testAud, t0, ErrMalformed},
		{"embedded jwk", edSigned(t, ks, extraHdr("jwk", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64raw(pubBytes)}), good), testAud, t0, ErrMalformed},
		{"crit header", edSigned(t, ks, extraHdr("crit", []string{"exp"}), good), testAud, t0, ErrMalformed},
		{"b64 false", edSigned(t, ks, extraHdr("b64", false), good), testAud, t0, ErrMalformed},
		{"alg eddsa", edSigned(t, ks, extraHdr("alg", "eddsa"), good), testAud, t0, ErrMalformed},
		{"alg Ed25519", edSigned(t, ks, extraHdr("alg", "Ed25519"), good), testAud, t0, ErrMalformed},
		{"unknown kid", forge(map[string]any{"alg": "EdDSA", "typ": TypeApp, "kid": "nope"}, good, []byte("x")), testAud, t0, ErrUnknownKey},
		{"JSON serialization", `{"payload":"e30","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, testAud, t0, ErrMalformed},
		{"garbage", "not.a.token", testAud, t0, ErrMalformed},
		{"empty", "", testAud, t0, ErrMalformed},
		{"missing exp", forgeSigned(t, ks, TypeApp, map[string]any{"sub": "s", "app": "a", "aud": testAud, "iss": testIssuer, "iat": t0.Unix()}), testAud, t0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := staticVerifier(ks, tt.now)
			c, err := v.VerifyApp(t.Context(), tt.token, tt.audience)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want == nil && c.Subject != good.Subject {
				t.Errorf("got subject %q, want %q", c.Subject, good.Subject)
			}
			if err != nil && strings.Contains(err.Error(), tt.token) && tt.token != "" {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

// edSigned builds a compact JWS with an arbitrary header, signed with
// ks's active key.
func edSigned(tb testing.TB, ks *Keyset, header map[string]any, claims any) string {
	tb.Helper()
	in := b64(header) + "." + b64(claims)
	return in + "." + b64raw(ed25519.Sign(ks.keys[0].priv, []byte(in)))
}

func b64raw(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// forgeSigned signs arbitrary claims with ks's active key and typ.
func forgeSigned(tb testing.TB, ks *Keyset, typ string, claims any) string {
	tb.Helper()
	tok, err := ks.Sign(typ, claims)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestVerifySession(t *testing.T) {
	ks := newKeyset(t)
	c := SessionClaims{Identity: Identity{Subject: "t/o", SessionID: "s"}, Audience: "auth.localhost", IssuedAt: t0.Unix(), Expiry: t0.Add(time.Hour).Unix(), Issuer: testIssuer}
	tok, err := ks.Sign(TypeSession, c)
	if err != nil {
		t.Fatal(err)
	}
	v := staticVerifier(ks, t0)
	got, err := v.VerifySession(t.Context(), tok, "auth.localhost")
	if err != nil || got.Subject != "t/o" {
		t.Fatalf("got %v, %v, want subject t/o", got, err)
	}
	if _, err := v.VerifyApp(t.Context(), tok, "auth.localhost"); !errors.Is(err, ErrWrongType) {
		t.Errorf("session as app: got %v, want %v", err, ErrWrongType)
	}
	app := signApp(t, ks, appClaims(t0))
	if _, err := v.VerifySession(t.Context(), app, testAud); !errors.Is(err, ErrWrongType) {
		t.Errorf("app as session: got %v, want %v", err, ErrWrongType)
	}
}

func TestAssertion(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	signer, err := NewAssertionSigner(AssertionSignerConfig{Issuer: "urn:postern:mesh:test", Key: pub,
		Sign: func(m []byte) []byte { return ed25519.Sign(priv, m) }, NotAfter: now.Add(30 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: signer.KeyID(), Algorithm: "EdDSA", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Subject: "t/o", Name: "Ada"}
	tok, err := signer.SignAssertion(id, testAud, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(VerifierConfig{Static: jwks, Issuer: "urn:postern:mesh:test"})
	got, err := v.VerifyAssertion(t.Context(), tok, testAud)
	if err != nil || got.Name != "Ada" || got.Issuer != "urn:postern:mesh:test" {
		t.Fatalf("got %+v, %v, want Ada from urn:postern:mesh:test", got, err)
	}
	// NotAfter (the node credential's end) caps the lifetime.
	if got.Expiry > now.Add(30*time.Second).Unix() {
		t.Errorf("exp %d is past the node credential's end %d", got.Expiry, now.Add(30*time.Second).Unix())
	}
	if _, err := v.VerifyApp(t.Context(), tok, testAud); !errors.Is(err, ErrWrongType) {
		t.Errorf("assertion as app token: got %v, want %v", err, ErrWrongType)
	}
	if _, err := v.VerifyAssertion(t.Context(), tok, "other"); !errors.Is(err, ErrWrongAudience) {
		t.Errorf("wrong audience: got %v, want %v", err, ErrWrongAudience)
	}
	other := NewVerifier(VerifierConfig{Static: jwks, Issuer: "urn:postern:mesh:other"})
	if _, err := other.VerifyAssertion(t.Context(), tok, testAud); !errors.Is(err, ErrWrongIssuer) {
		t.Errorf("another mesh's issuer: got %v, want %v", err, ErrWrongIssuer)
	}
	// Another key under the same kid does not verify.
	_, priv2, _ := ed25519.GenerateKey(nil)
	forger, _ := NewAssertionSigner(AssertionSignerConfig{Issuer: "urn:postern:mesh:test", Key: pub,
		Sign: func(m []byte) []byte { return ed25519.Sign(priv2, m) }})
	forged, _ := forger.SignAssertion(id, testAud, time.Minute)
	if _, err := v.VerifyAssertion(t.Context(), forged, testAud); err == nil {
		t.Error("an assertion signed by another key under the same kid verified")
	}
	// Past the credential's end, nothing is signed.
	late, _ := NewAssertionSigner(AssertionSignerConfig{Issuer: "i", Key: pub, Sign: func(m []byte) []byte { return ed25519.Sign(priv, m) },
		NotAfter: now.Add(-time.Second)})
	if tok, err := late.SignAssertion(id, testAud, time.Minute); err == nil {
		t.Errorf("signed %q after the node credential ended", tok)
	}
}

func TestKeysetRotation(t *testing.T) {
	ks := newKeyset(t)
	oldTok := signApp(t, ks, appClaims(t0))
	rotated, err := ks.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ActiveKID() == ks.ActiveKID() || len(rotated.KIDs()) != 2 {
		t.Fatalf("got active %s kids %v, want a new active key and 2 kids", rotated.ActiveKID(), rotated.KIDs())
	}
	newTok := signApp(t, rotated, appClaims(t0))
	v := staticVerifier(rotated, t0)
	for name, tok := range map[string]string{"retired-but-listed key": oldTok, "active key": newTok} {
		if _, err := v.VerifyApp(t.Context(), tok, testAud); err != nil {
			t.Errorf("%s: got %v, want nil", name, err)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rotated.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].KeyID != rotated.ActiveKID() {
		t.Fatalf("got %d keys, first %q, want 2 with the active first", len(set.Keys), set.Keys[0].KeyID)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Use != "sig" || k.Algorithm != "EdDSA" || k.KeyID == "" {
			t.Errorf("got key %+v, want public, use sig, alg EdDSA, kid", k)
		}
	}
	// Marshal / parse round trip keeps the active key and both keys.
	data, err := rotated.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseKeyset(data)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.ActiveKID() != rotated.ActiveKID() || len(parsed.KIDs()) != 2 {
		t.Errorf("got %v, want %v", parsed, rotated)
	}
	retired, err := parsed.Retire(ks.ActiveKID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := staticVerifier(retired, t0).VerifyApp(t.Context(), oldTok, testAud); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after retiring: got %v, want %v", err, ErrUnknownKey)
	}
	if _, err := retired.Retire(retired.ActiveKID()); err == nil {
		t.Error("retiring the active key: got nil, want an error")
	}
}

func TestKeysetNeverPrintsPrivateKeys(t *testing.T) {
	ks := newKeyset(t)
	data, err := ks.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Keys []struct{ D string } }
	if err := json.Unmarshal(data, &f); err != nil || f.Keys[0].D == "" {
		t.Fatalf("marshal has no private part: %v", err)
	}
	secret := f.Keys[0].D
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("loaded", "keyset", ks)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("loaded", "keyset", ks)
	outputs := map[string]string{
		"String": ks.String(), "%v": fmt.Sprintf("%v", ks), "%+v": fmt.Sprintf("%+v", ks),
		"%#v": fmt.Sprintf("%#v", ks), "%s": fmt.Sprintf("%s", ks), "slog": logBuf.String(),
		"JWKS": string(ks.JWKS()),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, `"d"`) {
			t.Errorf("%s: got %q, want no private key material", name, out)
		}
		if name != "JWKS" && !strings.Contains(out, ks.ActiveKID()) {
			t.Errorf("%s: got %q, want the kid", name, out)
		}
	}
}

func TestParseKeysetRefusals(t *testing.T) {
	ks := newKeyset(t)
	good, _ := ks.Marshal()
	var f map[string]any
	_ = json.Unmarshal(good, &f)
	mutate := func(fn func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		fn(m)
		b, _ := json.Marshal(m)
		return b
	}
	key := func(m map[string]any) map[string]any { return m["keys"].([]any)[0].(map[string]any) }
	tests := []struct {
		name string
		data []byte
	}{
		{"not JSON", []byte("{")},
		{"no keys", []byte(`{"active":"x","keys":[]}`)},
		{"active not listed", mutate(func(m map[string]any) { m["active"] = "other" })},
		{"public key only", mutate(func(m map[string]any) { delete(key(m), "d") })},
		{"kid not the thumbprint", mutate(func(m map[string]any) { key(m)["kid"] = "mine" })},
		{"repeated key", mutate(func(m map[string]any) { m["keys"] = append(m["keys"].([]any), key(m)) })},
		{"HMAC key", []byte(`{"active":"k","keys":[{"kty":"oct","k":"c2VjcmV0","kid":"k"}]}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyset(tt.data)
			if !errors.Is(err, ErrBadKeyset) {
				t.Fatalf("got %v, want %v", err, ErrBadKeyset)
			}
			if d, _ := key(f)["d"].(string); strings.Contains(err.Error(), d) {
				t.Errorf("error %q contains the private key", err)
			}
		})
	}
}

// TestAppCookieSize checks that an app token for a user in 500 groups, cut
// down to the 5 groups a policy names, fits a cookie (4096 bytes with its
// name and attributes).
func TestAppCookieSize(t *testing.T) {
	ks := newKeyset(t)
	c := appClaims(t0)
	for i := range 500 {
		c.Groups = append(c.Groups, fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i, i, i, i, i))
	}
	named := []string{c.Groups[3], c.Groups[77], c.Groups[250], c.Groups[499], "not-a-member"}
	c.Roles = []string{"SmartMoney.User", "SmartMoney.Admin", "Other.Role"}
	full := signApp(t, ks, c)
	if len(full) < 4096 {
		t.Fatalf("uncut token is %d bytes: the test does not exercise the cut", len(full))
	}
	c.Identity = c.Identity.ForPolicy(named, []string{"SmartMoney.Admin"})
	if len(c.Groups) != 4 || len(c.Roles) != 1 || c.Roles[0] != "SmartMoney.Admin" {
		t.Fatalf("got groups %v roles %v, want the 4 named groups and SmartMoney.Admin", c.Groups, c.Roles)
	}
	tok := signApp(t, ks, c)
	cookie := fmt.Sprintf("__Host-postern=%s; Path=/; Expires=Fri, 01 May 2026 20:00:00 GMT; HttpOnly; Secure; SameSite=Lax", tok)
	if len(cookie) >= 4096 {
		t.Errorf("got cookie of %d bytes, want < 4096", len(cookie))
	}
	t.Logf("app token: %d bytes uncut (500 groups), %d bytes cut; Set-Cookie %d bytes", len(full), len(tok), len(cookie))
}

func TestForPolicy(t *testing.T) {
	id := Identity{Subject: "s", Groups: []string{"a", "b", "c"}, Roles: []string{"r1", "r2"}}
	got := id.ForPolicy([]string{"c", "a", "z"}, nil)
	if strings.Join(got.Groups, ",") != "a,c" || got.Roles != nil || got.Subject != "s" {
		t.Errorf("got %+v, want groups a,c, no roles, subject s", got)
	}
	if strings.Join(id.Groups, ",") != "a,b,c" {
		t.Errorf("original changed: got %v, want a,b,c", id.Groups)
	}
}

func TestSealer(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	now := t0
	s, err := NewSealer(key, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	type flow struct{ State, Verifier string }
	tok, err := s.Seal(flow{"st", "pkce-secret"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tok, "pkce-secret") || strings.Contains(tok, b64("pkce-secret")[:8]) {
		t.Fatalf("sealed token shows its content")
	}
	var got flow
	if err := s.Open(tok, &got); err != nil || got.Verifier != "pkce-secret" {
		t.Fatalf("got %+v, %v, want the sealed value", got, err)
	}
	other, _ := NewSealer(bytes.Repeat([]byte{8}, 32), func() time.Time { return now })
	parts := strings.Split(tok, ".")
	ct, _ := base64.RawURLEncoding.DecodeString(parts[3])
	ct[0] ^= 1
	parts[3] = base64.RawURLEncoding.EncodeToString(ct)
	tests := []struct {
		name string
		s    *Sealer
		tok  string
		at   time.Time
		want error
	}{
		{"other key", other, tok, t0, ErrMalformed},
		{"tampered", s, strings.Join(parts, "."), t0, ErrMalformed},
		{"expired", s, tok, t0.Add(10 * time.Minute), ErrExpired},
		{"garbage", s, "x.y.z", t0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = tt.at
			if err := tt.s.Open(tt.tok, &got); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := NewSealer(key[:16], nil); err == nil {
		t.Error("16-byte key: got nil, want an error")
	}
}
