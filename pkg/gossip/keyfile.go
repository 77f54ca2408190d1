package gossip

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/postern/postern/pkg/wgkey"
)

// LoadKeyring reads a gossip keyring file: one base64 key (16, 24 or 32
// bytes) per line, the first one encrypting, the others still accepted
// (for rotation); blank lines and lines starting with # are ignored. The
// file must be readable by its owner only (mode 0600): the key lets anyone
// read the gossip.
func LoadKeyring(path string) ([][]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("gossip: keyring %s: mode %v lets group or others read it; chmod 600 %s (owned by the service user)", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	return ParseKeyring(path, data)
}

// ParseKeyring parses the contents of a keyring file; name is used in
// errors, which never include key material.
func ParseKeyring(name string, data []byte) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("gossip: keyring %s:%d: not base64: %w", name, line, ErrInvalidConfig)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("gossip: keyring %s:%d: key is %d bytes, want 16, 24 or 32: %w", name, line, n, ErrInvalidConfig)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("gossip: keyring %s: no key: %w", name, ErrInvalidConfig)
	}
	return keys, nil
}

// WriteNewKeyring writes a keyring file with one fresh 32-byte key, mode
// 0600; it refuses to overwrite an existing file.
func WriteNewKeyring(path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("gossip: %s exists; refusing to overwrite a keyring (add a line to rotate)", path)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	body := "# Postern gossip keyring: the first key encrypts, the others are accepted.\n" + base64.StdEncoding.EncodeToString(k) + "\n"
	return wgkey.WriteFileAtomic(path, []byte(body), 0o600)
}
