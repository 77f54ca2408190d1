package devidp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// V1IssuerBase is the base of the issuer of v1 access tokens, as Entra
// has it: "https://sts.windows.net/<tenant id>/". It is only a name in
// the tokens; their keys are those of the tenant's v2 issuer.
const V1IssuerBase = "https://sts.windows.net"

// API is a registered web API: an app registration that exposes an API,
// for which the provider issues Entra-shaped access tokens — delegated
// ones (scp) through the authorization-code flow when a client asks for
// one of its scopes, app-only ones (roles) through the client-credentials
// grant with scope "<identifier>/.default".
type API struct {
	// ClientID is the API's client (application) id, a GUID: the aud of
	// its v2 tokens. Required.
	ClientID string
	// IdentifierURI is its Application ID URI, such as "api://smartmoney":
	// the prefix of its scopes in token requests, and the aud of v1 tokens
	// requested through it. Empty means "api://<ClientID>".
	IdentifierURI string
	// Scopes are its delegated permissions (values of scp), such as
	// "Records.Read".
	Scopes []string
	// Version is the access token version it accepts
	// (accessTokenAcceptedVersion): 1 or 2; zero means 2.
	Version int
	// IDTypClaim adds the optional claim idtyp ("app" or "user") to its
	// tokens, as an API registration may ask; false leaves it out.
	IDTypClaim bool
}

func (a *API) identifier() string {
	if a.IdentifierURI != "" {
		return a.IdentifierURI
	}
	return "api://" + a.ClientID
}

func validateAPIs(apis []API) error {
	for i, a := range apis {
		if a.ClientID == "" || strings.Contains(a.ClientID, "/") {
			return fmt.Errorf("%w: API %d needs a client id (a GUID)", ErrBadConfig, i)
		}
		if a.Version != 0 && a.Version != 1 && a.Version != 2 {
			return fmt.Errorf("%w: API %s: version must be 1 or 2", ErrBadConfig, a.ClientID)
		}
		for _, s := range a.Scopes {
			if s == "" || strings.ContainsAny(s, " /") || s == ".default" {
				return fmt.Errorf("%w: API %s: bad scope %q", ErrBadConfig, a.ClientID, s)
			}
		}
	}
	return nil
}

// apiScope splits a requested scope "<identifier or client id>/<name>"
// into the API it names and the scope's short name.
func (s *store) apiScope(scope string) (*API, string, bool) {
	i := strings.LastIndexByte(scope, '/')
	if i <= 0 {
		return nil, "", false
	}
	res, name := scope[:i], scope[i+1:]
	for j := range s.apis {
		a := &s.apis[j]
		if res != a.identifier() && res != a.ClientID {
			continue
		}
		if name == ".default" || slices.Contains(a.Scopes, name) {
			return a, name, true
		}
	}
	return nil, "", false
}

// apiRequest is the API and scopes a token request names.
type apiRequest struct {
	api      *API
	resource string   // as requested: the identifier URI or the client id
	scopes   []string // short names, without .default
}

// apiOf returns the one API the scopes name, or nil when they name none;
// scopes of two APIs are an error, as at Entra (one resource per token).
func (s *store) apiOf(scopes []string) (*apiRequest, error) {
	var req *apiRequest
	for _, sc := range scopes {
		a, name, ok := s.apiScope(sc)
		if !ok {
			continue
		}
		if req != nil && req.api != a {
			return nil, fmt.Errorf("scopes of two APIs in one request")
		}
		if req == nil {
			req = &apiRequest{api: a, resource: sc[:strings.LastIndexByte(sc, '/')]}
		}
		if name != ".default" && !slices.Contains(req.scopes, name) {
			req.scopes = append(req.scopes, name)
		}
	}
	return req, nil
}

// objectIDOf is the object id of a client's service principal: configured,
// or derived from the client id.
func objectIDOf(c *Client) string {
	if c.ObjectID != "" {
		return c.ObjectID
	}
	h := sha256.Sum256([]byte("devidp-sp\x00" + c.ID))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// apiTokenClaims builds an access token for req.api in its version's
// shape: v1 (iss https://sts.windows.net/<tid>/, appid, aud as requested)
// or v2 (iss the tenant's v2 issuer, azp, aud the API's client id). u is
// the user of a delegated token, nil for an app-only one.
func (p *Provider) apiTokenClaims(req *apiRequest, v2Issuer, tid string, client *Client, u *User, now time.Time) (map[string]any, error) {
	uti, err := randomString(16)
	if err != nil {
		return nil, err
	}
	a := req.api
	c := map[string]any{
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(p.lifetime).Unix(),
		"tid": tid, "uti": uti, "rh": "0.devidp", "aio": "devidp",
	}
	if a.Version == 1 {
		c["ver"], c["iss"], c["aud"] = "1.0", V1IssuerBase+"/"+tid+"/", req.resource
		c["appid"], c["appidacr"] = client.ID, "1"
	} else {
		c["ver"], c["iss"], c["aud"] = "2.0", v2Issuer, a.ClientID
		c["azp"], c["azpacr"] = client.ID, "1"
	}
	if u == nil {
		oid := objectIDOf(client)
		c["oid"], c["sub"], c["idp"] = oid, oid, v2Issuer
		if roles := client.AppRoles[a.ClientID]; len(roles) > 0 {
			c["roles"] = roles
		}
		if a.IDTypClaim {
			c["idtyp"] = "app"
		}
		return c, nil
	}
	c["oid"], c["sub"], c["scp"] = u.ObjectID, pairwiseSub(u.TenantID, u.ObjectID, a.ClientID), strings.Join(req.scopes, " ")
	if u.Name != "" {
		c["name"] = u.Name
	}
	if a.Version == 1 {
		c["upn"], c["unique_name"] = u.Username, u.Username
	} else {
		c["preferred_username"] = u.Username
	}
	if len(u.Roles) > 0 {
		c["roles"] = u.Roles
	}
	if len(u.Groups) > 0 && len(u.Groups) <= MaxTokenGroups {
		c["groups"] = u.Groups
	}
	if a.IDTypClaim {
		c["idtyp"] = "user"
	}
	return c, nil
}

// DelegatedToken issues the delegated access token that the
// authorization-code flow would give client clientID when user login
// signs in with scope (such as "api://records/Records.Read"), without the
// browser round trip. It is for tests and the demo.
func (p *Provider) DelegatedToken(login, clientID, scope string) (string, error) {
	u, ok := p.store.userByLogin(login)
	if !ok {
		return "", ErrUnknownUser
	}
	oc, ok := p.store.client(clientID)
	if !ok {
		return "", ErrUnknownClient
	}
	req, err := p.store.apiOf(strings.Fields(scope))
	if err != nil || req == nil || len(req.scopes) == 0 {
		return "", fmt.Errorf("%w: scope %q names no scope of a registered API", ErrBadConfig, scope)
	}
	claims, err := p.apiTokenClaims(req, p.IssuerFor(u.TenantID), u.TenantID, &oc.Client, &u, p.now())
	if err != nil {
		return "", err
	}
	return p.sign(claims)
}

// MintAccessToken signs claims, whatever they say, with the provider's
// current key, as an access token. It is for tests of what a verifier
// refuses (tokens Entra would never issue: a v1 token with a v2 issuer,
// another tenant, an expired one); real tokens come from the token
// endpoint.
func (p *Provider) MintAccessToken(claims map[string]any) (string, error) {
	return p.sign(claims)
}

// --- op.ClientCredentialsStorage ---

// ClientCredentials authenticates a confidential client for the
// client-credentials grant.
func (s *store) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	c, ok := s.client(id)
	if !ok || c.Secret == "" || !constantTimeEqual(c.Secret, secret) {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client or wrong secret").WithParent(ErrUnknownClient)
	}
	return c, nil
}

// ClientCredentialsTokenRequest is not used: tenantServer issues the
// tokens itself.
func (s *store) ClientCredentialsTokenRequest(context.Context, string, []string) (op.TokenRequest, error) {
	return nil, oidc.ErrServerError()
}

// ClientCredentialsExchange issues an app-only access token for the API
// named by scope "<identifier>/.default", carrying the application
// permissions (roles) granted to the client — none at all is possible, as
// at Entra, which issues a token without roles to any client of the
// tenant.
func (s *tenantServer) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	scopes := []string(r.Data.Scope)
	if len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default") {
		return nil, oidc.ErrInvalidScope().WithDescription("the client-credentials grant takes one scope <API identifier>/.default")
	}
	req, err := s.p.store.apiOf(scopes)
	if err != nil || req == nil {
		return nil, oidc.ErrInvalidScope().WithDescription("the scope names no registered API")
	}
	oc, ok := s.p.store.client(r.Client.GetID())
	if !ok {
		return nil, oidc.ErrInvalidClient()
	}
	claims, err := s.p.apiTokenClaims(req, s.issuer, s.tenant, &oc.Client, nil, s.p.now())
	if err != nil {
		return nil, oidc.ErrServerError()
	}
	at, err := s.p.sign(claims)
	if err != nil {
		return nil, oidc.ErrServerError()
	}
	s.p.log.InfoContext(ctx, "devidp: app-only token issued", "client_id", oc.ID, "api", req.api.ClientID, "tenant", s.tenant)
	secs := int64(s.p.lifetime.Seconds())
	return op.NewResponse(&tokenResponse{TokenType: "Bearer", ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: at}), nil
}
