package meshnode

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/wgkey"
)

// Files in a node's state directory.
const (
	wgKeyFile      = "wg.key"            // WireGuard private key (0600)
	nodeKeyFile    = "node.key"          // Ed25519 node key (0600): signs this node's gossip
	nodeCredFile   = "node.cred"         // authority-signed node credential
	usedTokensFile = "used-tokens.json"  // enrolment tokens burnt
	revokedFile    = "revocations.json"  // the deny-list journal
	rosterFile     = "mesh-members.json" // the mesh nodes this node knows, for the redemption majority
)

// NodeCredentialPath returns where a node with state directory dir keeps
// its node credential by default.
func NodeCredentialPath(dir string) string { return filepath.Join(dir, nodeCredFile) }

// Keys are a node's public keys, which its node credential names.
type Keys struct {
	// WG is the node's WireGuard public key.
	WG wgkey.Public
	// Node is the public half of the node's Ed25519 node key.
	Node ed25519.PublicKey
}

// InitKeys creates (or loads) the WireGuard key and the node key in the
// state directory dir, mode 0600, and returns their public halves: what
// "meshd node credential" signs for this node.
func InitKeys(dir string) (Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Keys{}, fmt.Errorf("meshnode: state directory: %w", err)
	}
	wg, err := wgkey.LoadOrCreate(filepath.Join(dir, wgKeyFile))
	if err != nil {
		return Keys{}, fmt.Errorf("meshnode: %w", err)
	}
	nk, err := authority.LoadOrCreateKey(filepath.Join(dir, nodeKeyFile))
	if err != nil {
		return Keys{}, fmt.Errorf("meshnode: node key: %w", err)
	}
	return Keys{WG: wg.Public(), Node: nk.Public()}, nil
}

// exists reports whether path exists; any error but "not exist" counts as
// existing, so that the open that follows reports it.
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// checkCredential checks that cred is this node's: its id, region and
// both keys.
func checkCredential(cred authority.NodeCredential, id, region string, wg wgkey.Public, nk ed25519.PublicKey) error {
	switch {
	case cred.NodeID != id || cred.Region != region:
		return fmt.Errorf("meshnode: the node credential is for node %q in %q, not %q in %q; mint one for this node with \"meshd node credential\"", cred.NodeID, cred.Region, id, region)
	case cred.WGKey != wg:
		return fmt.Errorf("meshnode: the node credential names another WireGuard key than %s in the state directory; mint a new one with \"meshd node credential\"", wgKeyFile)
	case !cred.NodeKey.Equal(nk):
		return fmt.Errorf("meshnode: the node credential names another node key than %s in the state directory; mint a new one with \"meshd node credential\"", nodeKeyFile)
	}
	return nil
}
