package authority

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/wgkey"
)

const (
	// MaxNodeCredentialSize bounds an encoded node credential.
	MaxNodeCredentialSize = nodecred.MaxSize
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
// the relay gate and has its gossiped facts believed. Its wire format is
// pkg/nodecred's.
type NodeCredential = nodecred.Credential

// ValidNodeID reports whether s may be a node id or a region: 1 to 64
// characters of letters, digits, '.', '_' and '-', starting with a letter
// or digit.
func ValidNodeID(s string) bool { return nodecred.ValidID(s) }

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
	c, err := nodecred.Encode(a.key.Public(), a.key.Sign, id, region, wg, nodeKey, now, now.Add(ttl))
	if err != nil {
		return NodeCredential{}, fmt.Errorf("authority: issue %w", err)
	}
	return c, nil
}

// VerifyNodeCredential checks an encoded node credential: signed by a key
// this authority verifies with, within its validity (with the skew), well
// formed. It is safe to call on untrusted input of any size.
func (a *Authority) VerifyNodeCredential(b []byte) (NodeCredential, error) {
	c, err := a.nodes.Verify(b)
	if err != nil {
		return NodeCredential{}, fmt.Errorf("authority: %w", err)
	}
	return c, nil
}

// DecodeNodeCredential decodes the text form (base64url, as String and the
// credential file hold it) without verifying it.
func DecodeNodeCredential(s string) ([]byte, error) {
	b, err := nodecred.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("authority: %w", err)
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
// context, an app request is a JWS whose signing input starts otherwise).
const SignatureContext = nodecred.GossipContext

// SignAsNode signs msg with the node key k under SignatureContext, as
// NodeCredential.VerifyNodeSignature checks it.
func SignAsNode(k Key, msg []byte) []byte {
	return k.Sign(append([]byte(SignatureContext), msg...))
}
