// Command keygen creates the auth functions' secrets: the Ed25519 session
// key set (session-keys.json, the POSTERN_SESSION_KEYS value) and the
// 32-byte key that encrypts the sign-in flow cookie (state-key, base64, the
// POSTERN_STATE_KEY value). Both files are written 0600 and never
// overwritten; only the public JWKS and the key id are printed.
//
//	go run ./infra/tools/keygen -out infra/secrets
package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/wgkey"
)

func main() {
	out := flag.String("out", "infra/secrets", "directory for session-keys.json and state-key")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "keygen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	keysPath, statePath := filepath.Join(dir, "session-keys.json"), filepath.Join(dir, "state-key")
	for _, p := range []string{keysPath, statePath} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s exists (or cannot be checked); refusing to overwrite a secret", p)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	ks, err := session.GenerateKeyset()
	if err != nil {
		return err
	}
	keys, err := ks.Marshal()
	if err != nil {
		return err
	}
	state := make([]byte, 32)
	if _, err := rand.Read(state); err != nil {
		return fmt.Errorf("generate state key: %w", err)
	}
	if err := wgkey.WriteFileAtomic(keysPath, keys, 0o600); err != nil {
		return fmt.Errorf("write session keys: %w", err)
	}
	if err := wgkey.WriteFileAtomic(statePath, []byte(base64.StdEncoding.EncodeToString(state)), 0o600); err != nil {
		return fmt.Errorf("write state key: %w", err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (active kid %s) and %s, mode 0600\npublic JWKS:\n", keysPath, ks.ActiveKID(), statePath)
	fmt.Printf("%s\n", ks.JWKS())
	return nil
}
