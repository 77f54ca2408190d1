// Command keygen creates the secrets of a deployment in one directory, each
// file 0600 and never overwritten: the auth functions' Ed25519 session key
// set (session-keys.json, the POSTERN_SESSION_KEYS value) and the 32-byte
// key that encrypts the sign-in flow cookie (state-key, base64, the
// POSTERN_STATE_KEY value), the mesh authority key (authority.key, as
// "meshd authority init" writes it) and the gossip keyring (gossip.keyring,
// as "meshd gossip keygen" writes it). A file that exists is kept and the
// missing ones are created, so a partly generated set is completed. Only
// public values (the JWKS, key ids) are printed.
//
//	go run ./infra/tools/keygen --out infra/secrets
package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/wgkey"
)

func main() {
	out := flag.String("out", "infra/secrets", "directory for session-keys.json, state-key, authority.key and gossip.keyring")
	flag.Parse()
	if err := run(*out, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "keygen:", err)
		os.Exit(1)
	}
}

// secret is one file of the set and how to create it.
type secret struct {
	name   string
	create func(path string, stdout, stderr io.Writer) error
}

var secrets = []secret{
	{"session-keys.json", writeSessionKeys},
	{"state-key", writeStateKey},
	{"authority.key", writeAuthorityKey},
	{"gossip.keyring", func(path string, _, stderr io.Writer) error {
		if err := gossip.WriteNewKeyring(path); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s (copy it to every mesh node)\n", path)
		return nil
	}},
}

// run creates every missing file of the set in dir and keeps those that
// exist.
func run(dir string, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, s := range secrets {
		path := filepath.Join(dir, s.name)
		_, err := os.Stat(path)
		if err == nil {
			fmt.Fprintf(stderr, "kept %s (exists; never overwritten)\n", path)
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", path, err)
		}
		if err := s.create(path, stdout, stderr); err != nil {
			return err
		}
	}
	return nil
}

func writeSessionKeys(path string, stdout, stderr io.Writer) error {
	ks, err := session.GenerateKeyset()
	if err != nil {
		return err
	}
	keys, err := ks.Marshal()
	if err != nil {
		return err
	}
	if err := wgkey.WriteFileAtomic(path, keys, 0o600); err != nil {
		return fmt.Errorf("write session keys: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s (active kid %s); its public JWKS:\n", path, ks.ActiveKID())
	fmt.Fprintf(stdout, "%s\n", ks.JWKS())
	return nil
}

func writeStateKey(path string, _, stderr io.Writer) error {
	state := make([]byte, 32)
	if _, err := rand.Read(state); err != nil {
		return fmt.Errorf("generate state key: %w", err)
	}
	if err := wgkey.WriteFileAtomic(path, []byte(base64.StdEncoding.EncodeToString(state)), 0o600); err != nil {
		return fmt.Errorf("write state key: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s\n", path)
	return nil
}

func writeAuthorityKey(path string, _, stderr io.Writer) error {
	key, err := authority.GenerateKey()
	if err != nil {
		return err
	}
	if err := authority.SaveKey(path, key); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (kid %s)\n", path, key.KeyID())
	return nil
}
