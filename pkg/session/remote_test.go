package session

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestRemoteVerifier(t *testing.T) {
	ks := newKeyset(t)
	srv := testkit.NewDocServer(t, ks.JWKS())
	clk := testkit.NewClock(t0)
	v := NewVerifier(VerifierConfig{JWKSURL: srv.URL + "/.well-known/jwks.json", Now: clk.Now, Issuer: testIssuer, Logger: quietLogger()})
	if got := srv.Requests(); got != 0 {
		t.Fatalf("NewVerifier fetched %d times, want 0 (no I/O at construction)", got)
	}
	tok := signApp(t, ks, appClaims(t0))
	for range 3 {
		if _, err := v.VerifyApp(t.Context(), tok, testAud); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	}
	if got := srv.Requests(); got != 1 {
		t.Fatalf("got %d fetches, want 1 (cached)", got)
	}

	// Rotation: a token with a new kid triggers a refetch, but only once
	// per interval.
	rotated, _ := ks.Rotate()
	newTok := signApp(t, rotated, appClaims(t0))
	clk.Add(31 * time.Second)
	if _, err := v.VerifyApp(t.Context(), newTok, testAud); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new kid before publication: got %v, want %v", err, ErrUnknownKey)
	}
	srv.Set(rotated.JWKS(), false)
	if _, err := v.VerifyApp(t.Context(), newTok, testAud); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new kid within the refetch interval: got %v, want %v", err, ErrUnknownKey)
	}
	if got := srv.Requests(); got != 2 {
		t.Fatalf("got %d fetches, want 2 (rate-limited)", got)
	}
	clk.Add(31 * time.Second)
	if _, err := v.VerifyApp(t.Context(), newTok, testAud); err != nil {
		t.Fatalf("new kid after the interval: got %v, want nil", err)
	}
	if _, err := v.VerifyApp(t.Context(), tok, testAud); err != nil {
		t.Fatalf("old kid still listed: got %v, want nil", err)
	}

	// A failing fetch keeps the last good set.
	srv.Set(nil, true)
	clk.Add(2 * time.Hour) // past MaxAge: the next verification refetches
	tok2 := signApp(t, rotated, appClaims(clk.Now()))
	before := srv.Requests()
	if _, err := v.VerifyApp(t.Context(), tok2, testAud); err != nil {
		t.Fatalf("with the JWKS down: got %v, want nil (last good set)", err)
	}
	if got := srv.Requests(); got != before+1 {
		t.Errorf("got %d fetches, want %d (stale set refetched)", got, before+1)
	}
	// Garbage from the server is a failed fetch too.
	srv.Set([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}`), false)
	if err := v.Refresh(t.Context()); !errors.Is(err, ErrJWKSFetch) {
		t.Errorf("refresh with an HMAC-only JWKS: got %v, want %v", err, ErrJWKSFetch)
	}
	if _, err := v.VerifyApp(t.Context(), tok2, testAud); err != nil {
		t.Errorf("after a bad document: got %v, want nil (last good set)", err)
	}
}

func TestRemoteVerifierTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ks := newKeyset(t)
	v := NewVerifier(VerifierConfig{JWKSURL: srv.URL, Now: func() time.Time { return t0 }, FetchTimeout: 100 * time.Millisecond, Logger: quietLogger()})
	done := make(chan error, 1)
	go func() {
		_, err := v.VerifyApp(t.Context(), signApp(t, ks, appClaims(t0)), testAud)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnknownKey) {
			t.Errorf("got %v, want %v", err, ErrUnknownKey)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("verification did not return: the fetch timeout is not applied")
	}
}

func TestStaticVerifierBadDocument(t *testing.T) {
	ks := newKeyset(t)
	v := NewVerifier(VerifierConfig{Static: []byte("{"), Now: func() time.Time { return t0 }})
	if _, err := v.VerifyApp(t.Context(), signApp(t, ks, appClaims(t0)), testAud); !errors.Is(err, ErrBadKeyset) {
		t.Errorf("got %v, want %v", err, ErrBadKeyset)
	}
}
