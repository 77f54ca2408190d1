package jwks_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/jwks"
	"github.com/postern/postern/pkg/testkit"
)

func doc(t *testing.T, kids ...string) []byte {
	var set jose.JSONWebKeySet
	for _, kid := range kids {
		pub, _, _ := ed25519.GenerateKey(nil)
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: kid, Use: "sig", Algorithm: "EdDSA"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSetRefetchRules checks when a Set fetches: first use; an unknown kid
// at most once per RefetchInterval (forged kids cannot make it hammer the
// provider); a stale set on the next lookup; and that a failed fetch keeps
// the last good set.
func TestSetRefetchRules(t *testing.T) {
	srv := testkit.NewDocServer(t, doc(t, "k1"))
	c := testkit.NewClock(time.Unix(1_800_000_000, 0))
	s := jwks.New(jwks.Config{URL: srv.URL, HTTPClient: srv.Client(), Now: c.Now,
		RefetchInterval: 30 * time.Second, MaxAge: time.Hour})
	if s.Loaded() {
		t.Fatal("loaded before any fetch")
	}
	if _, err := s.Key(t.Context(), "k1"); err != nil || srv.Requests() != 1 || !s.Loaded() {
		t.Fatalf("first use: got %v after %d fetches", err, srv.Requests())
	}
	for range 5 {
		if _, err := s.Key(t.Context(), "forged"); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Fatalf("unknown kid: got %v, want ErrUnknownKey", err)
		}
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("five unknown kids within the interval of the first fetch: got %d fetches, want 1", n)
	}
	srv.Set(doc(t, "k1", "k2"), false)
	c.Add(31 * time.Second)
	if _, err := s.Key(t.Context(), "k2"); err != nil {
		t.Errorf("a new kid after the interval: got %v", err)
	}
	srv.Set(nil, true)
	c.Add(2 * time.Hour)
	if _, err := s.Key(t.Context(), "k2"); err != nil {
		t.Errorf("stale set, provider down: got %v, want the last good key", err)
	}
	if n := srv.Requests(); n != 3 {
		t.Errorf("got %d fetches, want 3 (the stale set was fetched again)", n)
	}
	if err := s.Refresh(t.Context()); err == nil {
		t.Error("Refresh with the provider down: got nil")
	}
}

func TestSetUnavailable(t *testing.T) {
	srv := testkit.NewDocServer(t, nil)
	srv.Set(nil, true)
	s := jwks.New(jwks.Config{URL: srv.URL, HTTPClient: srv.Client()})
	if _, err := s.Key(t.Context(), "k1"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("provider down: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Key(t.Context(), "k1"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("again within the interval: got %v, want ErrUnavailable", err)
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("got %d fetches, want 1", n)
	}
}

func TestParse(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	mk := func(keys ...jose.JSONWebKey) []byte {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		return b
	}
	good := jose.JSONWebKey{Key: pub, KeyID: "k1", Algorithm: "EdDSA"}
	enc := good
	enc.KeyID, enc.Use = "k2", "enc"
	noKid := good
	noKid.KeyID = ""
	keys, err := jwks.Parse(mk(good, enc, noKid), nil)
	if err != nil || len(keys) != 1 || keys["k1"].KeyID != "k1" {
		t.Errorf("got %v, %v; want only k1", keys, err)
	}
	if _, err := jwks.Parse(mk(good), func(jose.JSONWebKey) bool { return false }); !errors.Is(err, jwks.ErrBadKeySet) {
		t.Errorf("nothing accepted: got %v, want ErrBadKeySet", err)
	}
	for _, bad := range []string{`<html>`, `{"keys":[]}`, `[]`} {
		if _, err := jwks.Parse([]byte(bad), nil); !errors.Is(err, jwks.ErrBadKeySet) {
			t.Errorf("%s: got %v, want ErrBadKeySet", bad, err)
		}
	}
}

// TestSetFile: a Set of a local JWKS file reads it on first use and again
// when a kid is unknown (after the interval), so that an operator who
// copies a rotated cluster's keys into the file needs no restart; a file
// gone or broken keeps the last good set, and a Set whose file never read
// is unavailable.
func TestSetFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, doc(t, "k1"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testkit.NewClock(time.Unix(1_800_000_000, 0))
	s := jwks.New(jwks.Config{File: path, Issuer: "https://kubernetes.default.svc", Now: c.Now, RefetchInterval: 30 * time.Second})
	if !s.For("https://kubernetes.default.svc", "", path) || s.For("https://kubernetes.default.svc", "", "/other") {
		t.Error("For: wrong")
	}
	if _, err := s.Key(t.Context(), "k1"); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := os.WriteFile(path, doc(t, "k2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(t.Context(), "k2"); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Errorf("a new kid within the interval: got %v, want ErrUnknownKey", err)
	}
	c.Add(31 * time.Second)
	if _, err := s.Key(t.Context(), "k2"); err != nil {
		t.Errorf("a new kid after the interval: got %v", err)
	}
	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(t.Context()); err == nil {
		t.Error("Refresh of a broken file: got nil")
	}
	if _, err := s.Key(t.Context(), "k2"); err != nil {
		t.Errorf("broken file: got %v, want the last good key", err)
	}
	gone := jwks.New(jwks.Config{File: filepath.Join(dir, "missing.json")})
	if _, err := gone.Key(t.Context(), "k1"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("missing file: got %v, want ErrUnavailable", err)
	}
}
