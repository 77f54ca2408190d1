package session

import (
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// SignApp signs c as an app token (typ [TypeApp]) with the active key. The
// caller sets every field; a token without Audience, Issuer, IssuedAt or
// Expiry, or expiring before it is issued, is refused rather than minted.
func (k *Keyset) SignApp(c AppClaims) (string, error) {
	if err := checkMint(c.Audience, c.Issuer, c.IssuedAt, c.Expiry); err != nil {
		return "", fmt.Errorf("sign app token: %w", err)
	}
	if c.AppID == "" || c.Binding == "" || c.Subject == "" {
		return "", fmt.Errorf("sign app token: app, bh and sub are required")
	}
	return k.sign(TypeApp, c)
}

// SignSession signs c as a global session token (typ [TypeSession]) with
// the active key, with the same checks as [Keyset.SignApp].
func (k *Keyset) SignSession(c SessionClaims) (string, error) {
	if err := checkMint(c.Audience, c.Issuer, c.IssuedAt, c.Expiry); err != nil {
		return "", fmt.Errorf("sign session token: %w", err)
	}
	if c.Subject == "" {
		return "", fmt.Errorf("sign session token: sub is required")
	}
	return k.sign(TypeSession, c)
}

// SignLogout signs a sign-out notice (typ [TypeLogout]) with the active
// key, with the same checks as [Keyset.SignApp].
func (k *Keyset) SignLogout(c LogoutClaims) (string, error) {
	if err := checkMint(c.Audience, c.Issuer, c.IssuedAt, c.Expiry); err != nil {
		return "", fmt.Errorf("sign logout notice: %w", err)
	}
	if c.SessionID == "" {
		return "", fmt.Errorf("sign logout notice: sid is required")
	}
	return k.sign(TypeLogout, c)
}

// SignAssertion signs an identity assertion (typ [TypeAssert]) for the
// backend of the app at audience, valid for ttl from now. A mesh node signs
// it with its own assertion key set, never the session keys.
func (k *Keyset) SignAssertion(id Identity, audience string, ttl time.Duration) (string, error) {
	if audience == "" || ttl <= 0 {
		return "", fmt.Errorf("sign assertion: audience and a positive ttl are required")
	}
	now := time.Now()
	return k.sign(TypeAssert, AssertionClaims{
		Identity: id, Audience: audience, IssuedAt: now.Unix(), Expiry: now.Add(ttl).Unix(),
	})
}

func checkMint(aud, iss string, iat, exp int64) error {
	switch {
	case aud == "":
		return fmt.Errorf("aud is required")
	case iss == "":
		return fmt.Errorf("iss is required")
	case iat <= 0 || exp <= 0:
		return fmt.Errorf("iat and exp are required")
	case exp <= iat:
		return fmt.Errorf("exp must be after iat")
	}
	return nil
}

// sign serialises claims as a compact JWS with the active key, its kid and
// the given typ header.
func (k *Keyset) sign(typ string, claims any) (string, error) {
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
