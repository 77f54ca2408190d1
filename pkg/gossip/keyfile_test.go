package gossip

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip.keys")
	if err := WriteNewKeyring(path); err != nil {
		t.Fatal(err)
	}
	if err := WriteNewKeyring(path); err == nil {
		t.Error("got nil error overwriting a keyring")
	}
	keys, err := LoadKeyring(path)
	if err != nil || len(keys) != 1 || len(keys[0]) != 32 {
		t.Fatalf("got %d keys, %v; want one 32-byte key", len(keys), err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		os.Chmod(path, mode)
		if _, err := LoadKeyring(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %v: got %v, want a refusal", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := LoadKeyring(path); err != nil {
		t.Errorf("mode 0400: got %v, want it accepted", err)
	}
	for _, tt := range []struct{ name, data, want string }{
		{"empty", "# nothing\n\n", "no key"},
		{"not base64", "!!!\n", "k:1: not base64"},
		{"short", "AAAA\n", "k:1: key is 3 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyring("k", []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("got %v, want an ErrInvalidConfig containing %q", err, tt.want)
			}
		})
	}
}
