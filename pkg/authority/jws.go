package authority

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// claims is the union of the claims of enrolment tokens and credentials.
type claims struct {
	ID        string           `json:"jti,omitempty"`
	Subject   string           `json:"sub,omitempty"`
	Group     string           `json:"grp,omitempty"`
	WGKey     string           `json:"wgk,omitempty"`
	RevKind   string           `json:"rvk,omitempty"`
	Before    int64            `json:"bef,omitempty"`
	Issuer    string           `json:"iss"`
	Audience  jwt.Audience     `json:"aud"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	Expiry    *jwt.NumericDate `json:"exp"`
}

// allowedHeaders are the only protected header parameters accepted; any
// other (crit, b64, jwk, jku, x5c, ...) makes a token malformed.
var allowedHeaders = map[string]bool{"alg": true, "kid": true, "typ": true}

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
	hdr, err := parseHeader(token)
	if err != nil {
		return claims{}, "", err
	}
	var alg, kid, typ string
	if err := headerString(hdr, "alg", &alg); err != nil || alg != string(jose.EdDSA) {
		return claims{}, "", fmt.Errorf("alg %.16q, want EdDSA: %w", alg, ErrBadAlgorithm)
	}
	if err := headerString(hdr, "kid", &kid); err != nil {
		return claims{}, "", err
	}
	pub, ok := a.keys[kid]
	if !ok {
		return claims{}, "", fmt.Errorf("kid %.64q: %w", kid, ErrUnknownKey)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return claims{}, "", fmt.Errorf("parse: %w", ErrMalformed)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return claims{}, "", fmt.Errorf("kid %s: %w", kid, ErrBadSignature)
	}
	if err := headerString(hdr, "typ", &typ); err != nil || typ != k.typ {
		return claims{}, "", fmt.Errorf("typ %.32q, want %q: %w", typ, k.typ, ErrWrongType)
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

// parseHeader decodes the protected header of a compact JWS and refuses
// oversized input and unexpected parameters.
func parseHeader(token string) (map[string]json.RawMessage, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%d bytes, over the %d-byte cap: %w", len(token), MaxTokenSize, ErrMalformed)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("got %d parts, want 3: %w", len(parts), ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("header encoding: %w", ErrMalformed)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, fmt.Errorf("header: %w", ErrMalformed)
	}
	for name := range hdr {
		if !allowedHeaders[name] {
			return nil, fmt.Errorf("unsupported header %.16q: %w", name, ErrMalformed)
		}
	}
	return hdr, nil
}

func headerString(hdr map[string]json.RawMessage, name string, dst *string) error {
	v, ok := hdr[name]
	if !ok {
		return fmt.Errorf("missing %s header: %w", name, ErrMalformed)
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("%s header: %w", name, ErrMalformed)
	}
	return nil
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
