package nodecred

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
)

// MarshalPublicKey returns the standard base64 form of an Ed25519 public
// key, as ParsePublicKey reads it.
func MarshalPublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses an Ed25519 public key given in standard base64 (32
// bytes) or as a PEM "PUBLIC KEY" (PKIX) block.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if block, _ := pem.Decode([]byte(s)); block != nil {
		return parsePEM(block)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("parse public key: want %d bytes of base64 or a PEM block", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

func parsePEM(block *pem.Block) (ed25519.PublicKey, error) {
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("parse public key: PEM block %q, want PUBLIC KEY", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: got %T, want an Ed25519 key", k)
	}
	return pub, nil
}

// ParsePublicKeys parses one or more Ed25519 public keys: PEM "PUBLIC
// KEY" blocks one after another, or base64 keys separated by commas or
// white space (the old key and the new during a rotation).
func ParsePublicKeys(s string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	rest := []byte(strings.TrimSpace(s))
	if block, _ := pem.Decode(rest); block != nil {
		for len(strings.TrimSpace(string(rest))) > 0 {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				return nil, fmt.Errorf("parse public keys: text after the PEM blocks")
			}
			k, err := parsePEM(block)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
		return keys, nil
	}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
		k, err := ParsePublicKey(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("parse public keys: none given")
	}
	return keys, nil
}
