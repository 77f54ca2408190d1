package session

import (
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// SignAssertion signs an identity assertion (typ [TypeAssert]) for the
// backend of the app at audience, valid for ttl from now. A mesh node signs
// it with its own assertion key set, never the session keys.
func (k *Keyset) SignAssertion(id Identity, audience string, ttl time.Duration) (string, error) {
	if audience == "" || ttl <= 0 {
		return "", fmt.Errorf("sign assertion: audience and a positive ttl are required")
	}
	now := time.Now()
	return k.Sign(TypeAssert, AssertionClaims{
		Identity: id, Audience: audience, IssuedAt: now.Unix(), Expiry: now.Add(ttl).Unix(),
	})
}

// Sign serialises claims as a compact JWS with the active key, its kid and
// the given typ header. It checks nothing about the claims: the minting of
// session and app tokens, with its checks, lives in pkg/session/mint, which
// only the auth functions link; a mesh node signs assertions
// ([Keyset.SignAssertion]) with its own key set.
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
