package authority

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/postern/postern/pkg/revoke"
)

// SignRevocation signs e as an admin revocation (typ RevocationType): the
// statement any mesh node accepts and spreads. The entry is validated
// first; its Issued and Until become the token's iat and exp.
func (a *Authority) SignRevocation(e revoke.Entry) (string, error) {
	if err := e.Validate(a.now()); err != nil {
		return "", fmt.Errorf("authority: sign revocation: %w: %w", ErrInvalidArgument, err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("authority: sign revocation: %w", err)
	}
	c := claims{
		ID:        base64.RawURLEncoding.EncodeToString(id[:]),
		Subject:   e.Subject,
		RevKind:   string(e.Kind),
		Before:    e.Before,
		Issuer:    Issuer,
		Audience:  jwt.Audience{RevocationAudience},
		IssuedAt:  jwt.NewNumericDate(time.Unix(e.Issued, 0)),
		NotBefore: jwt.NewNumericDate(time.Unix(e.Issued, 0)),
		Expiry:    jwt.NewNumericDate(time.Unix(e.Until, 0)),
	}
	s, err := sign(a.revSign, c)
	if err != nil {
		return "", fmt.Errorf("authority: sign revocation: %w", err)
	}
	return s, nil
}

// VerifyRevocation checks an admin revocation strictly (EdDSA by a known
// key, typ, aud, iss, not expired, a valid entry) and returns its entry.
func (a *Authority) VerifyRevocation(s string) (revoke.Entry, error) {
	c, _, err := a.verify(s, revokeKind)
	if err != nil {
		return revoke.Entry{}, fmt.Errorf("authority: verify revocation: %w", err)
	}
	e := revoke.Entry{Kind: revoke.Kind(c.RevKind), Subject: c.Subject, Before: c.Before,
		Issued: c.IssuedAt.Time().Unix(), Until: c.Expiry.Time().Unix()}
	if err := e.Validate(a.now()); err != nil {
		return revoke.Entry{}, fmt.Errorf("authority: verify revocation: %w: %w", ErrMalformed, err)
	}
	return e, nil
}
