package nodecred

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"log/slog"
	"regexp"
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
// authority key (its kid); the signature covers signatureContext and
// every byte before it.
const (
	magic            = "PNC1"
	signatureContext = "postern node credential v1\x00"
	keyRefLen        = 8
	fixedLen         = len(magic) + keyRefLen + 8 + 8 + wgkey.Len + ed25519.PublicKeySize + 2 + ed25519.SignatureSize
	// MaxSize bounds an encoded node credential.
	MaxSize = fixedLen + 2*64
)

// Credential is a verified (or just issued) node credential: the
// authority's statement that the mesh node NodeID in Region owns the
// WireGuard key WGKey and the Ed25519 node key NodeKey until Expires.
type Credential struct {
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
func (c Credential) Bytes() []byte { return c.raw }

// String returns the encoded credential in unpadded base64url, the form
// of the credential file.
func (c Credential) String() string { return base64.RawURLEncoding.EncodeToString(c.raw) }

// IsZero reports whether c holds no credential.
func (c Credential) IsZero() bool { return len(c.raw) == 0 }

// LogValue logs the credential's public facts.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("node_id", c.NodeID), slog.String("region", c.Region),
		slog.String("wg_key", c.WGKey.Short()), slog.Time("expires", c.Expires))
}

// idRE is what a node id or region may be.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidID reports whether s may be a node id or a region: 1 to 64
// characters of letters, digits, '.', '_' and '-', starting with a letter
// or digit.
func ValidID(s string) bool { return idRE.MatchString(s) }

// KeyID returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of an Ed25519 public key: the kid of tokens signed with it.
func KeyID(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return ""
	}
	// {"crv":"Ed25519","kty":"OKP","x":"..."}: members in lexical order,
	// no white space (RFC 8037 §2, RFC 7638 §3).
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// keyRef returns the key ref of pub in node credentials.
func keyRef(pub ed25519.PublicKey) [keyRefLen]byte {
	var p [keyRefLen]byte
	raw, _ := base64.RawURLEncoding.DecodeString(KeyID(pub))
	copy(p[:], raw)
	return p
}

// Encode builds a credential for node id in region, with WireGuard key wg
// and node key nodeKey, valid from iat to exp, signed by sign, the Ed25519
// signature of the authority key whose public half is pub. It checks
// nothing but the field lengths: callers validate.
func Encode(pub ed25519.PublicKey, sign func(msg []byte) []byte, id, region string, wg wgkey.Public, nodeKey ed25519.PublicKey, iat, exp time.Time) (Credential, error) {
	if len(pub) != ed25519.PublicKeySize || len(id) > 64 || len(region) > 64 || len(nodeKey) != ed25519.PublicKeySize {
		return Credential{}, fmt.Errorf("node credential: encode: %w", ErrMalformed)
	}
	var b bytes.Buffer
	b.WriteString(magic)
	ref := keyRef(pub)
	b.Write(ref[:])
	binary.Write(&b, binary.BigEndian, iat.Unix())
	binary.Write(&b, binary.BigEndian, exp.Unix())
	b.Write(wg[:])
	b.Write(nodeKey)
	b.WriteByte(byte(len(id)))
	b.WriteString(id)
	b.WriteByte(byte(len(region)))
	b.WriteString(region)
	b.Write(sign(append([]byte(signatureContext), b.Bytes()...)))
	return Parse(b.Bytes())
}

// Parse decodes b without checking the signature or the times.
func Parse(b []byte) (Credential, error) {
	if len(b) < fixedLen || len(b) > MaxSize || string(b[:4]) != magic {
		return Credential{}, fmt.Errorf("node credential: %d bytes or bad magic: %w", len(b), ErrMalformed)
	}
	p := b[4+keyRefLen:]
	c := Credential{raw: bytes.Clone(b)}
	c.IssuedAt = time.Unix(int64(binary.BigEndian.Uint64(p)), 0)
	c.Expires = time.Unix(int64(binary.BigEndian.Uint64(p[8:])), 0)
	p = p[16:]
	copy(c.WGKey[:], p)
	c.NodeKey = ed25519.PublicKey(bytes.Clone(p[wgkey.Len : wgkey.Len+ed25519.PublicKeySize]))
	p = p[wgkey.Len+ed25519.PublicKeySize:]
	var ok bool
	if c.NodeID, p, ok = cutString(p); !ok {
		return Credential{}, fmt.Errorf("node credential: id: %w", ErrMalformed)
	}
	if c.Region, p, ok = cutString(p); !ok {
		return Credential{}, fmt.Errorf("node credential: region: %w", ErrMalformed)
	}
	if len(p) != ed25519.SignatureSize {
		return Credential{}, fmt.Errorf("node credential: trailing bytes: %w", ErrMalformed)
	}
	if !ValidID(c.NodeID) || !ValidID(c.Region) || c.WGKey.IsZero() {
		return Credential{}, fmt.Errorf("node credential: id, region or key ill-formed: %w", ErrMalformed)
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

// Decode decodes the text form (base64url, as String and the credential
// file hold it) without verifying it.
func Decode(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) > MaxSize {
		return nil, fmt.Errorf("node credential: not base64url of at most %d bytes: %w", MaxSize, ErrMalformed)
	}
	return b, nil
}

// Verifier checks node credentials against the authority's public keys.
// It is immutable after NewVerifier and safe for concurrent use.
type Verifier struct {
	byRef map[[keyRefLen]byte]ed25519.PublicKey
	now   func() time.Time
	skew  time.Duration
}

// NewVerifier returns a Verifier trusting the authority keys keys, with
// clock now (nil means time.Now) and clock skew tolerance skew.
func NewVerifier(keys []ed25519.PublicKey, now func() time.Time, skew time.Duration) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("node credential verifier: no authority key: %w", ErrUnknownKey)
	}
	v := &Verifier{byRef: make(map[[keyRefLen]byte]ed25519.PublicKey, len(keys)), now: now, skew: skew}
	for i, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("node credential verifier: key %d has %d bytes, want %d: %w", i, len(k), ed25519.PublicKeySize, ErrMalformed)
		}
		v.byRef[keyRef(k)] = k
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Verify checks an encoded node credential: signed by a trusted key,
// within its validity (with the skew), well formed. It is safe to call on
// untrusted input of any size.
func (v *Verifier) Verify(b []byte) (Credential, error) {
	c, err := Parse(b)
	if err != nil {
		return Credential{}, fmt.Errorf("verify %w", err)
	}
	var ref [keyRefLen]byte
	copy(ref[:], b[4:])
	pub, ok := v.byRef[ref]
	if !ok {
		return Credential{}, fmt.Errorf("verify node credential of %.64q: %w", c.NodeID, ErrUnknownKey)
	}
	body := b[:len(b)-ed25519.SignatureSize]
	if !ed25519.Verify(pub, append([]byte(signatureContext), body...), b[len(body):]) {
		return Credential{}, fmt.Errorf("verify node credential of %.64q: %w", c.NodeID, ErrBadSignature)
	}
	now := v.now()
	if now.Add(v.skew).Before(c.IssuedAt) {
		return Credential{}, fmt.Errorf("verify node credential of %s: issued %s, after now: %w", c.NodeID, c.IssuedAt.UTC().Format(time.RFC3339), ErrNotYetValid)
	}
	if !now.Add(-v.skew).Before(c.Expires) {
		return Credential{}, fmt.Errorf("verify node credential of %s: expired at %s: %w", c.NodeID, c.Expires.UTC().Format(time.RFC3339), ErrExpired)
	}
	return c, nil
}

// GossipContext prefixes every message a node key signs for the gossip,
// so that a node key's signature is never valid as anything else.
const GossipContext = "postern gossip v1\x00"

// VerifyNodeSignature reports whether sig is c's node key's signature of
// msg under GossipContext.
func (c Credential) VerifyNodeSignature(msg, sig []byte) bool {
	if len(c.NodeKey) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(c.NodeKey, append([]byte(GossipContext), msg...), sig)
}
