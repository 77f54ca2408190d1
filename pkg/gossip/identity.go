package gossip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/hashicorp/memberlist"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/revoke"
)

// The gossip keyring only encrypts. Everything a node believes about
// another comes with that node's authority-signed node credential and a
// signature by the node key it names:
//
//   - metadata (memberlist's node meta) carries the credential and is
//     signed, so NotifyAlive refuses any node without one: it never becomes
//     a member, a WireGuard peer or a relay;
//   - each attachment entry is signed by the node it describes and is
//     checked against that node's credential (from its metadata);
//   - token, revocation, leave and push-pull messages travel in an
//     envelope that carries the sender's credential and signature, so they
//     verify on their own.
//
// What a keyring holder without a credential can still do is what the
// encryption key allows: read the gossip and disturb the failure detector
// (its suspicions are refuted by the accused node). It cannot join,
// relay, or make anyone believe an attachment, a used token or a
// revocation.

// Identity is this node's proof of who it is.
type Identity struct {
	// Credential is the node's authority-signed node credential; its
	// NodeID, Region and WGKey must equal the metadata's.
	Credential authority.NodeCredential
	// Key is the node key whose public half the credential names.
	Key authority.Key
}

// Verifier checks what other nodes present; *authority.Authority
// implements it. Its methods must be safe for concurrent use and fast:
// they are called from memberlist's goroutines with its locks held.
type Verifier interface {
	// VerifyNodeCredential checks an encoded node credential.
	VerifyNodeCredential(b []byte) (authority.NodeCredential, error)
	// VerifyRevocation checks an admin revocation and returns its entry.
	VerifyRevocation(s string) (revoke.Entry, error)
}

// RevocationStore is the deny-list that the cluster spreads;
// *revoke.List implements it. Its methods must be safe for concurrent use
// and must not block for long.
type RevocationStore interface {
	// Records returns every record held.
	Records() []revoke.Record
	// Has reports whether the store already covers r.
	Has(r revoke.Record) bool
	// Add adds records and returns those that revoke more than before.
	Add(recs ...revoke.Record) ([]revoke.Record, error)
}

// credCache remembers verified credentials by their encoding, so that a
// message costs one signature check (its own), not two, and verified
// metadata by its encoding: memberlist hands the same alive message to
// NotifyAlive again and again as it spreads, with its locks held.
type credCache struct {
	mu    sync.Mutex // guards the following
	m     map[string]authority.NodeCredential
	metas map[string]verifiedMeta
}

// verifiedMeta is a remote node's metadata that verified.
type verifiedMeta struct {
	meta Meta
	cred authority.NodeCredential
}

// maxCachedCreds bounds the cache; it is cleared when full.
const maxCachedCreds = 1024

// verifyCred verifies an encoded credential, through the cache; an
// expired cached credential is verified again (and refused).
func (c *Cluster) verifyCred(b []byte) (authority.NodeCredential, error) {
	c.creds.mu.Lock()
	cred, ok := c.creds.m[string(b)]
	c.creds.mu.Unlock()
	if ok && c.cfg.Now().Before(cred.Expires) {
		return cred, nil
	}
	cred, err := c.cfg.Verifier.VerifyNodeCredential(b)
	if err != nil {
		return authority.NodeCredential{}, err
	}
	c.creds.mu.Lock()
	if len(c.creds.m) >= maxCachedCreds {
		clear(c.creds.m)
	}
	c.creds.m[string(b)] = cred
	c.creds.mu.Unlock()
	return cred, nil
}

// sign signs msg in context what with our node key.
func (c *Cluster) sign(what string, msg []byte) []byte { return c.cfg.Identity.sign(what, msg) }

// sign signs msg in context what with id's node key.
func (id Identity) sign(what string, msg []byte) []byte {
	return authority.SignAsNode(id.Key, append([]byte(what+"\x00"), msg...))
}

// verifySig checks cred's signature of msg in context what.
func verifySig(cred authority.NodeCredential, what string, msg, sig []byte) bool {
	return cred.VerifyNodeSignature(append([]byte(what+"\x00"), msg...), sig)
}

// envelope carries a message body with the sender's credential and its
// signature of the kind byte and the body.
type envelope struct {
	Cred []byte          `json:"c"`
	Body json.RawMessage `json:"b"`
	Sig  []byte          `json:"s"`
}

// seal wraps v in an envelope signed by us and returns the message.
func (c *Cluster) seal(kind byte, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return encodeMsg(kind, envelope{Cred: c.cfg.Identity.Credential.Bytes(), Body: body,
		Sig: c.sign("msg", append([]byte{kind}, body...))})
}

// open verifies an envelope message of kind and decodes its body into v;
// it returns the sender's credential.
func (c *Cluster) open(b []byte, v any) (authority.NodeCredential, error) {
	var env envelope
	if err := decodeMsg(b, &env); err != nil {
		return authority.NodeCredential{}, err
	}
	cred, err := c.verifyCred(env.Cred)
	if err != nil {
		return authority.NodeCredential{}, fmt.Errorf("sender credential: %w", err)
	}
	if !verifySig(cred, "msg", append([]byte{b[0]}, env.Body...), env.Sig) {
		return authority.NodeCredential{}, fmt.Errorf("signature of %s does not verify: %w", cred.NodeID, ErrInvalidArgument)
	}
	if err := json.Unmarshal(env.Body, v); err != nil {
		return authority.NodeCredential{}, fmt.Errorf("body from %s: %w", cred.NodeID, err)
	}
	return cred, nil
}

// Signed metadata layout: "PM1" | u16 credential length | credential |
// JSON body (wireMeta) | Ed25519 signature (64) of everything before it.
const (
	metaMagic  = "PM1"
	metaSigLen = 64
)

// encodeMeta validates m against our identity and returns its signed
// encoded form.
func (c *Cluster) encodeMeta(m Meta) ([]byte, error) { return encodeSignedMeta(c.cfg.Identity, m) }

// encodeSignedMeta validates m against id and returns its signed encoded
// form.
func encodeSignedMeta(id Identity, m Meta) ([]byte, error) {
	cred := id.Credential
	if m.ID != cred.NodeID || m.Region != cred.Region {
		return nil, fmt.Errorf("encode meta: id %q and region %q differ from the node credential's %q and %q: %w",
			m.ID, m.Region, cred.NodeID, cred.Region, ErrInvalidArgument)
	}
	if !m.WGKey.IsZero() && m.WGKey != cred.WGKey {
		return nil, fmt.Errorf("encode meta: the WireGuard key differs from the node credential's: %w", ErrInvalidArgument)
	}
	body, err := encodeMetaBody(m)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(metaMagic)
	binary.Write(&b, binary.BigEndian, uint16(len(cred.Bytes())))
	b.Write(cred.Bytes())
	b.Write(body)
	b.Write(id.sign("meta", b.Bytes()))
	if b.Len() > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("encode meta: %d bytes, limit %d (shorten the public URL, endpoint or version): %w", b.Len(), memberlist.MetaMaxSize, ErrMetaTooLarge)
	}
	return b.Bytes(), nil
}

// decodeMeta verifies a remote node's signed metadata and returns it with
// the node's credential, through the cache.
func (c *Cluster) decodeMeta(b []byte) (Meta, authority.NodeCredential, error) {
	c.creds.mu.Lock()
	v, ok := c.creds.metas[string(b)]
	c.creds.mu.Unlock()
	if ok && c.cfg.Now().Before(v.cred.Expires) {
		return v.meta, v.cred, nil
	}
	m, cred, err := c.verifyMeta(b)
	if err != nil {
		return Meta{}, authority.NodeCredential{}, err
	}
	c.creds.mu.Lock()
	if len(c.creds.metas) >= maxCachedCreds {
		clear(c.creds.metas)
	}
	c.creds.metas[string(b)] = verifiedMeta{m, cred}
	c.creds.mu.Unlock()
	return m, cred, nil
}

// verifyMeta verifies a remote node's signed metadata.
func (c *Cluster) verifyMeta(b []byte) (Meta, authority.NodeCredential, error) {
	if len(b) < len(metaMagic)+2+metaSigLen || string(b[:len(metaMagic)]) != metaMagic {
		return Meta{}, authority.NodeCredential{}, fmt.Errorf("decode meta: no node credential (a node with the gossip key only?): %w", ErrInvalidArgument)
	}
	n := int(binary.BigEndian.Uint16(b[len(metaMagic):]))
	start := len(metaMagic) + 2
	if start+n+metaSigLen > len(b) {
		return Meta{}, authority.NodeCredential{}, fmt.Errorf("decode meta: truncated: %w", ErrInvalidArgument)
	}
	cred, err := c.verifyCred(b[start : start+n])
	if err != nil {
		return Meta{}, authority.NodeCredential{}, fmt.Errorf("decode meta: %w", err)
	}
	signed, sig := b[:len(b)-metaSigLen], b[len(b)-metaSigLen:]
	if !verifySig(cred, "meta", signed, sig) {
		return Meta{}, authority.NodeCredential{}, fmt.Errorf("decode meta of %s: signature does not verify: %w", cred.NodeID, ErrInvalidArgument)
	}
	m, err := decodeMetaBody(b[start+n : len(b)-metaSigLen])
	if err != nil {
		return Meta{}, authority.NodeCredential{}, err
	}
	if m.ID != cred.NodeID || m.Region != cred.Region || (!m.WGKey.IsZero() && m.WGKey != cred.WGKey) {
		return Meta{}, authority.NodeCredential{}, fmt.Errorf("decode meta: id, region or key differ from the credential of %s: %w", cred.NodeID, ErrInvalidArgument)
	}
	m.WGKey = cred.WGKey
	return m, cred, nil
}

// attachSigned returns the bytes an attachment entry's signature covers:
// the entry without its signature.
func attachSigned(w wireAttach) []byte {
	w.Sig = nil
	b, _ := json.Marshal(w) // a struct of strings and numbers always encodes
	return b
}

// signAttach signs an entry of ours.
func (c *Cluster) signAttach(w wireAttach) wireAttach {
	w.Sig = c.sign("attach", attachSigned(w))
	return w
}
