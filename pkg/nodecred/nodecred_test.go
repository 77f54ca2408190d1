package nodecred

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/wgkey"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func issue(t testing.TB, auth ed25519.PrivateKey, iat, exp time.Time) Credential {
	t.Helper()
	var wg wgkey.Public
	rand.Read(wg[:])
	c, err := Encode(auth.Public().(ed25519.PublicKey), func(m []byte) []byte { return ed25519.Sign(auth, m) },
		"mesh-1", "eu-west-1", wg, newKey(t).Public().(ed25519.PublicKey), iat, exp)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKeyIDIsThumbprint checks the hand-written RFC 7638 thumbprint
// against go-jose's.
func TestKeyIDIsThumbprint(t *testing.T) {
	pub := newKey(t).Public().(ed25519.PublicKey)
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := KeyID(pub), base64.RawURLEncoding.EncodeToString(sum); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestVerify accepts a fresh credential of a trusted key and refuses one
// tampered with, of another key, expired or from the future.
func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	auth, other := newKey(t), newKey(t)
	v, err := NewVerifier([]ed25519.PublicKey{auth.Public().(ed25519.PublicKey)}, func() time.Time { return now }, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	good := issue(t, auth, now.Add(-time.Hour), now.Add(time.Hour))
	got, err := v.Verify(good.Bytes())
	if err != nil || got.NodeID != "mesh-1" || got.Region != "eu-west-1" {
		t.Fatalf("got %+v, %v", got, err)
	}
	tampered := append([]byte(nil), good.Bytes()...)
	tampered[len(tampered)-70] ^= 1
	for name, tt := range map[string]struct {
		b    []byte
		want error
	}{
		"tampered":  {tampered, ErrBadSignature},
		"other key": {issue(t, other, now, now.Add(time.Hour)).Bytes(), ErrUnknownKey},
		"expired":   {issue(t, auth, now.Add(-2*time.Hour), now.Add(-time.Minute)).Bytes(), ErrExpired},
		"future":    {issue(t, auth, now.Add(time.Minute), now.Add(time.Hour)).Bytes(), ErrNotYetValid},
		"truncated": {good.Bytes()[:40], ErrMalformed},
		"empty":     {nil, ErrMalformed},
		"oversized": {make([]byte, MaxSize+1), ErrMalformed},
	} {
		if _, err := v.Verify(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", name, err, tt.want)
		}
	}
}
