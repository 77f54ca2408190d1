package session

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// AssertionSigner signs the identity assertions (typ [TypeAssert]) that a
// mesh node sends to backends, with the node's own node key: the Ed25519
// key that the mesh authority certified in the node's credential, so that
// the mesh's assertion JWKS (every node's certified key) verifies the
// assertions of every node. It is immutable after [NewAssertionSigner] and
// safe for concurrent use.
type AssertionSigner struct {
	cfg    AssertionSignerConfig
	kid    string
	header string // base64url of the protected header
}

// AssertionSignerConfig configures an [AssertionSigner].
type AssertionSignerConfig struct {
	// Issuer is the iss of every assertion: the mesh's issuer, the same
	// on every node (required).
	Issuer string
	// Key is the node key's public half (required); its RFC 7638
	// thumbprint is the kid.
	Key ed25519.PublicKey
	// Sign returns the Ed25519 signature of msg by the node key
	// (required).
	Sign func(msg []byte) []byte
	// NotAfter caps every assertion's exp: the end of the node credential
	// that certifies Key, after which backends no longer trust the key.
	// The zero value means no cap.
	NotAfter time.Time
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewAssertionSigner checks cfg and returns a signer.
func NewAssertionSigner(cfg AssertionSignerConfig) (*AssertionSigner, error) {
	if cfg.Issuer == "" || len(cfg.Key) != ed25519.PublicKeySize || cfg.Sign == nil {
		return nil, errors.New("session: new assertion signer: an issuer, a node key and its signing function are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kid, err := thumbprint(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("session: new assertion signer: %w", err)
	}
	h, err := json.Marshal(map[string]string{"alg": string(jose.EdDSA), "kid": kid, "typ": TypeAssert})
	if err != nil {
		return nil, fmt.Errorf("session: new assertion signer: %w", err)
	}
	return &AssertionSigner{cfg: cfg, kid: kid, header: base64.RawURLEncoding.EncodeToString(h)}, nil
}

// KeyID returns the kid of the assertions.
func (s *AssertionSigner) KeyID() string { return s.kid }

// SignAssertion signs an identity assertion of id for the backend of the
// app at audience (its external host), valid for ttl from now but never
// past the signer's NotAfter.
func (s *AssertionSigner) SignAssertion(id Identity, audience string, ttl time.Duration) (string, error) {
	if audience == "" || ttl <= 0 {
		return "", errors.New("sign assertion: audience and a positive ttl are required")
	}
	now := s.cfg.Now()
	exp := now.Add(ttl)
	if !s.cfg.NotAfter.IsZero() && exp.After(s.cfg.NotAfter) {
		exp = s.cfg.NotAfter
	}
	if !exp.After(now) {
		return "", errors.New("sign assertion: the node credential has expired")
	}
	payload, err := json.Marshal(AssertionClaims{Identity: id, Audience: audience, Issuer: s.cfg.Issuer,
		IssuedAt: now.Unix(), Expiry: exp.Unix()})
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	input := s.header + "." + base64.RawURLEncoding.EncodeToString(payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(s.cfg.Sign([]byte(input))), nil
}

// Sign serialises claims as a compact JWS with the active key, its kid and
// the given typ header. It checks nothing about the claims: the minting of
// session and app tokens, with its checks, lives in pkg/session/mint, which
// only the auth functions link; a mesh node signs assertions with its node
// key ([AssertionSigner]).
func (k *Keyset) Sign(typ string, claims any) (string, error) {
	var priv *signingKey
	for i := range k.keys {
		if k.keys[i].kid == k.active {
			priv = &k.keys[i]
		}
	}
	if priv == nil {
		return "", fmt.Errorf("sign %s: %w: no active key", typ, ErrBadKeyset)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv.priv, KeyID: priv.kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", typ, err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", typ, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", typ, err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", typ, err)
	}
	return tok, nil
}
