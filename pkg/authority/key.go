package authority

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/wgkey"
)

// Key is an Ed25519 signing key: the mesh authority's, or a mesh node's own
// node key (which signs the node's gossip facts). Its String, GoString and
// LogValue redact the private part; only the key id is shown.
type Key struct {
	priv ed25519.PrivateKey
}

// GenerateKey returns a new random authority key.
func GenerateKey() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("authority: generate key: %w", err)
	}
	return Key{priv: priv}, nil
}

// KeyFromSeed returns the authority key with the given 32-byte Ed25519 seed.
func KeyFromSeed(seed []byte) (Key, error) {
	if len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("authority: key from seed: got %d bytes, want %d: %w", len(seed), ed25519.SeedSize, ErrKeyFile)
	}
	return Key{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// IsZero reports whether k holds no key.
func (k Key) IsZero() bool { return len(k.priv) == 0 }

// Public returns the public half of k.
func (k Key) Public() ed25519.PublicKey {
	if k.IsZero() {
		return nil
	}
	return k.priv.Public().(ed25519.PublicKey)
}

// KeyID returns the RFC 7638 JWK thumbprint of k's public key, the kid that
// tokens signed with k carry.
func (k Key) KeyID() string {
	if k.IsZero() {
		return ""
	}
	return KeyID(k.Public())
}

// String redacts the key, showing only its key id.
func (k Key) String() string { return "ed25519 key " + k.KeyID() + " [private part redacted]" }

// Sign signs msg with k (Ed25519).
func (k Key) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// GoString redacts the key for %#v.
func (k Key) GoString() string { return k.String() }

// LogValue redacts the key in structured logs, showing only its key id.
func (k Key) LogValue() slog.Value { return slog.StringValue("kid:" + k.KeyID()) }

// KeyID returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of an Ed25519 public key.
func KeyID(pub ed25519.PublicKey) string {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		// Only a key of the wrong length fails; callers pass whole keys.
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// MarshalPublicKey returns the standard base64 form of an Ed25519 public
// key, as ParsePublicKey reads it; operators copy it between nodes to add a
// verification key during rotation, and to the auth functions
// (POSTERN_MESH_AUTHORITY_PUBLIC_KEY).
func MarshalPublicKey(pub ed25519.PublicKey) string { return nodecred.MarshalPublicKey(pub) }

// ParsePublicKey parses an Ed25519 public key given in standard base64 (32
// bytes) or as a PEM "PUBLIC KEY" (PKIX) block.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	pub, err := nodecred.ParsePublicKey(s)
	if err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	return pub, nil
}

// LoadKey reads an authority key from path: a PEM "PRIVATE KEY" (PKCS#8)
// block or the base64 32-byte seed. It refuses a file that group or others
// may read.
func LoadKey(path string) (Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Key{}, fmt.Errorf("authority: load key %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("authority: load key %s: mode %v is too open, want 0600 (run chmod 600 %s): %w", path, perm, path, ErrKeyFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("authority: load key %s: %w", path, err)
	}
	k, err := parseKey(b)
	if err != nil {
		return Key{}, fmt.Errorf("authority: load key %s: %w", path, err)
	}
	return k, nil
}

// parseKey parses PEM PKCS#8 or a base64 seed. Its errors never quote the
// input.
func parseKey(b []byte) (Key, error) {
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "PRIVATE KEY" {
			return Key{}, fmt.Errorf("PEM block %q, want PRIVATE KEY: %w", block.Type, ErrKeyFile)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return Key{}, fmt.Errorf("not a PKCS#8 key: %w", ErrKeyFile)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return Key{}, fmt.Errorf("got a %T, want an Ed25519 key: %w", k, ErrKeyFile)
		}
		return Key{priv: priv}, nil
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return Key{}, fmt.Errorf("neither PEM nor base64: %w", ErrKeyFile)
	}
	return KeyFromSeed(seed)
}

// SaveKey writes k to path as a PEM PKCS#8 block, mode 0600, atomically.
func SaveKey(path string, k Key) error {
	if k.IsZero() {
		return fmt.Errorf("authority: save key %s: zero key: %w", path, ErrInvalidArgument)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return fmt.Errorf("authority: save key %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := wgkey.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("authority: save key: %w", err)
	}
	return nil
}

// LoadOrCreateKey reads the key at path, or generates one and writes it
// there (mode 0600, atomically) when the file does not exist. Any other
// problem with an existing file is an error; the file is never replaced.
func LoadOrCreateKey(path string) (Key, error) {
	k, err := LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateKey(); err != nil {
		return Key{}, err
	}
	if err := SaveKey(path, k); err != nil {
		return Key{}, err
	}
	return k, nil
}
