package devidp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// tenantServer is the op server of one tenant's issuer. It keeps the
// library's discovery, JWKS, request parsing, client authentication,
// redirect-URI checks and callback, and replaces the steps where Entra's
// behaviour differs: it requires PKCE S256, reads the claims parameter,
// issues Entra-shaped tokens and restricts post-logout redirects.
type tenantServer struct {
	*op.LegacyServer
	p      *Provider
	op     *op.Provider
	issuer string
	tenant string
}

var _ op.ExtendedLegacyServer = (*tenantServer)(nil)

// Authorize validates what the library leaves open and stores the request.
func (s *tenantServer) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	req := r.Data
	fail := func(e *oidc.Error) (*op.Redirect, error) {
		return op.TryErrorRedirect(ctx, req, e, s.op.Encoder(), nil)
	}
	if req.RequestParam != "" {
		return fail(oidc.ErrRequestNotSupported())
	}
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return fail(oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method S256 is required"))
	}
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return fail(oidc.ErrLoginRequired().WithDescription("no session at the development provider: the user must pick an account"))
	}
	acrs, err := parseClaimsACRs(r.Form.Get("claims"))
	if err != nil {
		return fail(oidc.ErrInvalidRequest().WithDescription("%s", err.Error()))
	}
	a, err := s.p.store.addRequest(s.issuer, s.tenant, req, acrs)
	if err != nil {
		return fail(oidc.ErrServerError())
	}
	return op.NewRedirect(r.Client.LoginURL(a.id)), nil
}

// parseClaimsACRs returns the acrs values requested for the ID token by
// an OIDC claims parameter, accepting "value" and "values".
func parseClaimsACRs(raw string) ([]string, error) {
	if raw == "" {
		return nil, nil
	}
	if len(raw) > 4096 {
		return nil, fmt.Errorf("claims parameter too long")
	}
	var p struct {
		IDToken map[string]*struct {
			Essential bool     `json:"essential"`
			Value     string   `json:"value"`
			Values    []string `json:"values"`
		} `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return nil, fmt.Errorf("claims parameter is not valid JSON: %v", err)
	}
	req := p.IDToken["acrs"]
	if req == nil {
		return nil, nil
	}
	out := append([]string(nil), req.Values...)
	if req.Value != "" {
		out = append(out, req.Value)
	}
	return out, nil
}

// tokenResponse is Entra's token endpoint answer.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token,omitempty"`
}

// CodeExchange redeems a code once, always verifying PKCE, and issues
// Entra-shaped tokens.
func (s *tenantServer) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	a, err := s.p.store.takeCode(r.Data.Code)
	if err != nil || a.issuer != s.issuer {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code is unknown, expired or already used")
	}
	if r.Client.GetID() != a.req.ClientID {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client")
	}
	if r.Data.RedirectURI != a.req.RedirectURI {
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not match the authorization request")
	}
	if err := op.AuthorizeCodeChallenge(r.Data.CodeVerifier, a.GetCodeChallenge()); err != nil {
		return nil, err
	}
	u, ok := s.p.store.userByOID(a.userOID)
	if !ok {
		return nil, oidc.ErrInvalidGrant().WithDescription("the user no longer exists")
	}
	resp, err := s.p.issue(&a, u)
	if err != nil {
		return nil, oidc.ErrInvalidScope().WithDescription("%s", err.Error())
	}
	s.p.log.InfoContext(ctx, "devidp: tokens issued", "client_id", a.req.ClientID, "user", u.Login, "tenant", u.TenantID)
	return op.NewResponse(resp), nil
}

// issue creates the token response for a completed request.
func (p *Provider) issue(a *authRequest, u User) (*tokenResponse, error) {
	now := p.now()
	idc, err := p.idTokenClaims(a, u, now)
	if err != nil {
		return nil, err
	}
	api, err := p.store.apiOf(a.req.Scopes)
	if err != nil {
		return nil, err
	}
	if api != nil {
		return p.issueForAPI(a, u, api, idc, now)
	}
	scopes := grantedScopes(a.req.Scopes)
	atc, err := p.accessTokenClaims(a, u, scopes, now)
	if err != nil {
		return nil, err
	}
	idt, err := p.sign(idc)
	if err != nil {
		return nil, err
	}
	at, err := p.sign(atc)
	if err != nil {
		return nil, err
	}
	full := make([]string, len(scopes))
	for i, sc := range scopes {
		full[i] = GraphAudience + "/" + sc
	}
	secs := int64(p.lifetime.Seconds())
	return &tokenResponse{
		TokenType: "Bearer", Scope: strings.Join(full, " "),
		ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: at, IDToken: idt,
	}, nil
}

// issueForAPI answers a code exchange that asked for scopes of a
// registered API: the ID token, and a delegated access token for the API.
func (p *Provider) issueForAPI(a *authRequest, u User, req *apiRequest, idc map[string]any, now time.Time) (*tokenResponse, error) {
	oc, ok := p.store.client(a.req.ClientID)
	if !ok {
		return nil, ErrUnknownClient
	}
	if len(req.scopes) == 0 {
		return nil, fmt.Errorf("a delegated token needs a scope of the API")
	}
	atc, err := p.apiTokenClaims(req, a.issuer, u.TenantID, &oc.Client, &u, now)
	if err != nil {
		return nil, err
	}
	idt, err := p.sign(idc)
	if err != nil {
		return nil, err
	}
	at, err := p.sign(atc)
	if err != nil {
		return nil, err
	}
	full := make([]string, len(req.scopes))
	for i, sc := range req.scopes {
		full[i] = req.resource + "/" + sc
	}
	secs := int64(p.lifetime.Seconds())
	return &tokenResponse{TokenType: "Bearer", Scope: strings.Join(full, " "),
		ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: at, IDToken: idt}, nil
}

// EndSession ends the (stateless) sign-in and redirects only to a
// post-logout URI registered for the client named by client_id or by the
// id_token_hint's audience; otherwise it shows the signed-out page.
func (s *tenantServer) EndSession(ctx context.Context, r *op.Request[oidc.EndSessionRequest]) (*op.Redirect, error) {
	d := r.Data
	clientID := d.ClientID
	if d.IdTokenHint != "" {
		aud, err := s.p.hintAudience(d.IdTokenHint)
		if err != nil || (clientID != "" && clientID != aud) {
			return nil, oidc.ErrInvalidRequest().WithDescription("id_token_hint is invalid")
		}
		clientID = aud
	}
	signedOut := s.p.base + "/signedout"
	if d.PostLogoutRedirectURI == "" || clientID == "" {
		return op.NewRedirect(signedOut), nil
	}
	c, ok := s.p.store.client(clientID)
	if !ok || !slices.Contains(c.Client.PostLogoutRedirectURIs, d.PostLogoutRedirectURI) {
		return op.NewRedirect(signedOut + "?unregistered=1"), nil
	}
	target, err := url.Parse(d.PostLogoutRedirectURI)
	if err != nil {
		return op.NewRedirect(signedOut), nil
	}
	if d.State != "" {
		q := target.Query()
		q.Set("state", d.State)
		target.RawQuery = q.Encode()
	}
	s.p.log.InfoContext(ctx, "devidp: signed out", "client_id", clientID)
	return op.NewRedirect(target.String()), nil
}

// hintAudience verifies an id_token_hint's signature and issuer (expiry is
// not checked, as OIDC allows expired hints) and returns its audience.
func (p *Provider) hintAudience(token string) (string, error) {
	payload, err := p.verifySignature(token)
	if err != nil {
		return "", fmt.Errorf("%w: hint", err)
	}
	var c struct {
		Aud string `json:"aud"`
		Iss string `json:"iss"`
		Ver string `json:"ver"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Ver != "2.0" || !slices.Contains(p.issuers(), c.Iss) {
		return "", fmt.Errorf("%w: hint is not an ID token of this provider", ErrBadToken)
	}
	return c.Aud, nil
}
