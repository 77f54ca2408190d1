package authority

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "authority.key")
	k1, err := LoadOrCreateKey(path)
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
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("file is not PEM PKCS#8: %.30s", b)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.KeyID() != k2.KeyID() || !k1.priv.Equal(k2.priv) {
		t.Fatal("reload gave another key")
	}

	seedPath := filepath.Join(dir, "seed.key")
	if err := os.WriteFile(seedPath, []byte(base64.StdEncoding.EncodeToString(k1.priv.Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k3, err := LoadKey(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	if k3.KeyID() != k1.KeyID() {
		t.Fatalf("seed file: got kid %s, want %s", k3.KeyID(), k1.KeyID())
	}
}

func TestLoadKeyRejects(t *testing.T) {
	dir := t.TempDir()
	k, _ := GenerateKey()
	good := filepath.Join(dir, "good.key")
	if err := SaveKey(good, k); err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := os.ReadFile(good)
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string
	}{
		{"group readable", pemBytes, 0o640, "too open"},
		{"world readable", pemBytes, 0o604, "too open"},
		{"garbage", []byte("garbage!"), 0o600, "neither PEM nor base64"},
		{"short seed", []byte(base64.StdEncoding.EncodeToString([]byte("short"))), 0o600, "want 32"},
		{"wrong PEM type", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600, "want PRIVATE KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(path, tt.content, tt.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tt.mode) // umask may have narrowed it
			_, err := LoadKey(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrKeyFile) {
				t.Fatalf("got %v, want an ErrKeyFile error containing %q", err, tt.want)
			}
			if _, err := LoadOrCreateKey(path); err == nil {
				t.Fatal("LoadOrCreateKey replaced an unusable file")
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, tt.content) {
				t.Fatal("file changed")
			}
		})
	}
}

func TestKeyRedacted(t *testing.T) {
	k, _ := GenerateKey()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", k)
	s := buf.String() + fmt.Sprint(k) + fmt.Sprintf("%v %s %+v %#v", k, k, k, k)
	seed := k.priv.Seed()
	for _, secret := range []string{
		base64.StdEncoding.EncodeToString(seed),
		base64.RawURLEncoding.EncodeToString(seed),
		fmt.Sprint([]byte(k.priv)),
		fmt.Sprintf("%x", seed),
	} {
		if strings.Contains(s, secret) {
			t.Fatalf("private key leaked: %s", s)
		}
	}
	if !strings.Contains(s, k.KeyID()) {
		t.Fatalf("got %s, want the key id %s shown", s, k.KeyID())
	}
}

func TestParsePublicKey(t *testing.T) {
	k, _ := GenerateKey()
	got, err := ParsePublicKey(MarshalPublicKey(k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(k.Public()) {
		t.Fatalf("got %x, want %x", got, k.Public())
	}
	if _, err := ParsePublicKey("AAAA"); err == nil {
		t.Fatal("short key parsed")
	}
}
