package devidp

import (
	"context"
	"crypto/rsa"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// requestTTL bounds how long an authorization request, and the code issued
// for it, stays usable.
const requestTTL = 10 * time.Minute

// authRequest is one pending authorization request; it implements
// op.AuthRequest. Fields are written under store.mu only.
type authRequest struct {
	id       string
	issuer   string
	tenant   string
	created  time.Time
	req      oidc.AuthRequest
	acrs     []string // values requested through the claims parameter
	userOID  string
	authTime time.Time
	done     bool
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return nil }
func (a *authRequest) GetAudience() []string                 { return []string{a.req.ClientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.req.ClientID }
func (a *authRequest) GetNonce() string                      { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string                { return a.req.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.req.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.req.ResponseMode }
func (a *authRequest) GetScopes() []string                   { return a.req.Scopes }
func (a *authRequest) GetState() string                      { return a.req.State }
func (a *authRequest) GetSubject() string                    { return a.userOID }
func (a *authRequest) Done() bool                            { return a.done }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return challengeOf(&a.req) }

func challengeOf(r *oidc.AuthRequest) *oidc.CodeChallenge {
	if r.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
}

// opClient adapts a Client to op.Client.
type opClient struct {
	Client
	loginURL string // base login URL; the request id is appended
	store    *store
}

func (c *opClient) GetID() string                    { return c.ID }
func (c *opClient) RedirectURIs() []string           { return c.Client.RedirectURIs }
func (c *opClient) PostLogoutRedirectURIs() []string { return c.Client.PostLogoutRedirectURIs }
func (c *opClient) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}
func (c *opClient) AuthMethod() oidc.AuthMethod {
	if c.Secret == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c *opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *opClient) GrantTypes() []oidc.GrantType {
	if c.Secret != "" {
		return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeClientCredentials}
	}
	return []oidc.GrantType{oidc.GrantTypeCode}
}
func (c *opClient) LoginURL(id string) string { return c.loginURL + "?id=" + id }
func (c *opClient) AccessTokenType() op.AccessTokenType {
	return op.AccessTokenTypeJWT
}
func (c *opClient) IDTokenLifetime() time.Duration { return time.Hour }
func (c *opClient) DevMode() bool                  { return false }
func (c *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *opClient) IsScopeAllowed(scope string) bool {
	if _, ok := graphScope(scope); ok {
		return true
	}
	_, name, ok := c.store.apiScope(scope)
	return ok && name != ".default"
}
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *opClient) ClockSkew() time.Duration             { return 0 }

// graphScopes are the Microsoft Graph delegated permissions the provider
// grants, by their short name.
var graphScopes = []string{"User.Read", "GroupMember.Read.All", "Directory.Read.All"}

// graphScope reports the short Graph permission name of a requested scope
// ("User.Read" or "https://graph.microsoft.com/User.Read").
func graphScope(scope string) (string, bool) {
	short := strings.TrimPrefix(scope, "https://graph.microsoft.com/")
	if slices.Contains(graphScopes, short) {
		return short, true
	}
	return "", false
}

// store holds the provider's mutable state and implements op.Storage.
type store struct {
	now      func() time.Time
	loginURL string
	users    []User
	apis     []API

	mu       sync.Mutex   // guards the following
	keys     []signingKey // the signing key first, then older keys still published
	requests map[string]*authRequest
	codes    map[string]string // code → request id
	clients  map[string]*opClient
}

var _ op.Storage = (*store)(nil)

func (s *store) userByOID(oid string) (User, bool) {
	for _, u := range s.users {
		if u.ObjectID == oid {
			return u, true
		}
	}
	return User{}, false
}

func (s *store) userByLogin(login string) (User, bool) {
	for _, u := range s.users {
		if u.Login == login {
			return u, true
		}
	}
	return User{}, false
}

// addRequest stores a new authorization request for tenant.
func (s *store) addRequest(issuer, tenant string, req *oidc.AuthRequest, acrs []string) (*authRequest, error) {
	id, err := randomString(16)
	if err != nil {
		return nil, err
	}
	a := &authRequest{id: id, issuer: issuer, tenant: tenant, created: s.now(), req: *req, acrs: acrs}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	s.requests[id] = a
	return a, nil
}

// expireLocked drops requests older than requestTTL.
func (s *store) expireLocked() {
	cutoff := s.now().Add(-requestTTL)
	for id, a := range s.requests {
		if a.created.Before(cutoff) {
			delete(s.requests, id)
		}
	}
	for code, id := range s.codes {
		if _, ok := s.requests[id]; !ok {
			delete(s.codes, code)
		}
	}
}

// request returns a snapshot of a pending request.
func (s *store) request(id string) (authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	a, ok := s.requests[id]
	if !ok {
		return authRequest{}, ErrUnknownRequest
	}
	return *a, nil
}

// complete marks a pending request as signed in by user.
func (s *store) complete(id string, u User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[id]
	if !ok || a.done {
		return ErrUnknownRequest
	}
	a.userOID, a.authTime, a.done = u.ObjectID, s.now(), true
	return nil
}

// takeCode removes and returns the request a code was issued for: a code
// is good for one attempt, successful or not.
func (s *store) takeCode(code string) (authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	id, ok := s.codes[code]
	delete(s.codes, code)
	a, okReq := s.requests[id]
	delete(s.requests, id)
	if !ok || !okReq || !a.done {
		return authRequest{}, ErrUnknownRequest
	}
	return *a, nil
}

func (s *store) client(id string) (*opClient, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	return c, ok
}

// --- op.AuthStorage ---

// CreateAuthRequest is not used: tenantServer.Authorize stores requests.
func (s *store) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, fmt.Errorf("devidp: create auth request: %w", oidc.ErrServerError())
}

func (s *store) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	a, err := s.request(id)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func (s *store) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[s.codes[code]]
	if !ok {
		return nil, ErrUnknownRequest
	}
	c := *a
	return &c, nil
}

func (s *store) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[id]
	if !ok || !a.done {
		return ErrUnknownRequest
	}
	for c, rid := range s.codes {
		if rid == id { // one code per request
			delete(s.codes, c)
		}
	}
	s.codes[code] = id
	return nil
}

func (s *store) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	return nil
}

func (s *store) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return "", time.Time{}, oidc.ErrUnsupportedGrantType()
}

func (s *store) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
}

func (s *store) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *store) TerminateSession(context.Context, string, string) error { return nil }

func (s *store) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrUnsupportedGrantType()
}

func (s *store) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

type signingKey struct {
	key *rsa.PrivateKey
	kid string
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.kid }

type publicKey struct {
	key *rsa.PublicKey
	kid string
}

func (k publicKey) ID() string                         { return k.kid }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }

// signer returns the current signing key.
func (s *store) signer() signingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0]
}

// publicKey returns the published key kid.
func (s *store) publicKey(kid string) (*rsa.PublicKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.kid == kid {
			return &k.key.PublicKey, true
		}
	}
	return nil, false
}

func (s *store) SigningKey(context.Context) (op.SigningKey, error) {
	return s.signer(), nil
}

func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *store) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = publicKey{&k.key.PublicKey, k.kid}
	}
	return out, nil
}

// --- op.OPStorage ---

func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.client(id)
	if !ok {
		// An *oidc.Error, so the library answers 400 rather than 500.
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown client_id").WithParent(ErrUnknownClient)
	}
	return c, nil
}

func (s *store) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.client(id)
	if !ok || !constantTimeEqual(c.Secret, secret) {
		return fmt.Errorf("%w or wrong secret", ErrUnknownClient)
	}
	return nil
}

func (s *store) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *store) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return oidc.ErrServerError()
}

func (s *store) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return oidc.ErrServerError()
}

func (s *store) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *store) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, oidc.ErrInvalidClient()
}

func (s *store) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrInvalidScope()
}

func (s *store) Health(context.Context) error { return nil }
