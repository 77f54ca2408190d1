package devidp_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/testkit"
)

const (
	clientID     = "postern-auth"
	clientSecret = "dev-secret"
	redirectURI  = "https://auth.localhost/callback"
	logoutURI    = "https://auth.localhost/signed-out"
	acrsClaimC1  = `{"id_token":{"acrs":{"essential":true,"values":["c1"]}}}`
	groupsScope  = "openid profile email offline_access https://graph.microsoft.com/GroupMember.Read.All"
)

type env struct {
	p     *devidp.Provider
	http  *http.Client
	clock *testkit.Clock
}

// startIDP runs a provider with the demo users on TLS loopback and returns
// a client that reaches any *.localhost name at it and stops at the
// relying party's redirect URI.
func startIDP(t testing.TB) *env {
	t.Helper()
	ca, err := devcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost", "*.localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	clk := testkit.NewClock(time.Now())
	p, err := devidp.Listen("127.0.0.1:0", devcert.ServerTLS(cert), devidp.Config{
		UsersFile: "testdata/users.yaml",
		Clients: []devidp.Client{{
			ID: clientID, Secret: clientSecret,
			RedirectURIs: []string{redirectURI}, PostLogoutRedirectURIs: []string{logoutURI},
		}, {
			ID: daemonID, Secret: daemonSecret, AppRoles: map[string][]string{apiV2ID: {"Records.Read.All"}},
		}, {
			ID: strangerID, Secret: daemonSecret,
		}},
		APIs: []devidp.API{
			{ClientID: apiV2ID, IdentifierURI: "api://records", Scopes: []string{"Records.Read", "Records.Write"}, IDTypClaim: true},
			{ClientID: apiV1ID, IdentifierURI: "api://legacy", Scopes: []string{"Legacy.Read"}, Version: 1},
		},
		Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	u, _ := url.Parse(p.BaseURL())
	target := net.JoinHostPort("127.0.0.1", u.Port())
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, target)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Host == "auth.localhost" {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	return &env{p: p, http: c, clock: clk}
}

func (e *env) ctx(t testing.TB) context.Context {
	return oidc.ClientContext(t.Context(), e.http)
}

func random(t testing.TB) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// flow holds one sign-in's client-side state.
type flow struct {
	issuer   string
	provider *oidc.Provider
	conf     oauth2.Config
	state    string
	nonce    string
	verifier string
}

func (e *env) newFlow(t testing.TB, issuer, scope string) *flow {
	t.Helper()
	prov, err := oidc.NewProvider(e.ctx(t), issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	ep := prov.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &flow{
		issuer: issuer, provider: prov,
		conf:  oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Endpoint: ep, RedirectURL: redirectURI, Scopes: strings.Fields(scope)},
		state: random(t), nonce: random(t), verifier: oauth2.GenerateVerifier(),
	}
}

var (
	hiddenID = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]+)">`)
	dataUser = regexp.MustCompile(`data-user="([^"]+)"`)
)

// authorize opens the authorization URL and returns the login page body
// and its final URL.
func (e *env) authorize(t testing.TB, f *flow, opts ...oauth2.AuthCodeOption) (string, *url.URL) {
	t.Helper()
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(f.nonce), oauth2.S256ChallengeOption(f.verifier)}, opts...)
	resp, err := e.http.Get(f.conf.AuthCodeURL(f.state, opts...))
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: got status %d, want 200: %s", resp.StatusCode, body)
	}
	return string(body), resp.Request.URL
}

// pick submits the login form as button (name=value) and returns the
// redirect to the relying party.
func (e *env) pick(t testing.TB, page string, loginURL *url.URL, field, value string) *url.URL {
	t.Helper()
	m := hiddenID.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login page has no request id field: %s", page)
	}
	form := url.Values{"id": {m[1]}, field: {value}}
	resp, err := e.http.PostForm(loginURL.ResolveReference(&url.URL{Path: "/login"}).String(), form)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("login: got status %d, want 302 to the relying party: %s", resp.StatusCode, body)
	}
	return loc
}

// signIn runs a full flow as login and returns the token and verified ID
// token claims.
func (e *env) signIn(t testing.TB, issuer, login, scope string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, map[string]any) {
	t.Helper()
	f := e.newFlow(t, issuer, scope)
	page, loginURL := e.authorize(t, f, opts...)
	back := e.pick(t, page, loginURL, "user", login)
	if got := back.Query().Get("state"); got != f.state {
		t.Fatalf("state: got %q, want %q", got, f.state)
	}
	tok, err := f.conf.Exchange(e.ctx(t), back.Query().Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := f.provider.Verifier(&oidc.Config{ClientID: clientID, Now: e.clock.Now}).Verify(e.ctx(t), raw)
	if err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	if idt.Nonce != f.nonce {
		t.Fatalf("nonce: got %q, want %q", idt.Nonce, f.nonce)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return tok, claims
}

func TestDiscovery(t *testing.T) {
	e := startIDP(t)
	issuer := e.p.Issuer()
	if want := "/" + devidp.DemoTenantID + "/v2.0"; !strings.HasSuffix(issuer, want) || !strings.HasPrefix(issuer, "https://idp.localhost:") {
		t.Fatalf("issuer: got %q, want https://idp.localhost:PORT%s", issuer, want)
	}
	var doc struct {
		Issuer     string   `json:"issuer"`
		Authorize  string   `json:"authorization_endpoint"`
		Token      string   `json:"token_endpoint"`
		EndSession string   `json:"end_session_endpoint"`
		JWKS       string   `json:"jwks_uri"`
		PKCE       []string `json:"code_challenge_methods_supported"`
	}
	getJSON(t, e.http, issuer+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != issuer {
		t.Errorf("issuer: got %q, want %q", doc.Issuer, issuer)
	}
	for name, ep := range map[string]string{"authorize": doc.Authorize, "token": doc.Token, "end_session": doc.EndSession, "jwks": doc.JWKS} {
		if !strings.HasPrefix(ep, issuer+"/") {
			t.Errorf("%s endpoint: got %q, want under %q", name, ep, issuer)
		}
	}
	if !slices.Contains(doc.PKCE, "S256") {
		t.Errorf("code_challenge_methods_supported: got %v, want S256", doc.PKCE)
	}
	var jwks struct {
		Keys []struct{ Kid, Alg, Use, Kty string }
	}
	getJSON(t, e.http, doc.JWKS, &jwks)
	if len(jwks.Keys) != 1 || jwks.Keys[0].Kid == "" || jwks.Keys[0].Alg != "RS256" || jwks.Keys[0].Use != "sig" {
		t.Errorf("jwks: got %+v, want one RS256 signing key with kid", jwks.Keys)
	}
	other := e.p.IssuerFor(devidp.DemoOtherTenantID)
	getJSON(t, e.http, other+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != other || other == issuer {
		t.Errorf("second tenant issuer: got %q, want %q", doc.Issuer, other)
	}
}

func getJSON(t testing.TB, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got status %d, want 200", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestSignInClaims(t *testing.T) {
	e := startIDP(t)
	claimsParam := oauth2.SetAuthURLParam("claims", acrsClaimC1)
	tests := []struct {
		name      string
		login     string
		opts      []oauth2.AuthCodeOption
		groups    []string // nil: no groups claim
		overage   bool
		roles     []string
		acrs      []string // nil: no acrs claim
		guestHome string
	}{
		{name: "member with group and role", login: "alice", groups: []string{devidp.DemoSupportGroupID}, roles: []string{"SmartMoney.User"}},
		{name: "acrs requested and satisfied", login: "bob", opts: []oauth2.AuthCodeOption{claimsParam}, roles: []string{"SmartMoney.Admin", "SmartMoney.User"}, acrs: []string{"c1"}},
		{name: "acrs requested not satisfied", login: "alice", opts: []oauth2.AuthCodeOption{claimsParam}, groups: []string{devidp.DemoSupportGroupID}, roles: []string{"SmartMoney.User"}},
		{name: "acrs satisfiable but not requested", login: "bob", roles: []string{"SmartMoney.Admin", "SmartMoney.User"}},
		{name: "group overage", login: "carol", overage: true, roles: []string{"SmartMoney.User"}},
		{name: "b2b guest", login: "dave", roles: []string{"SmartMoney.User"}, guestHome: devidp.DemoOtherTenantID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, c := e.signIn(t, e.p.Issuer(), tc.login, groupsScope, tc.opts...)
			var u devidp.User
			for _, x := range e.p.Users() {
				if x.Login == tc.login {
					u = x
				}
			}
			want := map[string]any{"iss": e.p.Issuer(), "aud": clientID, "oid": u.ObjectID, "tid": devidp.DemoTenantID,
				"ver": "2.0", "preferred_username": u.Username, "name": u.Name, "email": u.Email}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("%s: got %v, want %v", k, c[k], v)
				}
			}
			for _, k := range []string{"sub", "uti", "rh", "iat", "nbf", "exp"} {
				if c[k] == nil || c[k] == "" {
					t.Errorf("%s: missing", k)
				}
			}
			for _, k := range []string{"amr", "azp", "client_id", "auth_time", "at_hash", "c_hash"} {
				if _, ok := c[k]; ok {
					t.Errorf("%s: got %v, want absent (Entra v2 ID tokens have none)", k, c[k])
				}
			}
			if sub, _ := c["sub"].(string); sub == u.ObjectID || len(sub) != 43 {
				t.Errorf("sub: got %q, want a 43-char pairwise id, not the oid", sub)
			}
			if got := strs(c["groups"]); !slices.Equal(got, tc.groups) {
				t.Errorf("groups: got %v, want %v", got, tc.groups)
			}
			if got := strs(c["roles"]); !slices.Equal(got, tc.roles) {
				t.Errorf("roles: got %v, want %v", got, tc.roles)
			}
			if got := strs(c["acrs"]); !slices.Equal(got, tc.acrs) {
				t.Errorf("acrs: got %v, want %v", got, tc.acrs)
			}
			checkOverage(t, c, tc.overage, u.ObjectID)
			wantIdp := ""
			if tc.guestHome != "" {
				wantIdp = "https://sts.windows.net/" + tc.guestHome + "/"
			}
			if got, _ := c["idp"].(string); got != wantIdp {
				t.Errorf("idp: got %q, want %q", got, wantIdp)
			}
		})
	}
}

func checkOverage(t testing.TB, c map[string]any, want bool, oid string) {
	t.Helper()
	names, _ := c["_claim_names"].(map[string]any)
	sources, _ := c["_claim_sources"].(map[string]any)
	if !want {
		if names != nil || sources != nil {
			t.Errorf("overage claims: got %v %v, want none", names, sources)
		}
		return
	}
	if _, ok := c["groups"]; ok {
		t.Errorf("groups: present with overage")
	}
	src, _ := names["groups"].(string)
	ep, _ := sources[src].(map[string]any)
	if wantEP := "https://graph.microsoft.com/v1.0/users/" + oid + "/getMemberObjects"; src != "src1" || ep["endpoint"] != wantEP {
		t.Errorf("overage: got _claim_names %v _claim_sources %v, want src1 → %s", names, sources, wantEP)
	}
}

func TestForeignTenantIssuer(t *testing.T) {
	e := startIDP(t)
	other := e.p.IssuerFor(devidp.DemoOtherTenantID)
	_, c := e.signIn(t, other, "erin", "openid profile")
	if c["iss"] != other || c["tid"] != devidp.DemoOtherTenantID {
		t.Errorf("got iss %v tid %v, want %s and %s", c["iss"], c["tid"], other, devidp.DemoOtherTenantID)
	}
	if _, ok := c["email"]; ok {
		t.Errorf("email: got %v without the email scope, want absent", c["email"])
	}
	// The Contoso login page does not offer Fabrikam's member.
	f := e.newFlow(t, e.p.Issuer(), "openid")
	page, _ := e.authorize(t, f)
	var users []string
	for _, m := range dataUser.FindAllStringSubmatch(page, -1) {
		users = append(users, m[1])
	}
	if want := []string{"alice", "bob", "carol", "dave"}; !slices.Equal(users, want) {
		t.Errorf("login page users: got %v, want %v", users, want)
	}
}

// graphCall posts getMemberObjects and returns status and decoded body.
func graphCall(t testing.TB, e *env, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.p.GraphURL()+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("graph body: %v", err)
	}
	return resp.StatusCode, out
}

func graphErrorCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestGraphGetMemberObjects(t *testing.T) {
	e := startIDP(t)
	carolTok, claims := e.signIn(t, e.p.Issuer(), "carol", groupsScope)
	oid, _ := claims["oid"].(string)
	aliceTok, _ := e.signIn(t, e.p.Issuer(), "alice", "openid profile User.Read")
	body := `{"securityEnabledOnly":false}`
	for _, path := range []string{"/v1.0/me/getMemberObjects", "/v1.0/users/" + oid + "/getMemberObjects"} {
		status, out := graphCall(t, e, path, carolTok.AccessToken, body)
		groups := strs(out["value"])
		if status != 200 || len(groups) != 500 || groups[0] != devidp.DemoSupportGroupID {
			t.Errorf("%s: got status %d and %d groups, want 200 and 500", path, status, len(groups))
		}
		if out["@odata.context"] != "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)" {
			t.Errorf("@odata.context: got %v", out["@odata.context"])
		}
	}
	tampered := carolTok.AccessToken[:len(carolTok.AccessToken)-4] + "AAAA"
	_, idTokenOnly := carolTok.Extra("id_token").(string)
	tests := []struct {
		name, path, token, body string
		status                  int
		code                    string
	}{
		{"no token", "/v1.0/me/getMemberObjects", "", body, 401, "InvalidAuthenticationToken"},
		{"garbage token", "/v1.0/me/getMemberObjects", "not-a-token", body, 401, "InvalidAuthenticationToken"},
		{"tampered token", "/v1.0/me/getMemberObjects", tampered, body, 401, "InvalidAuthenticationToken"},
		{"id token instead of access token", "/v1.0/me/getMemberObjects", carolTok.Extra("id_token").(string), body, 401, "InvalidAuthenticationToken"},
		{"missing body field", "/v1.0/me/getMemberObjects", carolTok.AccessToken, `{}`, 400, "Request_BadRequest"},
		{"other user with User.Read only", "/v1.0/users/" + oid + "/getMemberObjects", aliceTok.AccessToken, body, 403, "Authorization_RequestDenied"},
		{"own groups with User.Read", "/v1.0/me/getMemberObjects", aliceTok.AccessToken, body, 200, ""},
		{"unknown user", "/v1.0/users/00000000-0000-0000-0000-000000000000/getMemberObjects", carolTok.AccessToken, body, 404, "Request_ResourceNotFound"},
	}
	if !idTokenOnly {
		t.Fatal("no id_token in token response")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := graphCall(t, e, tc.path, tc.token, tc.body)
			if status != tc.status || graphErrorCode(out) != tc.code {
				t.Errorf("got %d %q, want %d %q", status, graphErrorCode(out), tc.status, tc.code)
			}
		})
	}
	t.Run("failing", func(t *testing.T) {
		e.p.Graph().SetFailing(true)
		defer e.p.Graph().SetFailing(false)
		status, out := graphCall(t, e, "/v1.0/me/getMemberObjects", carolTok.AccessToken, body)
		if status != 500 || graphErrorCode(out) != "generalException" {
			t.Errorf("got %d %q, want 500 generalException", status, graphErrorCode(out))
		}
	})
	t.Run("expired token", func(t *testing.T) {
		e.clock.Add(2 * time.Hour)
		defer e.clock.Add(-2 * time.Hour)
		status, out := graphCall(t, e, "/v1.0/me/getMemberObjects", carolTok.AccessToken, body)
		if status != 401 || graphErrorCode(out) != "InvalidAuthenticationToken" {
			t.Errorf("got %d %q, want 401 InvalidAuthenticationToken", status, graphErrorCode(out))
		}
	})
}

func TestTokenEndpointRefusals(t *testing.T) {
	e := startIDP(t)
	tests := []struct {
		name     string
		keeps    bool // the code survives (client authentication failed first)
		exchange func(f *flow, code string) error
	}{
		{"wrong verifier", false, func(f *flow, code string) error {
			_, err := f.conf.Exchange(e.ctx(t), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
			return err
		}},
		{"no verifier", false, func(f *flow, code string) error {
			_, err := f.conf.Exchange(e.ctx(t), code)
			return err
		}},
		{"wrong client secret", true, func(f *flow, code string) error {
			c := f.conf
			c.ClientSecret = "wrong"
			_, err := c.Exchange(e.ctx(t), code, oauth2.VerifierOption(f.verifier))
			return err
		}},
		{"wrong redirect uri", false, func(f *flow, code string) error {
			c := f.conf
			c.RedirectURL = "https://auth.localhost/other"
			_, err := c.Exchange(e.ctx(t), code, oauth2.VerifierOption(f.verifier))
			return err
		}},
		{"code replay", false, func(f *flow, code string) error {
			if _, err := f.conf.Exchange(e.ctx(t), code, oauth2.VerifierOption(f.verifier)); err != nil {
				return errors.New("first exchange failed: " + err.Error())
			}
			_, err := f.conf.Exchange(e.ctx(t), code, oauth2.VerifierOption(f.verifier))
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := e.newFlow(t, e.p.Issuer(), "openid")
			page, loginURL := e.authorize(t, f)
			code := e.pick(t, page, loginURL, "user", "alice").Query().Get("code")
			err := tc.exchange(f, code)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode/100 != 4 {
				t.Fatalf("got %v, want a 4xx token error", err)
			}
			// A refused redemption burns the code; a refused client
			// authentication does not reach it.
			_, err = f.conf.Exchange(e.ctx(t), code, oauth2.VerifierOption(f.verifier))
			if got := err == nil; got != tc.keeps {
				t.Errorf("code usable after the refusal: got %v, want %v (%v)", got, tc.keeps, err)
			}
		})
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	e := startIDP(t)
	noRedirect := *e.http
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tests := []struct {
		name  string
		query func(f *flow) string
		error string // "" means a page, not a redirect, is expected
	}{
		{"no pkce", func(f *flow) string { return f.conf.AuthCodeURL(f.state) }, "invalid_request"},
		{"plain pkce", func(f *flow) string {
			return f.conf.AuthCodeURL(f.state, oauth2.SetAuthURLParam("code_challenge", f.verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
		}, "invalid_request"},
		{"prompt none", func(f *flow) string {
			return f.conf.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("prompt", "none"))
		}, "login_required"},
		{"bad claims json", func(f *flow) string {
			return f.conf.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("claims", "{nope"))
		}, "invalid_request"},
		{"unregistered redirect uri", func(f *flow) string {
			c := f.conf
			c.RedirectURL = "https://evil.localhost/callback"
			return c.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier))
		}, ""},
		{"unknown client", func(f *flow) string {
			c := f.conf
			c.ClientID = "nobody"
			return c.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier))
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := e.newFlow(t, e.p.Issuer(), "openid")
			resp, err := noRedirect.Get(tc.query(f))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := resp.Location()
			if tc.error == "" {
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("got %d %v, want a 400 error page", resp.StatusCode, loc)
				}
				return
			}
			if loc == nil || !strings.HasPrefix(loc.String(), redirectURI) || loc.Query().Get("error") != tc.error || loc.Query().Get("state") != f.state {
				t.Fatalf("got %d %v, want redirect to %s with error=%s and state", resp.StatusCode, loc, redirectURI, tc.error)
			}
		})
	}
}

func TestDeny(t *testing.T) {
	e := startIDP(t)
	f := e.newFlow(t, e.p.Issuer(), "openid")
	page, loginURL := e.authorize(t, f)
	if !strings.Contains(page, `data-user="alice"`) {
		t.Fatalf("login page lacks alice's button: %s", page)
	}
	back := e.pick(t, page, loginURL, "deny", "1")
	if back.Query().Get("error") != "access_denied" || back.Query().Get("state") != f.state || back.Query().Get("code") != "" {
		t.Errorf("got %v, want error=access_denied with state and no code", back)
	}
	// The request is gone: picking a user now fails.
	resp, err := e.http.PostForm(e.p.BaseURL()+"/login", url.Values{"id": {hiddenID.FindStringSubmatch(page)[1]}, "user": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("reuse after deny: got %d, want 400", resp.StatusCode)
	}
}

func TestEndSession(t *testing.T) {
	e := startIDP(t)
	tok, _ := e.signIn(t, e.p.Issuer(), "alice", "openid")
	hint, _ := tok.Extra("id_token").(string)
	noRedirect := *e.http
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	end := e.p.Issuer() + "/logout?"
	tests := []struct {
		name  string
		query url.Values
		want  string // prefix of the Location
	}{
		{"registered uri by client_id", url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {logoutURI}, "state": {"s1"}}, logoutURI + "?state=s1"},
		{"registered uri by id_token_hint", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {logoutURI}}, logoutURI},
		{"unregistered uri", url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {"https://evil.localhost/"}}, e.p.BaseURL() + "/signedout?unregistered=1"},
		{"no client", url.Values{"post_logout_redirect_uri": {logoutURI}}, e.p.BaseURL() + "/signedout"},
		{"nothing", url.Values{}, e.p.BaseURL() + "/signedout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := noRedirect.Get(end + tc.query.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := resp.Location()
			if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), tc.want) {
				t.Errorf("got %d %v, want 302 to %s", resp.StatusCode, loc, tc.want)
			}
		})
	}
	resp, err := e.http.Get(e.p.BaseURL() + "/signedout")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "signed out") {
		t.Errorf("signed-out page: got %d %q", resp.StatusCode, body)
	}
	for range 2 {
		if err := e.p.Close(); err != nil {
			t.Errorf("close: got %v, want nil", err)
		}
	}
	if _, err := e.http.Get(e.p.BaseURL() + "/signedout"); err == nil {
		t.Errorf("get after close: got nil error, want a refused connection")
	}
}
