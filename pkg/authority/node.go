package authority

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// Node credentials are compact binary statements rather than JWS: each
// mesh node carries its credential in its gossip metadata, which memberlist
// caps at 512 bytes, and a JWS of the same claims is about 500 bytes.
//
// Layout (all integers big-endian):
//
//	magic "PNC1" | 8-byte authority key ref | iat int64 | exp int64 |
//	WireGuard key (32) | node key (32) | id len u8 | id | region len u8 |
//	region | Ed25519 signature (64)
//
// The key ref is the first 8 bytes of the SHA-256 JWK thumbprint of the
// authority key (its kid); the signature covers nodeCredentialContext and
// every byte before it.
const (
	nodeCredMagic         = "PNC1"
	nodeCredentialContext = "postern node credential v1\x00"
	kidPrefixLen          = 8
	nodeCredFixed         = len(nodeCredMagic) + kidPrefixLen + 8 + 8 + wgkey.Len + ed25519.PublicKeySize + 2 + ed25519.SignatureSize
	// MaxNodeCredentialSize bounds an encoded node credential.
	MaxNodeCredentialSize = nodeCredFixed + 2*64
	// DefaultNodeCredentialTTL is the suggested lifetime of a node
	// credential.
	DefaultNodeCredentialTTL = 365 * 24 * time.Hour
	// MaxNodeCredentialTTL is the longest lifetime of a node credential.
	MaxNodeCredentialTTL = 2 * 366 * 24 * time.Hour
)

// NodeCredential is a verified (or just issued) node credential: the
// authority's statement that the mesh node NodeID in Region owns the
// WireGuard key WGKey and the Ed25519 node key NodeKey until Expires.
// Only a node holding one joins the gossip, peers over WireGuard, passes
// the relay gate and has its gossiped facts believed.
type NodeCredential struct {
	// NodeID is the node's id in the cluster.
	NodeID string
	// Region is the node's region.
	Region string
	// WGKey is the node's WireGuard public key.
	WGKey wgkey.Public
	// NodeKey is the public half of the node's own signing key.
	NodeKey ed25519.PublicKey
	// IssuedAt and Expires bound the credential.
	IssuedAt, Expires time.Time
	// raw is the encoded, signed credential.
	raw []byte
}

// Bytes returns the encoded credential (nil for the zero value).
func (c NodeCredential) Bytes() []byte { return c.raw }

// String returns the encoded credential in unpadded base64url, the form
// of the credential file.
func (c NodeCredential) String() string { return base64.RawURLEncoding.EncodeToString(c.raw) }

// IsZero reports whether c holds no credential.
func (c NodeCredential) IsZero() bool { return len(c.raw) == 0 }

// LogValue logs the credential's public facts.
func (c NodeCredential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("node_id", c.NodeID), slog.String("region", c.Region),
		slog.String("wg_key", c.WGKey.Short()), slog.Time("expires", c.Expires))
}

// ValidNodeID reports whether s may be a node id or a region: 1 to 64
// characters of letters, digits, '.', '_' and '-', starting with a letter
// or digit.
func ValidNodeID(s string) bool { return groupRE.MatchString(s) }

// kidPrefix returns the key ref of pub in node credentials.
func kidPrefix(pub ed25519.PublicKey) [kidPrefixLen]byte {
	var p [kidPrefixLen]byte
	raw, _ := base64.RawURLEncoding.DecodeString(KeyID(pub))
	copy(p[:], raw)
	return p
}

// IssueNodeCredential signs a credential for mesh node id in region with
// WireGuard key wg and node key nodeKey, valid from now for ttl
// (0 < ttl ≤ MaxNodeCredentialTTL).
func (a *Authority) IssueNodeCredential(id, region string, wg wgkey.Public, nodeKey ed25519.PublicKey, ttl time.Duration) (NodeCredential, error) {
	switch {
	case !ValidNodeID(id) || !ValidNodeID(region):
		return NodeCredential{}, fmt.Errorf("authority: issue node credential: node id %.80q or region %.80q is not valid: %w", id, region, ErrInvalidArgument)
	case wg.IsZero() || len(nodeKey) != ed25519.PublicKeySize:
		return NodeCredential{}, fmt.Errorf("authority: issue node credential: a WireGuard key and an Ed25519 node key are required: %w", ErrInvalidArgument)
	case ttl <= 0 || ttl > MaxNodeCredentialTTL:
		return NodeCredential{}, fmt.Errorf("authority: issue node credential: ttl %v out of range (0, %v]: %w", ttl, MaxNodeCredentialTTL, ErrInvalidArgument)
	}
	now := a.now().Truncate(time.Second)
	var b bytes.Buffer
	b.WriteString(nodeCredMagic)
	ref := kidPrefix(a.key.Public())
	b.Write(ref[:])
	binary.Write(&b, binary.BigEndian, now.Unix())
	binary.Write(&b, binary.BigEndian, now.Add(ttl).Unix())
	b.Write(wg[:])
	b.Write(nodeKey)
	b.WriteByte(byte(len(id)))
	b.WriteString(id)
	b.WriteByte(byte(len(region)))
	b.WriteString(region)
	b.Write(a.key.Sign(append([]byte(nodeCredentialContext), b.Bytes()...)))
	return parseNodeCredential(b.Bytes())
}

// parseNodeCredential decodes b without checking the signature.
func parseNodeCredential(b []byte) (NodeCredential, error) {
	if len(b) < nodeCredFixed || len(b) > MaxNodeCredentialSize || string(b[:4]) != nodeCredMagic {
		return NodeCredential{}, fmt.Errorf("node credential: %d bytes or bad magic: %w", len(b), ErrMalformed)
	}
	p := b[4+kidPrefixLen:]
	c := NodeCredential{raw: bytes.Clone(b)}
	c.IssuedAt = time.Unix(int64(binary.BigEndian.Uint64(p)), 0)
	c.Expires = time.Unix(int64(binary.BigEndian.Uint64(p[8:])), 0)
	p = p[16:]
	copy(c.WGKey[:], p)
	c.NodeKey = ed25519.PublicKey(bytes.Clone(p[wgkey.Len : wgkey.Len+ed25519.PublicKeySize]))
	p = p[wgkey.Len+ed25519.PublicKeySize:]
	var ok bool
	if c.NodeID, p, ok = cutString(p); !ok {
		return NodeCredential{}, fmt.Errorf("node credential: id: %w", ErrMalformed)
	}
	if c.Region, p, ok = cutString(p); !ok {
		return NodeCredential{}, fmt.Errorf("node credential: region: %w", ErrMalformed)
	}
	if len(p) != ed25519.SignatureSize {
		return NodeCredential{}, fmt.Errorf("node credential: trailing bytes: %w", ErrMalformed)
	}
	if !ValidNodeID(c.NodeID) || !ValidNodeID(c.Region) || c.WGKey.IsZero() {
		return NodeCredential{}, fmt.Errorf("node credential: id, region or key ill-formed: %w", ErrMalformed)
	}
	return c, nil
}

func cutString(p []byte) (string, []byte, bool) {
	if len(p) < 1 || len(p) < 1+int(p[0]) {
		return "", nil, false
	}
	n := int(p[0])
	return string(p[1 : 1+n]), p[1+n:], true
}

// VerifyNodeCredential checks an encoded node credential: signed by a key
// this authority verifies with, within its validity (with the skew), well
// formed. It is safe to call on untrusted input of any size.
func (a *Authority) VerifyNodeCredential(b []byte) (NodeCredential, error) {
	c, err := parseNodeCredential(b)
	if err != nil {
		return NodeCredential{}, fmt.Errorf("authority: verify %w", err)
	}
	var ref [kidPrefixLen]byte
	copy(ref[:], b[4:])
	pub, ok := a.byPrefix[ref]
	if !ok {
		return NodeCredential{}, fmt.Errorf("authority: verify node credential of %.64q: %w", c.NodeID, ErrUnknownKey)
	}
	body := b[:len(b)-ed25519.SignatureSize]
	if !ed25519.Verify(pub, append([]byte(nodeCredentialContext), body...), b[len(body):]) {
		return NodeCredential{}, fmt.Errorf("authority: verify node credential of %.64q: %w", c.NodeID, ErrBadSignature)
	}
	now := a.now()
	if now.Add(a.skew).Before(c.IssuedAt) {
		return NodeCredential{}, fmt.Errorf("authority: verify node credential of %s: issued %s, after now: %w", c.NodeID, c.IssuedAt.UTC().Format(time.RFC3339), ErrNotYetValid)
	}
	if !now.Add(-a.skew).Before(c.Expires) {
		return NodeCredential{}, fmt.Errorf("authority: verify node credential of %s: expired at %s: %w", c.NodeID, c.Expires.UTC().Format(time.RFC3339), ErrExpired)
	}
	return c, nil
}

// DecodeNodeCredential decodes the text form (base64url, as String and the
// credential file hold it) without verifying it.
func DecodeNodeCredential(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) > MaxNodeCredentialSize {
		return nil, fmt.Errorf("authority: node credential: not base64url of at most %d bytes: %w", MaxNodeCredentialSize, ErrMalformed)
	}
	return b, nil
}

// SaveNodeCredential writes c's text form to path, mode 0600, atomically.
func SaveNodeCredential(path string, c NodeCredential) error {
	if c.IsZero() {
		return fmt.Errorf("authority: save node credential: empty: %w", ErrInvalidArgument)
	}
	if err := wgkey.WriteFileAtomic(path, []byte(c.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("authority: save node credential: %w", err)
	}
	return nil
}

// LoadNodeCredential reads the credential file at path and verifies it.
func (a *Authority) LoadNodeCredential(path string) (NodeCredential, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NodeCredential{}, fmt.Errorf("authority: node credential %s does not exist; mint it with \"meshd node credential\": %w", path, err)
	}
	if err != nil {
		return NodeCredential{}, fmt.Errorf("authority: node credential: %w", err)
	}
	b, err := DecodeNodeCredential(string(data))
	if err != nil {
		return NodeCredential{}, fmt.Errorf("authority: node credential %s: %w", path, err)
	}
	return a.VerifyNodeCredential(b)
}

// SignatureContext prefixes every message a node key signs for the
// gossip, so that a node key's signature is never valid as anything else
// (a node credential is signed by the authority key under its own
// context).
const SignatureContext = "postern gossip v1\x00"

// VerifyNodeSignature reports whether sig is c's node key's signature of
// msg under SignatureContext.
func (c NodeCredential) VerifyNodeSignature(msg, sig []byte) bool {
	if len(c.NodeKey) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(c.NodeKey, append([]byte(SignatureContext), msg...), sig)
}

// SignAsNode signs msg with the node key k under SignatureContext, as
// VerifyNodeSignature checks it.
func SignAsNode(k Key, msg []byte) []byte {
	return k.Sign(append([]byte(SignatureContext), msg...))
}
