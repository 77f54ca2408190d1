package session

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

func TestCache(t *testing.T) {
	ks := newKeyset(t)
	clk := testkit.NewClock(t0)
	v := NewVerifier(VerifierConfig{Static: ks.JWKS(), Now: clk.Now})
	c := NewCache(v, 4)
	tok := signApp(t, ks, appClaims(t0))
	first, err := c.App(t.Context(), tok, testAud)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.App(t.Context(), tok, testAud)
	if err != nil || second != first {
		t.Fatalf("got %p, %v, want the cached claims %p", second, err, first)
	}
	if _, err := c.App(t.Context(), tok, "wiki.localhost"); !errors.Is(err, ErrWrongAudience) {
		t.Errorf("cached token on another app: got %v, want %v", err, ErrWrongAudience)
	}
	// Change a character in the middle of the signature: the last ones
	// carry padding bits that a lenient decoder ignores.
	i := len(tok) - 20
	flip := byte('A')
	if tok[i] == 'A' {
		flip = 'B'
	}
	bad := tok[:i] + string(flip) + tok[i+1:]
	if _, err := c.App(t.Context(), bad, testAud); err == nil {
		t.Error("tampered token: got nil, want an error")
	}
	clk.Add(8*time.Hour + DefaultSkew)
	if _, err := c.App(t.Context(), tok, testAud); !errors.Is(err, ErrExpired) {
		t.Errorf("expired cached token: got %v, want %v", err, ErrExpired)
	}
	if got := c.Len(); got != 0 {
		t.Errorf("got %d entries after expiry, want 0", got)
	}
}

func TestCacheBounded(t *testing.T) {
	ks := newKeyset(t)
	v := NewVerifier(VerifierConfig{Static: ks.JWKS(), Now: func() time.Time { return t0 }})
	c := NewCache(v, 10)
	for i := range 100 {
		cl := appClaims(t0)
		cl.SessionID = fmt.Sprint(i)
		if _, err := c.App(t.Context(), signApp(t, ks, cl), testAud); err != nil {
			t.Fatal(err)
		}
		if got := c.Len(); got > 10 {
			t.Fatalf("got %d entries, want at most 10", got)
		}
	}
}

// TestCacheHitNoCrypto checks that a hit does not verify again: after the
// verifier loses the key, a cached token still passes.
func TestCacheHitNoCrypto(t *testing.T) {
	ks := newKeyset(t)
	v := NewVerifier(VerifierConfig{Static: ks.JWKS(), Now: func() time.Time { return t0 }})
	c := NewCache(v, 10)
	tok := signApp(t, ks, appClaims(t0))
	if _, err := c.App(t.Context(), tok, testAud); err != nil {
		t.Fatal(err)
	}
	v.static = nil // test only: a miss would now fail
	if _, err := c.App(t.Context(), tok, testAud); err != nil {
		t.Errorf("hit: got %v, want nil", err)
	}
}

func BenchmarkCacheHit(b *testing.B) {
	ks := newKeyset(b)
	v := NewVerifier(VerifierConfig{Static: ks.JWKS()})
	c := NewCache(v, 1024)
	now := time.Now()
	tok := signApp(b, ks, appClaims(now))
	ctx := b.Context()
	if _, err := c.App(ctx, tok, testAud); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.App(ctx, tok, testAud); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyApp(b *testing.B) {
	ks := newKeyset(b)
	v := NewVerifier(VerifierConfig{Static: ks.JWKS()})
	tok := signApp(b, ks, appClaims(time.Now()))
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyApp(ctx, tok, testAud); err != nil {
			b.Fatal(err)
		}
	}
}
