package session

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Keyset holds Ed25519 signing keys, each named by a kid (its RFC 7638
// thumbprint): one active key that signs, and any number of verify-only
// keys that stay published in the JWKS so tokens they signed before a
// rotation keep verifying until they expire.
//
// A Keyset is immutable and safe for concurrent use. It never prints its
// private keys: String, LogValue and %v show only the kids.
type Keyset struct {
	active string
	keys   []signingKey // in file order; the active key is among them
}

type signingKey struct {
	kid  string
	priv ed25519.PrivateKey
}

// keysetFile is the JSON form of a Keyset.
type keysetFile struct {
	Active string            `json:"active"`
	Keys   []jose.JSONWebKey `json:"keys"`
}

// GenerateKeyset returns a key set with one new active key.
func GenerateKeyset() (*Keyset, error) {
	k, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	return &Keyset{active: k.kid, keys: []signingKey{k}}, nil
}

func newSigningKey() (signingKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return signingKey{}, fmt.Errorf("generate key: %w", err)
	}
	kid, err := thumbprint(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return signingKey{}, err
	}
	return signingKey{kid: kid, priv: priv}, nil
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of pub, base64url
// without padding.
func thumbprint(pub ed25519.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// ParseKeyset parses the JSON form written by [Keyset.Marshal]:
// {"active":"<kid>","keys":[<private Ed25519 JWK>...]}. A key without kid
// gets its thumbprint; a kid that is not the key's thumbprint, a repeated
// kid, a public-only or non-Ed25519 key, and an active kid that is not
// listed are all refused with [ErrBadKeyset].
func ParseKeyset(data []byte) (*Keyset, error) {
	var f keysetFile
	if err := json.Unmarshal(data, &f); err != nil {
		// json errors may quote input: report only the class
		return nil, fmt.Errorf("parse keyset: %w: not a JSON key set", ErrBadKeyset)
	}
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("parse keyset: %w: no keys", ErrBadKeyset)
	}
	ks := &Keyset{active: f.Active}
	seen := make(map[string]bool, len(f.Keys))
	for i, jwk := range f.Keys {
		priv, ok := jwk.Key.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("parse keyset: %w: key #%d is not an Ed25519 private key", ErrBadKeyset, i+1)
		}
		kid, err := thumbprint(priv.Public().(ed25519.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("parse keyset: %w", err)
		}
		if jwk.KeyID != "" && jwk.KeyID != kid {
			return nil, fmt.Errorf("parse keyset: %w: key #%d: kid %q is not the key's RFC 7638 thumbprint", ErrBadKeyset, i+1, jwk.KeyID)
		}
		if seen[kid] {
			return nil, fmt.Errorf("parse keyset: %w: key %s listed twice", ErrBadKeyset, kid)
		}
		seen[kid] = true
		ks.keys = append(ks.keys, signingKey{kid: kid, priv: priv})
	}
	if !seen[ks.active] {
		return nil, fmt.Errorf("parse keyset: %w: active kid %q is not among the keys", ErrBadKeyset, ks.active)
	}
	return ks, nil
}

// Marshal returns the JSON form of the key set, private keys included:
// store it as a secret (mode 0600 file, Secrets Manager).
func (k *Keyset) Marshal() ([]byte, error) {
	f := keysetFile{Active: k.active}
	for _, sk := range k.keys {
		f.Keys = append(f.Keys, jose.JSONWebKey{Key: sk.priv, KeyID: sk.kid, Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	data, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("marshal keyset: %w", err)
	}
	return data, nil
}

// JWKS returns the public keys as a JSON Web Key Set, every key with its
// kid, "use":"sig" and "alg":"EdDSA", the active key first.
func (k *Keyset) JWKS() []byte {
	var set jose.JSONWebKeySet
	for _, sk := range k.ordered() {
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key: sk.priv.Public(), KeyID: sk.kid, Algorithm: string(jose.EdDSA), Use: "sig",
		})
	}
	data, err := json.Marshal(set)
	if err != nil {
		panic("session: marshal JWKS: " + err.Error()) // cannot happen: Ed25519 public keys always marshal
	}
	return data
}

// ordered returns the keys with the active one first.
func (k *Keyset) ordered() []signingKey {
	out := make([]signingKey, 0, len(k.keys))
	for _, sk := range k.keys {
		if sk.kid == k.active {
			out = append(out, sk)
		}
	}
	for _, sk := range k.keys {
		if sk.kid != k.active {
			out = append(out, sk)
		}
	}
	return out
}

// ActiveKID returns the kid of the key that signs.
func (k *Keyset) ActiveKID() string { return k.active }

// KIDs returns the kids of all keys, in file order.
func (k *Keyset) KIDs() []string {
	kids := make([]string, len(k.keys))
	for i, sk := range k.keys {
		kids[i] = sk.kid
	}
	return kids
}

// Rotate returns a new key set with a freshly generated active key; the
// current keys stay listed (verify-only) so existing tokens keep verifying.
// Publish the result, then retire old keys with [Keyset.Retire] once the
// longest session lifetime has passed.
func (k *Keyset) Rotate() (*Keyset, error) {
	nk, err := newSigningKey()
	if err != nil {
		return nil, fmt.Errorf("rotate keyset: %w", err)
	}
	keys := append(append([]signingKey(nil), k.keys...), nk)
	return &Keyset{active: nk.kid, keys: keys}, nil
}

// Retire returns a new key set without the key kid. The active key cannot
// be retired.
func (k *Keyset) Retire(kid string) (*Keyset, error) {
	if kid == k.active {
		return nil, fmt.Errorf("retire key: %w: %s is the active key", ErrBadKeyset, kid)
	}
	var keys []signingKey
	for _, sk := range k.keys {
		if sk.kid != kid {
			keys = append(keys, sk)
		}
	}
	if len(keys) == len(k.keys) {
		return nil, fmt.Errorf("retire key: %w: no key %s", ErrBadKeyset, kid)
	}
	return &Keyset{active: k.active, keys: keys}, nil
}

// String describes the key set by kids only.
func (k *Keyset) String() string {
	return fmt.Sprintf("Keyset{active: %s, keys: [%s]}", k.active, strings.Join(k.KIDs(), " "))
}

// GoString is like String, so %#v does not print private keys either.
func (k *Keyset) GoString() string { return k.String() }

// Format makes every fmt verb print [Keyset.String].
func (k *Keyset) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue logs the kids only.
func (k *Keyset) LogValue() slog.Value {
	return slog.GroupValue(slog.String("active", k.active), slog.Any("kids", k.KIDs()))
}

var (
	_ slog.LogValuer = (*Keyset)(nil)
	_ fmt.Stringer   = (*Keyset)(nil)
	_ fmt.Formatter  = (*Keyset)(nil)
)
