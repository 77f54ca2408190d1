package devidp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// GraphAudience is the audience of the access tokens the provider issues:
// Microsoft Graph.
const GraphAudience = "https://graph.microsoft.com"

// GraphEndpoint is the base of the overage claim source, as Entra emits it.
const GraphEndpoint = "https://graph.microsoft.com"

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("devidp: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// pairwiseSub derives Entra's pairwise subject: stable per user and app,
// different across apps, opaque.
func pairwiseSub(tid, oid, clientID string) string {
	h := sha256.Sum256([]byte("devidp-sub\x00" + tid + "\x00" + oid + "\x00" + clientID))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// idTokenClaims builds an ID token shaped like an Entra v2 ID token for a
// completed request a and its user u.
func (p *Provider) idTokenClaims(a *authRequest, u User, now time.Time) (map[string]any, error) {
	uti, err := randomString(16)
	if err != nil {
		return nil, err
	}
	rh, err := randomString(48)
	if err != nil {
		return nil, err
	}
	c := map[string]any{
		"aud": a.req.ClientID,
		"iss": a.issuer,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(p.lifetime).Unix(),
		"oid": u.ObjectID,
		"sub": pairwiseSub(u.TenantID, u.ObjectID, a.req.ClientID),
		"ver": "2.0",
		"uti": uti,
		"rh":  "0." + rh,
	}
	if u.TenantID != "" {
		c["tid"] = u.TenantID
	}
	if a.req.Nonce != "" {
		c["nonce"] = a.req.Nonce
	}
	if slices.Contains(a.req.Scopes, oidc.ScopeProfile) {
		c["preferred_username"] = u.Username
		if u.Name != "" {
			c["name"] = u.Name
		}
	}
	if slices.Contains(a.req.Scopes, oidc.ScopeEmail) && u.Email != "" {
		c["email"] = u.Email
	}
	if u.HomeTenantID != "" && u.HomeTenantID != u.TenantID {
		c["idp"] = "https://sts.windows.net/" + u.HomeTenantID + "/"
	}
	switch {
	case len(u.Groups) > MaxTokenGroups:
		c["_claim_names"] = map[string]string{"groups": "src1"}
		c["_claim_sources"] = map[string]any{"src1": map[string]string{
			"endpoint": GraphEndpoint + "/v1.0/users/" + u.ObjectID + "/getMemberObjects",
		}}
	case len(u.Groups) > 0:
		c["groups"] = u.Groups
	}
	if len(u.Roles) > 0 {
		c["roles"] = u.Roles
	}
	if met := metACRs(a.acrs, u.ACRs); len(met) > 0 {
		c["acrs"] = met
	}
	return c, nil
}

// metACRs returns the requested contexts the user can satisfy.
func metACRs(requested, can []string) []string {
	var met []string
	for _, r := range requested {
		if slices.Contains(can, r) && !slices.Contains(met, r) {
			met = append(met, r)
		}
	}
	return met
}

// grantedScopes returns the Graph permissions to put in the access token:
// those requested, or User.Read when none was (as Entra does).
func grantedScopes(requested []string) []string {
	var out []string
	for _, s := range requested {
		if short, ok := graphScope(s); ok && !slices.Contains(out, short) {
			out = append(out, short)
		}
	}
	if len(out) == 0 {
		out = []string{"User.Read"}
	}
	return out
}

// accessTokenClaims builds a Graph access token for the request's user.
func (p *Provider) accessTokenClaims(a *authRequest, u User, scopes []string, now time.Time) (map[string]any, error) {
	uti, err := randomString(16)
	if err != nil {
		return nil, err
	}
	c := map[string]any{
		"aud":   GraphAudience,
		"iss":   a.issuer,
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(p.lifetime).Unix(),
		"appid": a.req.ClientID,
		"oid":   u.ObjectID,
		"tid":   u.TenantID,
		"sub":   pairwiseSub(u.TenantID, u.ObjectID, GraphAudience),
		"scp":   strings.Join(scopes, " "),
		"upn":   u.Username,
		"uti":   uti,
		"ver":   "1.0",
	}
	return c, nil
}

// sign signs claims with the provider key (RS256, with kid), as Entra does.
func (p *Provider) sign(claims map[string]any) (string, error) {
	k := p.store.signer()
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.RS256,
		Key:       &jose.JSONWebKey{Key: k.key, KeyID: k.kid},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("devidp: sign: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: sign: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidp: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// verifySignature checks that token is a compact JWS signed by one of the
// provider's published keys and returns its payload.
func (p *Provider) verifySignature(token string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	pub, ok := p.store.publicKey(jws.Signatures[0].Header.KeyID)
	if !ok {
		return nil, fmt.Errorf("%w: unknown key", ErrBadToken)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: bad signature", ErrBadToken)
	}
	return payload, nil
}

// accessClaims are the parts of an access token the mock Graph checks.
type accessClaims struct {
	Audience  string `json:"aud"`
	Issuer    string `json:"iss"`
	Expiry    int64  `json:"exp"`
	NotBefore int64  `json:"nbf"`
	ObjectID  string `json:"oid"`
	TenantID  string `json:"tid"`
	Scope     string `json:"scp"`
}

// verifyAccessToken checks that token is an unexpired Graph access token
// signed by this provider and returns its claims.
func (p *Provider) verifyAccessToken(token string) (*accessClaims, error) {
	payload, err := p.verifySignature(token)
	if err != nil {
		return nil, err
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: malformed claims", ErrBadToken)
	}
	now := p.now().Unix()
	switch {
	case c.Audience != GraphAudience:
		return nil, fmt.Errorf("%w: wrong audience", ErrBadToken)
	case !slices.Contains(p.issuers(), c.Issuer):
		return nil, fmt.Errorf("%w: wrong issuer", ErrBadToken)
	case c.Expiry <= now:
		return nil, fmt.Errorf("%w: %w", ErrBadToken, errExpired)
	case c.NotBefore > now:
		return nil, fmt.Errorf("%w: not yet valid", ErrBadToken)
	case c.ObjectID == "":
		return nil, fmt.Errorf("%w: no oid", ErrBadToken)
	}
	return &c, nil
}
