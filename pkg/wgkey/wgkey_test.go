package wgkey

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublicRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	p := k.Public()
	got, err := ParsePublic(p.String())
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Fatalf("got %v, want %v", got, p)
	}
	if _, err := ParsePublic("not base64!"); err == nil {
		t.Fatal("bad key parsed")
	}
	if _, err := ParsePublic("AAAA"); err == nil {
		t.Fatal("short key parsed")
	}
}

func TestAddrInPrefixAndStable(t *testing.T) {
	k1, _ := Generate()
	k2, _ := Generate()
	a1, a2 := k1.Public().Addr(), k2.Public().Addr()
	if !Prefix.Contains(a1) || !Prefix.Contains(a2) {
		t.Fatalf("addresses %v %v not in %v", a1, a2, Prefix)
	}
	if a1 == a2 {
		t.Fatal("two keys gave one address")
	}
	if k1.Public().Addr() != a1 {
		t.Fatal("address not stable")
	}
}

func TestPrivateRedacted(t *testing.T) {
	k, _ := Generate()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", k)
	s := buf.String() + fmt.Sprint(k) + fmt.Sprintf("%v %s", k, k)
	if strings.Contains(s, k.base64()) || strings.Contains(s, k.Hex()) {
		t.Fatalf("private key leaked: %s", s)
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "wg.key")
	k1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("mode: got %v, want 0600", got)
	}
	k2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 {
		t.Fatal("reload gave another key")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "too open") {
		t.Fatalf("got %v, want a too-open error", err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o600)
	if _, err := LoadOrCreate(path); err == nil {
		t.Fatal("garbage key loaded")
	}
}
