// Package nodekeys is the mesh's identity-assertion key set: the public
// node keys of every mesh node, learned only from node credentials that
// the mesh authority signed (each node carries its credential in its
// gossip metadata), served by every node as one JSON Web Key Set. A
// backend behind any number of mesh nodes thus verifies the
// X-Postern-Assertion of each with one JWKS URL and one issuer.
//
// It sits beside the request path: pkg/meshnode feeds it the credentials
// of the cluster's members, pkg/edge serves its JWKS at
// /.postern/jwks.json on every app host, and pkg/session's
// AssertionSigner signs with the node key it lists.
package nodekeys

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/nodecred"
)

// DefaultLabel is the cluster label when none is set (meshd's
// --cluster-label default).
const DefaultLabel = "postern"

// DefaultRetain is Config.Retain's zero value: twice the edge's default
// assertion lifetime (5m), so that every assertion a departed node minted
// expires before its key leaves the set.
const DefaultRetain = 10 * time.Minute

// Issuer returns the iss of the identity assertions of the mesh whose
// cluster label is label (empty means DefaultLabel):
// "urn:postern:mesh:<label>". The label is the same on every node of a
// mesh by construction (the gossip ignores nodes with another), it survives
// the replacement of any node and the rotation of any key, and no node
// serving one mesh's apps can carry another's.
func Issuer(label string) string {
	if label == "" {
		label = DefaultLabel
	}
	return "urn:postern:mesh:" + label
}

// Verifier checks an encoded node credential against the mesh authority's
// keys (signature, validity, form); *authority.Authority implements it.
// It must be safe for concurrent use and for untrusted input.
type Verifier interface {
	VerifyNodeCredential(b []byte) (nodecred.Credential, error)
}

// Config configures a [Set].
type Config struct {
	// Verifier checks every credential before its key is listed
	// (required): a key the authority did not certify is never served.
	Verifier Verifier
	// Retain is how long the key of a node that is no longer present
	// (departed, dead, or rotated to a new key) stays listed, so that the
	// assertions it signed before still verify; never past its
	// credential's expiry. Zero means DefaultRetain.
	Retain time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Key is one listed node key.
type Key struct {
	// NodeID and Region are the node's, as its credential names them.
	NodeID, Region string
	// KeyID is the kid: the RFC 7638 thumbprint of Key.
	KeyID string
	// Key is the node key's public half.
	Key ed25519.PublicKey
	// Expires is the end of the credential that certifies the key.
	Expires time.Time
	// Present says the node was present at the last Update; LastSeen is
	// when it last was.
	Present  bool
	LastSeen time.Time
}

// Set is the key set. It is safe for concurrent use.
type Set struct {
	cfg Config

	mu       sync.Mutex // guards the following
	keys     map[string]*Key
	verified map[string]nodecred.Credential // by encoded credential: checked at the last Update
}

// New returns an empty set.
func New(cfg Config) (*Set, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("nodekeys: new: a credential verifier is required")
	}
	if cfg.Retain == 0 {
		cfg.Retain = DefaultRetain
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Set{cfg: cfg, keys: map[string]*Key{}, verified: map[string]nodecred.Credential{}}, nil
}

// Update records the node credentials (encoded) of the nodes present
// now. Each is verified; one that does not verify changes nothing and is
// reported in the returned error, the others are recorded regardless.
// Nodes absent from creds keep their keys for Config.Retain after they
// were last present; no key stays past its credential's expiry.
func (s *Set) Update(creds [][]byte) error {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	var good []nodecred.Credential
	verified := make(map[string]nodecred.Credential, len(creds))
	for _, b := range creds {
		// A credential verified at the last Update is not checked again
		// until it expires.
		c, ok := s.verified[string(b)]
		if !ok || !now.Before(c.Expires) {
			var err error
			if c, err = s.cfg.Verifier.VerifyNodeCredential(b); err != nil {
				errs = append(errs, fmt.Errorf("nodekeys: %w", err))
				continue
			}
		}
		verified[string(b)] = c
		good = append(good, c)
	}
	s.verified = verified
	for _, k := range s.keys {
		k.Present = false
	}
	for _, c := range good {
		kid := nodecred.KeyID(c.NodeKey)
		k, ok := s.keys[kid]
		if !ok || k.NodeID != c.NodeID {
			// A key is listed for the node its newest credential names.
			k = &Key{KeyID: kid, Key: c.NodeKey}
			s.keys[kid] = k
		}
		k.NodeID, k.Region = c.NodeID, c.Region
		if c.Expires.After(k.Expires) {
			k.Expires = c.Expires
		}
		k.Present, k.LastSeen = true, now
	}
	s.pruneLocked(now)
	return errors.Join(errs...)
}

// pruneLocked drops the keys past their credential or their retention.
func (s *Set) pruneLocked(now time.Time) {
	for kid, k := range s.keys {
		if !s.listed(k, now) {
			delete(s.keys, kid)
		}
	}
}

// listed reports whether k is served at now.
func (s *Set) listed(k *Key, now time.Time) bool {
	return now.Before(k.Expires) && (k.Present || now.Before(k.LastSeen.Add(s.cfg.Retain)))
}

// Keys returns the listed keys, sorted by node id, then kid.
func (s *Set) Keys() []Key {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Key, 0, len(s.keys))
	for _, k := range s.keys {
		if s.listed(k, now) {
			out = append(out, *k)
		}
	}
	slices.SortFunc(out, func(a, b Key) int {
		if c := strings.Compare(a.NodeID, b.NodeID); c != 0 {
			return c
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
	return out
}

// JWKS returns the listed keys as a JSON Web Key Set, each with its kid,
// "use":"sig" and "alg":"EdDSA", in the order of Keys.
func (s *Set) JWKS() []byte {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range s.Keys() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Key, KeyID: k.KeyID, Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic("nodekeys: marshal JWKS: " + err.Error()) // cannot happen: Ed25519 public keys always marshal
	}
	return b
}
