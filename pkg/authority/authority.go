// Package authority is the mesh authority: it signs and verifies the
// one-time enrolment tokens that an admin hands to a connector operator, and
// the connector credentials that a connector presents to a mesh node to
// attach as a WireGuard peer.
//
// It sits before the request path, on the connector's way in: the admin
// command mints tokens, the mesh node's enrolment endpoint (pkg/enroll)
// verifies them, burns them in a UsedTokens set and issues credentials, and
// every mesh node verifies credentials on attach and renew. Mesh nodes and
// the admin command hold the authority key; connectors never do. The package
// is pure: no network, only a file for the key and one for used token ids.
package authority

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/pkg/nodecred"
)

// Fixed claim and header values. A credential is never accepted as an
// enrolment token, nor the reverse, because typ and aud differ.
const (
	// Issuer is the iss claim of every token and credential.
	Issuer = "postern-mesh"
	// EnrollAudience is the aud claim of enrolment tokens.
	EnrollAudience = "postern-enroll"
	// EnrollType is the typ header of enrolment tokens.
	EnrollType = "postern-enroll+jwt"
	// CredentialAudience is the aud claim of connector credentials.
	CredentialAudience = "postern-connector"
	// CredentialType is the typ header of connector credentials.
	CredentialType = "postern-cred+jwt"
	// RevocationAudience is the aud claim of admin revocations.
	RevocationAudience = "postern-revoke"
	// RevocationType is the typ header of admin revocations.
	RevocationType = "postern-revoke+jwt"

	// MaxTokenSize caps the length of a token or credential that
	// verification will look at.
	MaxTokenSize = 4 << 10
	// DefaultSkew is the clock skew tolerated when Config.Skew is zero.
	DefaultSkew = 30 * time.Second
	// MaxSkew is the largest clock skew New accepts; UsedTokens keeps ids
	// for longer than this past their expiry.
	MaxSkew = 5 * time.Minute
	// DefaultEnrollTTL is the suggested lifetime of an enrolment token.
	DefaultEnrollTTL = time.Hour
	// MaxEnrollTTL is the longest lifetime of an enrolment token.
	MaxEnrollTTL = 7 * 24 * time.Hour
	// MaxCredentialTTL is the longest lifetime of a connector credential.
	MaxCredentialTTL = 366 * 24 * time.Hour
)

// Config configures an Authority.
type Config struct {
	// Key signs new tokens and credentials and verifies them. Required.
	Key Key
	// VerifyKeys are further public keys whose signatures are accepted, for
	// rotation: a new key signs while the old ones still verify. Nil means
	// only Key's public key verifies.
	VerifyKeys []ed25519.PublicKey
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Skew is the clock skew tolerated on exp, nbf and iat; zero means
	// DefaultSkew (30s). It must not exceed MaxSkew.
	Skew time.Duration
}

// Authority signs and verifies enrolment tokens and connector credentials.
// It is immutable after New and safe for concurrent use.
type Authority struct {
	kid        string
	now        func() time.Time
	skew       time.Duration
	keys       map[string]ed25519.PublicKey // kid → key
	enrollSign jose.Signer
	credSign   jose.Signer
	revSign    jose.Signer
	key        Key
	nodes      *nodecred.Verifier
}

// New returns an Authority that signs with cfg.Key.
func New(cfg Config) (*Authority, error) {
	if cfg.Key.IsZero() {
		return nil, fmt.Errorf("authority: new: no signing key: %w", ErrInvalidArgument)
	}
	if cfg.Skew < 0 || cfg.Skew > MaxSkew {
		return nil, fmt.Errorf("authority: new: skew %v out of range [0, %v]: %w", cfg.Skew, MaxSkew, ErrInvalidArgument)
	}
	a := &Authority{
		kid:  cfg.Key.KeyID(),
		now:  cfg.Now,
		skew: cfg.Skew,
		keys: map[string]ed25519.PublicKey{cfg.Key.KeyID(): cfg.Key.Public()},
		key:  cfg.Key,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.skew == 0 {
		a.skew = DefaultSkew
	}
	for i, pub := range cfg.VerifyKeys {
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("authority: new: verify key %d has %d bytes, want %d: %w", i, len(pub), ed25519.PublicKeySize, ErrInvalidArgument)
		}
		a.keys[KeyID(pub)] = pub
	}
	var err error
	if a.enrollSign, err = newSigner(cfg.Key, EnrollType); err != nil {
		return nil, err
	}
	if a.credSign, err = newSigner(cfg.Key, CredentialType); err != nil {
		return nil, err
	}
	if a.revSign, err = newSigner(cfg.Key, RevocationType); err != nil {
		return nil, err
	}
	pubs := make([]ed25519.PublicKey, 0, len(a.keys))
	for _, pub := range a.keys {
		pubs = append(pubs, pub)
	}
	if a.nodes, err = nodecred.NewVerifier(pubs, a.now, a.skew); err != nil {
		return nil, fmt.Errorf("authority: new: %w", err)
	}
	return a, nil
}

func newSigner(k Key, typ string) (jose.Signer, error) {
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.KeyID()}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return nil, fmt.Errorf("authority: new signer: %w", err)
	}
	return s, nil
}

// KeyID returns the kid of the signing key.
func (a *Authority) KeyID() string { return a.kid }

// Skew returns the clock skew the authority tolerates.
func (a *Authority) Skew() time.Duration { return a.skew }
