package jws_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/postern/postern/pkg/jws"
)

var errUnknown = errors.New("unknown key")

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signed builds a token with the literal header and payload, signed with
// priv over exactly those bytes.
func signed(priv ed25519.PrivateKey, header, payload string) string {
	in := enc(header) + "." + enc(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(in)))
}

// signedRaw signs the literal first two parts in.
func signedRaw(priv ed25519.PrivateKey, in string) string {
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(in)))
}

// strayBits sets the unused low bit of the last character of an unpadded
// base64url string of 64 bytes: a lenient decoder reads the same bytes.
func strayBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i^1])
}

func keys(t *testing.T) (ed25519.PrivateKey, func(string) (ed25519.PublicKey, error)) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv, func(kid string) (ed25519.PublicKey, error) {
		if kid != "k1" {
			return nil, errUnknown
		}
		return pub, nil
	}
}

func TestVerifyGood(t *testing.T) {
	priv, key := keys(t)
	for _, hdr := range []string{
		`{"alg":"EdDSA","kid":"k1","typ":"t+jwt"}`,
		`{"typ":"t+jwt","kid":"k1","alg":"EdDSA"}`,
		` { "alg" : "EdDSA" , "kid":"k1", "typ":"t+jwt" } `,
	} {
		payload, kid, err := jws.Policy{}.Verify(signed(priv, hdr, `{"sub":"a"}`), "t+jwt", key)
		if err != nil || kid != "k1" || string(payload) != `{"sub":"a"}` {
			t.Errorf("header %s: got %q %q %v, want the payload and k1", hdr, payload, kid, err)
		}
	}
}

// TestVerifyHostile is the policy's hostile table: every header a token
// could use to choose its own key, algorithm or encoding, every spelling
// of alg, and every way to smuggle a second reading of a part.
func TestVerifyHostile(t *testing.T) {
	priv, key := keys(t)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	good := signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"t+jwt"}`, `{}`)
	parts := strings.Split(good, ".")
	hs256 := func(secret []byte) string {
		in := enc(`{"alg":"HS256","kid":"k1","typ":"t+jwt"}`) + "." + enc(`{}`)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	pubKey, _ := key("k1")
	with := func(extra string) string {
		return signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"t+jwt",`+extra+`}`, `{}`)
	}
	sig := func(s string) string { return parts[0] + "." + parts[1] + "." + s }
	rawSig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	flipped := append([]byte(nil), rawSig...)
	flipped[0] ^= 1
	tests := []struct {
		name, token string
		want        error
	}{
		{"empty", "", jws.ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], jws.ErrMalformed},
		{"four parts", good + ".x", jws.ErrMalformed},
		{"JSON serialization", `{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`, jws.ErrMalformed},
		{"over the cap", good + strings.Repeat("A", jws.DefaultMaxSize), jws.ErrMalformed},
		{"padded header", parts[0] + "=." + parts[1] + "." + parts[2], jws.ErrMalformed},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(parts[0]) + "+." + parts[1] + "." + parts[2], jws.ErrMalformed},
		{"header not an object", signed(priv, `["alg","EdDSA"]`, `{}`), jws.ErrMalformed},
		{"header with trailing data", signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"t+jwt"}{}`, `{}`), jws.ErrMalformed},
		{"jku", with(`"jku":"https://evil.example/jwks"`), jws.ErrMalformed},
		{"x5u", with(`"x5u":"https://evil.example/cert"`), jws.ErrMalformed},
		{"jwk", with(`"jwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA"}`), jws.ErrMalformed},
		{"x5c", with(`"x5c":["MIIB"]`), jws.ErrMalformed},
		{"crit", with(`"crit":["exp"],"exp":1`), jws.ErrMalformed},
		{"b64 false", with(`"b64":false,"crit":["b64"]`), jws.ErrMalformed},
		{"zip", with(`"zip":"DEF"`), jws.ErrMalformed},
		{"cty", with(`"cty":"JWT"`), jws.ErrMalformed},
		{"repeated alg", signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"t+jwt","alg":"none"}`, `{}`), jws.ErrMalformed},
		{"repeated alg, escaped", signed(priv, `{"alg":"none","kid":"k1","typ":"t+jwt","\u0061lg":"EdDSA"}`, `{}`), jws.ErrMalformed},
		{"repeated kid", signed(priv, `{"alg":"EdDSA","kid":"k2","typ":"t+jwt","kid":"k1"}`, `{}`), jws.ErrMalformed},
		{"kid a number", signed(priv, `{"alg":"EdDSA","kid":1,"typ":"t+jwt"}`, `{}`), jws.ErrMalformed},
		{"typ an object", signed(priv, `{"alg":"EdDSA","kid":"k1","typ":{"t":1}}`, `{}`), jws.ErrMalformed},
		{"no kid", signed(priv, `{"alg":"EdDSA","typ":"t+jwt"}`, `{}`), jws.ErrMalformed},
		{"empty kid", signed(priv, `{"alg":"EdDSA","kid":"","typ":"t+jwt"}`, `{}`), jws.ErrMalformed},
		{"no alg", signed(priv, `{"kid":"k1","typ":"t+jwt"}`, `{}`), jws.ErrAlgorithm},
		{"alg none", enc(`{"alg":"none","kid":"k1","typ":"t+jwt"}`) + "." + enc(`{}`) + ".", jws.ErrAlgorithm},
		{"alg None", signed(priv, `{"alg":"None","kid":"k1","typ":"t+jwt"}`, `{}`), jws.ErrAlgorithm},
		{"alg eddsa", signed(priv, `{"alg":"eddsa","kid":"k1","typ":"t+jwt"}`, `{}`), jws.ErrAlgorithm},
		{"alg EdDSA with a space", signed(priv, `{"alg":"EdDSA ","kid":"k1","typ":"t+jwt"}`, `{}`), jws.ErrAlgorithm},
		{"alg Ed25519", signed(priv, `{"alg":"Ed25519","kid":"k1","typ":"t+jwt"}`, `{}`), jws.ErrAlgorithm},
		{"alg HS256 keyed with the public key", hs256(pubKey), jws.ErrAlgorithm},
		{"alg null", signed(priv, `{"alg":null,"kid":"k1","typ":"t+jwt"}`, `{}`), jws.ErrAlgorithm},
		{"unknown kid", signed(priv, `{"alg":"EdDSA","kid":"k2","typ":"t+jwt"}`, `{}`), errUnknown},
		{"another key claiming the kid", signed(otherPriv, `{"alg":"EdDSA","kid":"k1","typ":"t+jwt"}`, `{}`), jws.ErrSignature},
		{"flipped signature bit", sig(base64.RawURLEncoding.EncodeToString(flipped)), jws.ErrSignature},
		{"short signature", sig(base64.RawURLEncoding.EncodeToString(rawSig[:63])), jws.ErrSignature},
		{"empty signature", sig(""), jws.ErrSignature},
		{"signature with stray bits", sig(strayBits(parts[2])), jws.ErrSignature},
		{"payload swapped", parts[0] + "." + enc(`{"admin":true}`) + "." + parts[2], jws.ErrSignature},
		{"wrong typ", signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"other+jwt"}`, `{}`), jws.ErrType},
		{"no typ", signed(priv, `{"alg":"EdDSA","kid":"k1"}`, `{}`), jws.ErrType},
		{"padded payload, signed as sent", signedRaw(priv, enc(`{"alg":"EdDSA","kid":"k1","typ":"t+jwt"}`)+".e30="), jws.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, _, err := jws.Policy{}.Verify(tt.token, "t+jwt", key)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v (payload %q), want %v", err, payload, tt.want)
			}
			if payload != nil {
				t.Errorf("got payload %q with an error", payload)
			}
			if len(tt.token) > 8 && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error %q quotes the token", err)
			}
		})
	}
}

// TestPolicyErrorsAndCap checks that a caller's sentinels replace the
// package's, one per class, and that MaxSize is the cap.
func TestPolicyErrorsAndCap(t *testing.T) {
	priv, key := keys(t)
	mal, alg, sig, typ := errors.New("m"), errors.New("a"), errors.New("s"), errors.New("t")
	p := jws.Policy{MaxSize: 200, Errors: jws.Errors{Malformed: mal, Algorithm: alg, Signature: sig, Type: typ}}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	for _, tt := range []struct {
		token     string
		want, not error
	}{
		{signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"t","jku":"x"}`, `{}`), mal, jws.ErrMalformed},
		{signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"t"}`, `{"pad":"`+strings.Repeat("x", 200)+`"}`), mal, jws.ErrMalformed},
		{signed(priv, `{"alg":"HS256","kid":"k1","typ":"t"}`, `{}`), alg, jws.ErrAlgorithm},
		{signed(otherPriv, `{"alg":"EdDSA","kid":"k1","typ":"t"}`, `{}`), sig, jws.ErrSignature},
		{signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"u"}`, `{}`), typ, jws.ErrType},
	} {
		_, _, err := p.Verify(tt.token, "t", key)
		if !errors.Is(err, tt.want) || errors.Is(err, tt.not) {
			t.Errorf("got %v, want only the caller's %v", err, tt.want)
		}
	}
	if _, _, err := p.Verify(signed(priv, `{"alg":"EdDSA","kid":"k1","typ":"t"}`, `{}`), "t", key); err != nil {
		t.Errorf("a token under the cap: got %v", err)
	}
}
