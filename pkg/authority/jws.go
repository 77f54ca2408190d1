package authority

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/postern/postern/pkg/jws"
)

// claims is the union of the claims of enrolment tokens and credentials.
type claims struct {
	ID        string           `json:"jti,omitempty"`
	Subject   string           `json:"sub,omitempty"`
	Group     string           `json:"grp,omitempty"`
	WGKey     string           `json:"wgk,omitempty"`
	Workload  string           `json:"wls,omitempty"` // a credential's workload subject
	RevKind   string           `json:"rvk,omitempty"`
	Before    int64            `json:"bef,omitempty"`
	Issuer    string           `json:"iss"`
	Audience  jwt.Audience     `json:"aud"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	Expiry    *jwt.NumericDate `json:"exp"`
}

// policy is the one strict header policy of pkg/jws (only alg, kid and
// typ; EdDSA only) with this package's size cap and sentinels.
var policy = jws.Policy{MaxSize: MaxTokenSize, Errors: jws.Errors{
	Malformed: ErrMalformed, Algorithm: ErrBadAlgorithm, Signature: ErrBadSignature, Type: ErrWrongType,
}}

// kind names what is being verified, for errors and for the expected typ
// and aud.
type kind struct {
	what      string // "enrolment token", "credential" or "revocation"
	typ       string
	aud       string
	needGroup bool
}

var (
	enrollKind = kind{what: "enrolment token", typ: EnrollType, aud: EnrollAudience, needGroup: true}
	credKind   = kind{what: "credential", typ: CredentialType, aud: CredentialAudience, needGroup: true}
	revokeKind = kind{what: "revocation", typ: RevocationType, aud: RevocationAudience}
)

// sign serialises c as a compact JWS with s.
func sign(s jose.Signer, c claims) (string, error) {
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return tok, nil
}

// verify checks token strictly as a k and returns its claims and kid.
// Errors wrap the package sentinels and never quote the token.
func (a *Authority) verify(token string, k kind) (claims, string, error) {
	payload, kid, err := policy.Verify(token, k.typ, func(kid string) (ed25519.PublicKey, error) {
		pub, ok := a.keys[kid]
		if !ok {
			return nil, fmt.Errorf("kid %.64q: %w", kid, ErrUnknownKey)
		}
		return pub, nil
	})
	if err != nil {
		return claims{}, "", err
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return claims{}, "", fmt.Errorf("claims: %w", ErrMalformed)
	}
	if err := a.checkClaims(c, k); err != nil {
		return claims{}, "", err
	}
	return c, kid, nil
}

// checkClaims checks iss, aud and the times of c against k and the clock.
func (a *Authority) checkClaims(c claims, k kind) error {
	if c.Issuer != Issuer {
		return fmt.Errorf("iss %.32q, want %q: %w", c.Issuer, Issuer, ErrWrongType)
	}
	if len(c.Audience) != 1 || c.Audience[0] != k.aud {
		return fmt.Errorf("aud, want %q: %w", k.aud, ErrWrongType)
	}
	if c.IssuedAt == nil || c.NotBefore == nil || c.Expiry == nil {
		return fmt.Errorf("iat, nbf and exp are required: %w", ErrMalformed)
	}
	if k.needGroup && c.Group == "" {
		return fmt.Errorf("grp is required: %w", ErrMalformed)
	}
	now := a.now()
	if nbf := c.NotBefore.Time(); now.Add(a.skew).Before(nbf) {
		return fmt.Errorf("nbf %s is after now %s: %w", nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrNotYetValid)
	}
	if iat := c.IssuedAt.Time(); now.Add(a.skew).Before(iat) {
		return fmt.Errorf("iat %s is after now %s: %w", iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrNotYetValid)
	}
	if exp := c.Expiry.Time(); !now.Add(-a.skew).Before(exp) {
		return fmt.Errorf("expired at %s, now %s: %w", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrExpired)
	}
	return nil
}
