package authority

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestAuthority(tb testing.TB, c *testkit.Clock, verify ...ed25519.PublicKey) (*Authority, Key) {
	tb.Helper()
	k, err := GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return newAuthorityWithKey(tb, k, c, verify...), k
}

func newAuthorityWithKey(tb testing.TB, k Key, c *testkit.Clock, verify ...ed25519.PublicKey) *Authority {
	tb.Helper()
	a, err := New(Config{Key: k, VerifyKeys: verify, Now: c.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func newWGKey(tb testing.TB) wgkey.Public {
	tb.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	return k.Public()
}

func TestEnrollTokenRoundTrip(t *testing.T) {
	c := testkit.NewClock(t0)
	a, k := newTestAuthority(t, c)
	tok, info, err := a.MintEnrollToken("branch-office", DefaultEnrollTTL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.VerifyEnrollToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got != info {
		t.Fatalf("got %+v, want %+v", got, info)
	}
	if got.Group != "branch-office" || got.KeyID != k.KeyID() || !got.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("got %+v, want group branch-office, kid %s, exp %v", got, k.KeyID(), t0.Add(time.Hour))
	}
	if raw, _ := base64.RawURLEncoding.DecodeString(got.ID); len(raw) != 16 {
		t.Fatalf("jti decodes to %d bytes, want 16", len(raw))
	}
	_, info2, _ := a.MintEnrollToken("branch-office", time.Minute)
	if info2.ID == info.ID {
		t.Fatal("two tokens share a jti")
	}
	hdr := decodeSegment(t, tok, 0)
	if hdr["typ"] != EnrollType || hdr["alg"] != "EdDSA" || hdr["kid"] != k.KeyID() {
		t.Fatalf("header %v, want typ %s, alg EdDSA, kid %s", hdr, EnrollType, k.KeyID())
	}
	cl := decodeSegment(t, tok, 1)
	for _, name := range []string{"jti", "grp", "iat", "nbf", "exp", "aud", "iss"} {
		if _, ok := cl[name]; !ok {
			t.Errorf("claim %s missing from %v", name, cl)
		}
	}
	if cl["aud"] != EnrollAudience || cl["iss"] != Issuer {
		t.Fatalf("aud %v iss %v, want %s %s", cl["aud"], cl["iss"], EnrollAudience, Issuer)
	}
}

func decodeSegment(tb testing.TB, tok string, i int) map[string]any {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestCredentialRoundTrip(t *testing.T) {
	c := testkit.NewClock(t0)
	a, _ := newTestAuthority(t, c)
	pub := newWGKey(t)
	id := ConnectorID("Web 01", pub)
	s, cred, err := a.IssueCredential(id, "branch-office", pub, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.VerifyCredential(s)
	if err != nil {
		t.Fatal(err)
	}
	if got != cred {
		t.Fatalf("got %+v, want %+v", got, cred)
	}
	if got.ConnectorID != id || got.PublicKey != pub || got.Group != "branch-office" {
		t.Fatalf("got %+v, want id %s key %v", got, id, pub)
	}
	if hdr := decodeSegment(t, s, 0); hdr["typ"] != CredentialType {
		t.Fatalf("typ %v, want %s", hdr["typ"], CredentialType)
	}
	if cl := decodeSegment(t, s, 1); cl["wgk"] != pub.String() || cl["sub"] != id || cl["aud"] != CredentialAudience {
		t.Fatalf("claims %v", cl)
	}
}

func TestRotation(t *testing.T) {
	c := testkit.NewClock(t0)
	old, oldKey := newTestAuthority(t, c)
	tok, _, err := old.MintEnrollToken("g", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rotated, newKey := newTestAuthority(t, c, oldKey.Public())
	if _, err := rotated.VerifyEnrollToken(tok); err != nil {
		t.Fatalf("old token under rotated authority: %v", err)
	}
	tok2, info, err := rotated.MintEnrollToken("g", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if info.KeyID != newKey.KeyID() {
		t.Fatalf("kid %s, want the new key's %s", info.KeyID, newKey.KeyID())
	}
	if _, err := old.VerifyEnrollToken(tok2); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new token under old authority: got %v, want %v", err, ErrUnknownKey)
	}
}

// forge builds a compact JWS with the given header and claims, signed with
// sign (nil for an empty signature).
func forge(tb testing.TB, hdr, cl map[string]any, sign func(input []byte) []byte) string {
	tb.Helper()
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(cl)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerifyEnrollTokenRejects(t *testing.T) {
	c := testkit.NewClock(t0)
	a, k := newTestAuthority(t, c)
	other, otherKey := newTestAuthority(t, c)
	good, _, err := a.MintEnrollToken("g", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	goodClaims := decodeSegment(t, good, 1)
	edSign := func(key Key) func([]byte) []byte {
		return func(in []byte) []byte { return ed25519.Sign(key.priv, in) }
	}
	hdr := func(alg, typ, kid string) map[string]any { return map[string]any{"alg": alg, "typ": typ, "kid": kid} }
	extraHdr := func(name string, v any) map[string]any {
		h := hdr("EdDSA", EnrollType, k.KeyID())
		h[name] = v
		return h
	}
	withClaim := func(name string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range goodClaims {
			m[k] = v
		}
		if v == nil {
			delete(m, name)
		} else {
			m[name] = v
		}
		return m
	}
	future := testkit.NewClock(t0.Add(time.Hour))
	early, _, err := newAuthorityWithKey(t, k, future).MintEnrollToken("g", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	past := testkit.NewClock(t0.Add(-2 * time.Hour))
	expired, _, err := newAuthorityWithKey(t, k, past).MintEnrollToken("g", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fromOther, _, _ := other.MintEnrollToken("g", time.Hour)
	cred, _, err := a.IssueCredential("c-1", "g", newWGKey(t), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tampered := withClaim("grp", "admins")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hsSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(k.Public())},
		(&jose.SignerOptions{}).WithType(EnrollType).WithHeader("kid", k.KeyID()))
	if err != nil {
		t.Fatal(err)
	}
	rsSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: rsaKey},
		(&jose.SignerOptions{}).WithType(EnrollType).WithHeader("kid", k.KeyID()))
	if err != nil {
		t.Fatal(err)
	}
	jwtWith := func(s jose.Signer) string {
		tok, err := jwt.Signed(s).Claims(goodClaims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sigBytes, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sigBytes[0] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sigBytes)

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"garbage", "not-a-token", ErrMalformed},
		{"oversize", good + strings.Repeat("A", MaxTokenSize), ErrMalformed},
		{"expired", expired, ErrExpired},
		{"not yet valid", early, ErrNotYetValid},
		{"tampered payload", parts[0] + "." + strings.Split(forge(t, nil, tampered, nil), ".")[1] + "." + parts[2], ErrBadSignature},
		{"tampered signature", badSig, ErrBadSignature},
		{"alg none", forge(t, hdr("none", EnrollType, k.KeyID()), goodClaims, nil), ErrBadAlgorithm},
		{"alg HS256 with public key", jwtWith(hsSigner), ErrBadAlgorithm},
		{"alg RS256", jwtWith(rsSigner), ErrBadAlgorithm},
		{"another key", fromOther, ErrUnknownKey},
		{"another key claiming our kid", forge(t, hdr("EdDSA", EnrollType, k.KeyID()), goodClaims, edSign(otherKey)), ErrBadSignature},
		{"credential as token", cred, ErrWrongType},
		{"wrong typ", forge(t, hdr("EdDSA", CredentialType, k.KeyID()), goodClaims, edSign(k)), ErrWrongType},
		{"wrong aud", forge(t, hdr("EdDSA", EnrollType, k.KeyID()), withClaim("aud", CredentialAudience), edSign(k)), ErrWrongType},
		{"wrong iss", forge(t, hdr("EdDSA", EnrollType, k.KeyID()), withClaim("iss", "evil"), edSign(k)), ErrWrongType},
		{"no exp", forge(t, hdr("EdDSA", EnrollType, k.KeyID()), withClaim("exp", nil), edSign(k)), ErrMalformed},
		{"no jti", forge(t, hdr("EdDSA", EnrollType, k.KeyID()), withClaim("jti", nil), edSign(k)), ErrMalformed},
		{"iat in future", forge(t, hdr("EdDSA", EnrollType, k.KeyID()), withClaim("iat", t0.Add(time.Hour).Unix()), edSign(k)), ErrNotYetValid},
		{"critical header", forge(t, map[string]any{"alg": "EdDSA", "typ": EnrollType, "kid": k.KeyID(), "crit": []string{"exp"}, "exp": 1}, goodClaims, edSign(k)), ErrMalformed},
		{"no kid", forge(t, map[string]any{"alg": "EdDSA", "typ": EnrollType}, goodClaims, edSign(k)), ErrMalformed},
		// The shared header policy (pkg/jws), as this package's callers see it.
		{"jku header", forge(t, extraHdr("jku", "https://evil.example/jwks"), goodClaims, edSign(k)), ErrMalformed},
		{"x5u header", forge(t, extraHdr("x5u", "https://evil.example/cert"), goodClaims, edSign(k)), ErrMalformed},
		{"embedded jwk", forge(t, extraHdr("jwk", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(otherKey.Public())}), goodClaims, edSign(otherKey)), ErrMalformed},
		{"b64 false", forge(t, extraHdr("b64", false), goodClaims, edSign(k)), ErrMalformed},
		{"alg eddsa", forge(t, hdr("eddsa", EnrollType, k.KeyID()), goodClaims, edSign(k)), ErrBadAlgorithm},
		{"alg Ed25519", forge(t, hdr("Ed25519", EnrollType, k.KeyID()), goodClaims, edSign(k)), ErrBadAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.VerifyEnrollToken(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Fatalf("error contains the token: %v", err)
			}
		})
	}
	if _, err := a.VerifyCredential(good); !errors.Is(err, ErrWrongType) {
		t.Fatalf("token as credential: got %v, want %v", err, ErrWrongType)
	}
}

func TestSkew(t *testing.T) {
	c := testkit.NewClock(t0)
	a, _ := newTestAuthority(t, c)
	tok, _, err := a.MintEnrollToken("g", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		want error
	}{
		{"just before nbf, within skew", t0.Add(-DefaultSkew + time.Second), nil},
		{"before nbf beyond skew", t0.Add(-DefaultSkew - time.Second), ErrNotYetValid},
		{"after exp, within skew", t0.Add(time.Minute + DefaultSkew - time.Second), nil},
		{"after exp beyond skew", t0.Add(time.Minute + DefaultSkew + time.Second), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Set(tt.at)
			if _, err := a.VerifyEnrollToken(tok); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMintArguments(t *testing.T) {
	a, _ := newTestAuthority(t, testkit.NewClock(t0))
	pub := newWGKey(t)
	tests := []struct {
		name string
		f    func() error
	}{
		{"zero ttl", func() error { _, _, err := a.MintEnrollToken("g", 0); return err }},
		{"ttl over 7 days", func() error { _, _, err := a.MintEnrollToken("g", MaxEnrollTTL+time.Second); return err }},
		{"empty group", func() error { _, _, err := a.MintEnrollToken("", time.Hour); return err }},
		{"group with space", func() error { _, _, err := a.MintEnrollToken("a b", time.Hour); return err }},
		{"credential zero key", func() error { _, _, err := a.IssueCredential("c-1", "g", wgkey.Public{}, time.Hour); return err }},
		{"credential bad id", func() error { _, _, err := a.IssueCredential("C 1", "g", pub, time.Hour); return err }},
		{"credential negative ttl", func() error { _, _, err := a.IssueCredential("c-1", "g", pub, -time.Hour); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f(); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("got %v, want %v", err, ErrInvalidArgument)
			}
		})
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no key: got %v, want %v", err, ErrInvalidArgument)
	}
	k, _ := GenerateKey()
	if _, err := New(Config{Key: k, Skew: time.Hour}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("huge skew: got %v, want %v", err, ErrInvalidArgument)
	}
}

func TestConnectorID(t *testing.T) {
	var pub wgkey.Public
	pub[0] = 1
	suffix := ConnectorID("", pub)[len("connector-"):]
	if len(suffix) != 8 || strings.Trim(suffix, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Fatalf("suffix %q, want 8 lowercase base32 characters", suffix)
	}
	tests := []struct{ name, want string }{
		{"", "connector"},
		{"  ", "connector"},
		{"Web-01", "web-01"},
		{"Smart Money / Prod_1", "smart-money-prod-1"},
		{"--ÄÖ--", "connector"},
		{strings.Repeat("a", 50), strings.Repeat("a", 40)},
		{strings.Repeat("a", 39) + " b", strings.Repeat("a", 39)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ConnectorID(tt.name, pub); got != tt.want+"-"+suffix {
				t.Fatalf("got %q, want %q", got, tt.want+"-"+suffix)
			}
		})
	}
	other := newWGKey(t)
	if ConnectorID("x", other) == ConnectorID("x", pub) {
		t.Fatal("two keys gave one id")
	}
	if !connectorIDRE.MatchString(ConnectorID(strings.Repeat("z", 100), other)) {
		t.Fatal("derived id is not a valid connector id")
	}
}

// TestWorkloadCredential: a credential issued on a workload enrolment names
// its subject (claim wls) and verifies with it; a one-time token's
// credential has none; a subject that is empty, too long or has control
// characters is refused.
func TestWorkloadCredential(t *testing.T) {
	c := testkit.NewClock(t0)
	a, _ := newTestAuthority(t, c)
	pub := newWGKey(t)
	id := ConnectorID("connectord-0", pub)
	const sub = "system:serviceaccount:postern:connectord"
	s, cred, err := a.IssueWorkloadCredential(id, "pods", pub, time.Hour, sub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.VerifyCredential(s)
	if err != nil || got != cred || got.WorkloadSubject != sub {
		t.Fatalf("got %+v, %v; want %+v with subject %s", got, err, cred, sub)
	}
	if cl := decodeSegment(t, s, 1); cl["wls"] != sub {
		t.Fatalf("claims %v", cl)
	}
	plain, _, err := a.IssueCredential(id, "pods", pub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.VerifyCredential(plain); err != nil || got.WorkloadSubject != "" {
		t.Fatalf("one-time credential: %+v, %v", got, err)
	}
	if _, ok := decodeSegment(t, plain, 1)["wls"]; ok {
		t.Error("a one-time token's credential carries wls")
	}
	for _, bad := range []string{"", strings.Repeat("s", MaxWorkloadSubjectLen+1), "system:serviceaccount:a:b\nforged"} {
		if _, _, err := a.IssueWorkloadCredential(id, "pods", pub, time.Hour, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("subject %.40q: got %v, want ErrInvalidArgument", bad, err)
		}
	}
}
