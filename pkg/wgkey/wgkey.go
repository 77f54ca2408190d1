// Package wgkey holds WireGuard keys and the tunnel addresses derived from them.
//
// It sits below every transport: a mesh node and a connector each own one
// private key, which never leaves the host, and every tunnel address in the
// mesh is a pure function of a public key, so no node allocates addresses.
package wgkey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"

	"golang.org/x/crypto/curve25519"
)

// Len is the length in bytes of a WireGuard key.
const Len = 32

// Private is a Curve25519 private key. Its String and LogValue redact it.
type Private [Len]byte

// Public is a Curve25519 public key.
type Public [Len]byte

// Generate returns a new random, clamped private key.
func Generate() (Private, error) {
	var k Private
	if _, err := rand.Read(k[:]); err != nil {
		return Private{}, fmt.Errorf("wgkey: generate: %w", err)
	}
	k.clamp()
	return k, nil
}

func (k *Private) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// IsZero reports whether k is the zero key.
func (k Private) IsZero() bool { return k == Private{} }

// Public returns the public key of k.
func (k Private) Public() Public {
	var p Public
	out, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// Only a low-order result fails, which a clamped key cannot give.
		panic("wgkey: " + err.Error())
	}
	copy(p[:], out)
	return p
}

// Hex returns k in the hex form that WireGuard's configuration protocol uses.
func (k Private) Hex() string { return hex.EncodeToString(k[:]) }

// String redacts the key.
func (k Private) String() string { return "[private key redacted]" }

// LogValue redacts the key in structured logs.
func (k Private) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// ParsePrivate parses a base64 private key.
func ParsePrivate(s string) (Private, error) {
	var k Private
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != Len {
		return Private{}, fmt.Errorf("wgkey: parse private key: want %d bytes of base64", Len)
	}
	copy(k[:], b)
	return k, nil
}

// base64 returns the standard base64 form of the private key, for files only.
func (k Private) base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// ParsePublic parses a base64 public key, as printed by String.
func ParsePublic(s string) (Public, error) {
	var p Public
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != Len {
		return Public{}, fmt.Errorf("wgkey: parse public key %q: want %d bytes of base64", truncate(s, 64), Len)
	}
	copy(p[:], b)
	if p.IsZero() {
		return Public{}, fmt.Errorf("wgkey: parse public key: zero key")
	}
	return p, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// IsZero reports whether p is the zero key.
func (p Public) IsZero() bool { return p == Public{} }

// String returns the base64 form of p.
func (p Public) String() string { return base64.StdEncoding.EncodeToString(p[:]) }

// Hex returns p in the hex form that WireGuard's configuration protocol uses.
func (p Public) Hex() string { return hex.EncodeToString(p[:]) }

// Short returns the first 8 characters of the base64 form, for logs.
func (p Public) Short() string { return p.String()[:8] }

// MarshalText implements encoding.TextMarshaler (base64).
func (p Public) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (base64).
func (p *Public) UnmarshalText(b []byte) error {
	k, err := ParsePublic(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// Prefix is the IPv6 unique-local prefix that all Postern tunnel addresses
// live in: fd70:6f73::/32 ("pos").
var Prefix = netip.MustParsePrefix("fd70:6f73::/32")

// Addr returns the tunnel address of p: Prefix followed by the first 96 bits
// of SHA-256 of the key.
func (p Public) Addr() netip.Addr {
	sum := sha256.Sum256(p[:])
	var a [16]byte
	pb := Prefix.Addr().As16()
	copy(a[:4], pb[:4])
	copy(a[4:], sum[:12])
	return netip.AddrFrom16(a)
}

// Shared returns the X25519 shared secret of k and peer, the same on both
// sides (k's owner with peer, peer's owner with k.Public()). It fails for
// a peer key of low order, whose result would be predictable.
func (k Private) Shared(peer Public) ([Len]byte, error) {
	out, err := curve25519.X25519(k[:], peer[:])
	if err != nil {
		return [Len]byte{}, fmt.Errorf("wgkey: shared secret: %w", err)
	}
	var s [Len]byte
	copy(s[:], out)
	return s, nil
}
