package bearer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/postern/postern/pkg/bearer"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/testkit"
)

const (
	daemonID   = "11111111-2222-4333-8444-555555555555"
	strangerID = "99999999-2222-4333-8444-555555555555"
	nativeID   = "22222222-2222-4333-8444-555555555555"
	secret     = "daemon-secret"
	apiV2ID    = "0a1b2c3d-0000-4000-8000-00000000a002"
	apiV1ID    = "0a1b2c3d-0000-4000-8000-00000000a001"
	tid        = devidp.DemoTenantID
	otherTID   = devidp.DemoOtherTenantID
)

// env is a development provider standing in for Entra, a workload issuer
// standing in for GitHub Actions, a catalogue trusting both, and a
// verifier whose fetches are counted.
type env struct {
	idp     *devidp.Provider
	gh      *devidp.WorkloadIssuer
	cat     *catalog.Catalog
	v       *bearer.Verifier
	clock   *testkit.Clock
	client  *http.Client
	fetches atomic.Int64 // requests the verifier made
	hosts   sync.Map     // host -> requests the verifier made to it
}

// countingTransport counts the verifier's requests per host.
type countingTransport struct {
	e    *env
	next http.RoundTripper
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.e.fetches.Add(1)
	n, _ := c.e.hosts.LoadOrStore(r.URL.Hostname(), new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	return c.next.RoundTrip(r)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ca, err := devcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost", "*.localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{clock: testkit.NewClock(time.Now())}
	e.idp, err = devidp.Listen("127.0.0.1:0", devcert.ServerTLS(cert), devidp.Config{
		Users: devidp.DemoUsers(),
		Clients: []devidp.Client{
			{ID: daemonID, Secret: secret, AppRoles: map[string][]string{apiV2ID: {"Records.Read.All"}}},
			{ID: strangerID, Secret: secret},
			{ID: nativeID, RedirectURIs: []string{"http://localhost/cb"}},
		},
		APIs: []devidp.API{
			{ClientID: apiV2ID, IdentifierURI: "api://records", Scopes: []string{"Records.Read", "Records.Write"}, IDTypClaim: true},
			{ClientID: apiV1ID, IdentifierURI: "api://legacy", Scopes: []string{"Legacy.Read"}, Version: 1},
		},
		Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.idp.Close() })
	e.gh, err = devidp.ListenWorkloadIssuer("127.0.0.1:0", devcert.ServerTLS(cert), "https://token.localhost:{port}/gh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.gh.Close() })
	d := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
	}
	t.Cleanup(tr.CloseIdleConnections)
	e.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	e.cat = e.catalog(t, "")
	e.v = bearer.New(bearer.Config{HTTPClient: &http.Client{Transport: countingTransport{e, tr}}, Now: e.clock.Now,
		RefetchInterval: time.Minute})
	return e
}

// catalog returns the test catalogue; extra is appended to its apps.
func (e *env) catalog(t testing.TB, extra string) *catalog.Catalog {
	t.Helper()
	doc := fmt.Sprintf(`home_tenant: %s
entra:
  authority: %s
issuers:
  - id: github
    issuer: %s
connector_groups: [{id: hq}]
apps:
  - id: records
    host: records.example.com
    internal_url: http://10.0.0.1
    connector_group: hq
    preauth: entra
    bearer:
      entra: {audiences: [%s, "api://records"], versions: [2]}
      workloads: [{issuer: github, audiences: ["https://records.example.com"]}]
  - id: legacy
    host: legacy.example.com
    internal_url: http://10.0.0.1
    connector_group: hq
    preauth: entra
    bearer:
      entra: {audiences: ["api://legacy"], versions: [1]}
  - id: partner
    host: partner.example.com
    internal_url: http://10.0.0.1
    connector_group: hq
    preauth: entra
    bearer:
      entra: {audiences: [%s], versions: [2], tenants: [%s]}
  - id: cookie-only
    host: cookie.example.com
    internal_url: http://10.0.0.1
    connector_group: hq
    preauth: entra
%s`, tid, e.idp.BaseURL(), e.gh.Issuer(), apiV2ID, apiV2ID, otherTID, extra)
	c, err := catalog.Parse("catalog.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) app(t testing.TB, id string) *catalog.App {
	t.Helper()
	a, ok := e.cat.App(id)
	if !ok {
		t.Fatalf("no app %s", id)
	}
	return a
}

func (e *env) verify(t testing.TB, app, token string) (*session.Identity, error) {
	t.Helper()
	return e.v.Verify(t.Context(), token, e.cat, e.app(t, app))
}

func (e *env) clientCredentials(t testing.TB, client, scope string) string {
	t.Helper()
	cc := clientcredentials.Config{ClientID: client, ClientSecret: secret, TokenURL: e.idp.Issuer() + "/token",
		Scopes: []string{scope}, AuthStyle: oauth2.AuthStyleInParams}
	tok, err := cc.Token(context.WithValue(t.Context(), oauth2.HTTPClient, e.client))
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	return tok.AccessToken
}

func (e *env) delegated(t testing.TB, login, scope string) string {
	t.Helper()
	tok, err := e.idp.DelegatedToken(login, nativeID, scope)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// entraClaims are a valid v2 app-only token's claims for the records API,
// to be spoiled by each hostile case.
func (e *env) entraClaims() map[string]any {
	now := e.clock.Now()
	return map[string]any{
		"aud": apiV2ID, "iss": e.idp.IssuerFor(tid), "tid": tid, "ver": "2.0", "azp": daemonID,
		"oid": "5f1c0000-0000-4000-8000-000000000001", "sub": "5f1c0000-0000-4000-8000-000000000001",
		"roles": []string{"Records.Read.All"}, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func (e *env) mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := e.idp.MintAccessToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestValidTokens(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, app, token string
		want             session.Identity
	}{
		{"app-only v2", "records", e.clientCredentials(t, daemonID, "api://records/.default"), session.Identity{
			Type: session.PrincipalApp, ClientID: daemonID, TenantID: tid, Roles: []string{"Records.Read.All"}}},
		{"app-only v2 without roles", "records", e.clientCredentials(t, strangerID, "api://records/.default"), session.Identity{
			Type: session.PrincipalApp, ClientID: strangerID, TenantID: tid}},
		{"app-only v1", "legacy", e.clientCredentials(t, daemonID, "api://legacy/.default"), session.Identity{
			Type: session.PrincipalApp, ClientID: daemonID, TenantID: tid}},
		{"delegated v2", "records", e.delegated(t, "bob", "api://records/Records.Read api://records/Records.Write"), session.Identity{
			Type: session.PrincipalUser, ClientID: nativeID, TenantID: tid, Scopes: []string{"Records.Read", "Records.Write"},
			Username: "bob@demo.example", Roles: []string{"SmartMoney.Admin", "SmartMoney.User"}}},
		{"delegated v1", "legacy", e.delegated(t, "alice", "api://legacy/Legacy.Read"), session.Identity{
			Type: session.PrincipalUser, ClientID: nativeID, TenantID: tid, Scopes: []string{"Legacy.Read"}}},
		{"workload", "records", e.ghToken(t, devidp.GitHubClaims("octo/records", "refs/heads/main", "prod", "https://records.example.com")), session.Identity{
			Type: session.PrincipalWorkload, Subject: "wif:github/repo:octo/records:environment:prod", Issuer: "github"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.verify(t, tc.app, tc.token)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			w := tc.want
			if id.Type != w.Type || id.ClientID != w.ClientID || id.TenantID != w.TenantID || id.Issuer != w.Issuer ||
				fmt.Sprint(id.Scopes) != fmt.Sprint(w.Scopes) {
				t.Errorf("got %+v, want %+v", id, w)
			}
			if w.Subject != "" && id.Subject != w.Subject {
				t.Errorf("subject: got %q, want %q", id.Subject, w.Subject)
			}
			if w.Type != session.PrincipalWorkload && id.Subject != id.TenantID+"/"+id.ObjectID {
				t.Errorf("subject: got %q, want <tid>/<oid>", id.Subject)
			}
			if w.Roles != nil && fmt.Sprint(id.Roles) != fmt.Sprint(w.Roles) {
				t.Errorf("roles: got %v, want %v", id.Roles, w.Roles)
			}
			if w.Username != "" && !strings.HasPrefix(id.Username, "bob") {
				t.Errorf("username: got %q, want bob's", id.Username)
			}
		})
	}
}

func (e *env) ghToken(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := e.gh.Mint(claims, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// forge signs claims with a key the issuer never published.
func forge(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jws.CompactSerialize()
	return tok
}

// unsigned builds an "alg: none" token.
func unsigned(claims map[string]any, kid string) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	b, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

func TestHostileTokens(t *testing.T) {
	e := newEnv(t)
	good := e.mint(t, e.entraClaims())
	if _, err := e.verify(t, "records", good); err != nil {
		t.Fatalf("the unspoiled token: %v", err)
	}
	kid := strings.Split(good, ".")[0]
	hdr, _ := base64.RawURLEncoding.DecodeString(kid)
	var h struct{ Kid string }
	json.Unmarshal(hdr, &h)
	with := func(edit func(c map[string]any)) string {
		c := e.entraClaims()
		edit(c)
		return e.mint(t, c)
	}
	rogueRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	rogueEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(
		string(mustB64(t, parts[1])), daemonID, strangerID, 1))) + "." + parts[2]
	v1iss := "https://sts.windows.net/" + tid + "/"
	tests := []struct {
		name, app, token string
		want             error
	}{
		{"wrong audience", "records", with(func(c map[string]any) { c["aud"] = "api://other" }), bearer.ErrWrongAudience},
		{"audience of another app", "legacy", e.clientCredentials(t, daemonID, "api://records/.default"), bearer.ErrWrongVersion},
		{"v1 token for the v1 API presented to a v2 app", "records", e.clientCredentials(t, daemonID, "api://legacy/.default"), bearer.ErrWrongVersion},
		{"two audiences", "records", with(func(c map[string]any) { c["aud"] = []string{apiV2ID, "api://other"} }), bearer.ErrWrongAudience},
		{"wrong tenant", "records", with(func(c map[string]any) { c["tid"], c["iss"] = otherTID, e.idp.IssuerFor(otherTID) }), bearer.ErrWrongTenant},
		{"tenant and issuer disagree", "records", with(func(c map[string]any) { c["iss"] = e.idp.IssuerFor(otherTID) }), bearer.ErrUnknownIssuer},
		{"v2 token with the v1 issuer", "records", with(func(c map[string]any) { c["iss"] = v1iss }), bearer.ErrWrongVersion},
		{"v1 ver with the v2 issuer", "legacy", with(func(c map[string]any) { c["ver"], c["aud"] = "1.0", "api://legacy" }), bearer.ErrWrongVersion},
		{"v2 token with appid", "records", with(func(c map[string]any) { c["appid"] = daemonID }), bearer.ErrWrongVersion},
		{"v2 token without azp", "records", with(func(c map[string]any) { delete(c, "azp") }), bearer.ErrMalformed},
		{"v1 token with azp", "legacy", with(func(c map[string]any) {
			c["ver"], c["iss"], c["aud"], c["appid"] = "1.0", v1iss, "api://legacy", daemonID
		}), bearer.ErrWrongVersion},
		{"no ver", "records", with(func(c map[string]any) { delete(c, "ver") }), bearer.ErrMalformed},
		{"an ID token", "records", with(func(c map[string]any) { c["nonce"] = "n" }), bearer.ErrMalformed},
		{"idtyp app with scp", "records", with(func(c map[string]any) { c["idtyp"], c["scp"] = "app", "Records.Read" }), bearer.ErrMalformed},
		{"expired", "records", with(func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Minute).Unix() }), bearer.ErrExpired},
		{"expired within the skew", "records", with(func(c map[string]any) { c["exp"] = e.clock.Now().Add(-10 * time.Second).Unix() }), nil},
		{"no exp", "records", with(func(c map[string]any) { delete(c, "exp") }), bearer.ErrMalformed},
		{"not yet valid", "records", with(func(c map[string]any) { c["nbf"] = e.clock.Now().Add(time.Minute).Unix() }), bearer.ErrNotYetValid},
		{"issued in the future", "records", with(func(c map[string]any) { c["iat"] = e.clock.Now().Add(time.Minute).Unix() }), bearer.ErrNotYetValid},
		{"unknown kid", "records", forge(t, jose.RS256, rogueRSA, "rogue", e.entraClaims()), bearer.ErrUnknownKey},
		{"known kid, rogue key", "records", forge(t, jose.RS256, rogueRSA, h.Kid, e.entraClaims()), bearer.ErrBadSignature},
		{"ES256 under the RSA key's kid", "records", forge(t, jose.ES256, rogueEC, h.Kid, e.entraClaims()), bearer.ErrAlgorithm},
		{"no kid", "records", forge(t, jose.RS256, rogueRSA, "", e.entraClaims()), bearer.ErrUnknownKey},
		{"alg none", "records", unsigned(e.entraClaims(), h.Kid), bearer.ErrAlgorithm},
		{"HS256 with the public key as secret", "records", forge(t, jose.HS256, []byte(strings.Repeat("k", 64)), h.Kid, e.entraClaims()), bearer.ErrAlgorithm},
		{"tampered payload", "records", tampered, bearer.ErrBadSignature},
		{"not a JWT", "records", "abc.def", bearer.ErrMalformed},
		{"oversized", "records", strings.Repeat("a", bearer.MaxTokenBytes+1), bearer.ErrMalformed},
		{"app accepts no bearer tokens", "cookie-only", good, bearer.ErrNotAccepted},
		{"GitHub token for an app that does not trust GitHub", "legacy",
			e.ghToken(t, devidp.GitHubClaims("octo/records", "refs/heads/main", "", "https://records.example.com")), bearer.ErrUnknownIssuer},
		{"GitHub token for another audience", "records",
			e.ghToken(t, devidp.GitHubClaims("octo/records", "refs/heads/main", "", "https://other.example.com")), bearer.ErrWrongAudience},
		{"GitHub token without sub", "records", e.ghToken(t, map[string]any{"aud": "https://records.example.com"}), bearer.ErrMalformed},
		{"an Entra token from a GitHub-shaped issuer path", "records", with(func(c map[string]any) { c["iss"] = e.gh.Issuer() }), bearer.ErrUnknownKey},
		{"partner tenant accepted where listed", "partner", with(func(c map[string]any) { c["tid"], c["iss"] = otherTID, e.idp.IssuerFor(otherTID) }), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.verify(t, tc.app, tc.token)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), tc.token[:min(40, len(tc.token))]) {
				t.Errorf("the error %q quotes the token", err)
			}
		})
	}
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUnknownIssuerFetchesNothing: a token names its issuer, and an
// attacker picks it; the verifier must fetch nothing for an issuer the
// catalogue does not name, nor for a tenant the app does not accept.
func TestUnknownIssuerFetchesNothing(t *testing.T) {
	e := newEnv(t)
	c := e.entraClaims()
	for _, iss := range []string{"https://attacker.localhost:1/x", e.idp.BaseURL() + "/" + otherTID + "/v2.0", "https://sts.windows.net/" + otherTID + "/"} {
		c["iss"] = iss
		if iss != "https://attacker.localhost:1/x" {
			c["tid"] = otherTID
		}
		if _, err := e.verify(t, "records", e.mint(t, c)); err == nil {
			t.Errorf("iss %s: accepted", iss)
		}
	}
	if n := e.fetches.Load(); n != 0 {
		t.Errorf("got %d fetches, want none", n)
	}
}

// TestKeyRotation: the provider rolls its key over mid-test; a token
// signed with the new key is accepted once the key set is refetched, and
// unknown kids trigger at most one fetch per RefetchInterval.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	before := e.clientCredentials(t, daemonID, "api://records/.default")
	if _, err := e.verify(t, "records", before); err != nil {
		t.Fatal(err)
	}
	first := e.fetches.Load() // discovery and JWKS
	if first != 2 {
		t.Fatalf("first verification: got %d fetches, want 2 (discovery, keys)", first)
	}
	if _, err := e.idp.RotateKey(); err != nil {
		t.Fatal(err)
	}
	after := e.clientCredentials(t, daemonID, "api://records/.default")
	// Within the refetch interval of the first fetch, the new kid is
	// unknown, and a flood of such tokens fetches nothing.
	for i := 0; i < 20; i++ {
		if _, err := e.verify(t, "records", after); !errors.Is(err, bearer.ErrUnknownKey) {
			t.Fatalf("new kid within the refetch interval: got %v, want ErrUnknownKey", err)
		}
	}
	if n := e.fetches.Load(); n != first {
		t.Fatalf("unknown kids within the interval: got %d more fetches, want none", n-first)
	}
	e.clock.Add(61 * time.Second)
	if _, err := e.verify(t, "records", after); err != nil {
		t.Fatalf("new kid after the interval: %v", err)
	}
	if n := e.fetches.Load() - first; n != 1 {
		t.Errorf("rotation: got %d fetches, want 1 (the keys; discovery is kept)", n)
	}
	// The old key stays published: tokens it signed keep verifying (a
	// fresh one, as cached tokens skip the signature).
	e.v = bearer.New(bearer.Config{HTTPClient: e.client, Now: e.clock.Now})
	if _, err := e.verify(t, "records", before); err != nil {
		t.Errorf("token of the old key, still published: %v", err)
	}
	e.idp.RetireOldKeys()
	e.v = bearer.New(bearer.Config{HTTPClient: e.client, Now: e.clock.Now})
	if _, err := e.verify(t, "records", before); !errors.Is(err, bearer.ErrUnknownKey) {
		t.Errorf("token of a retired key: got %v, want ErrUnknownKey", err)
	}
}

func TestCache(t *testing.T) {
	e := newEnv(t)
	tok := e.clientCredentials(t, daemonID, "api://records/.default")
	a, err := e.verify(t, "records", tok)
	if err != nil {
		t.Fatal(err)
	}
	n := e.fetches.Load()
	b, err := e.verify(t, "records", tok)
	if err != nil || a != b || e.fetches.Load() != n || e.v.Len() != 1 {
		t.Fatalf("second verification: got %p (%v), %d cached, want the cached %p and no fetch", b, err, e.v.Len(), a)
	}
	// Another app's entry never hits the cache of this one.
	if _, err := e.verify(t, "legacy", tok); err == nil {
		t.Error("token cached for records accepted by legacy")
	}
	// A reloaded catalogue whose app no longer accepts the audience.
	old := e.cat
	e.cat = e.catalog(t, "")
	if _, err := e.verify(t, "records", tok); err != nil {
		t.Errorf("same acceptance after reload: %v", err)
	}
	e.cat = old
	e.clock.Add(2 * time.Hour)
	if _, err := e.verify(t, "records", tok); !errors.Is(err, bearer.ErrExpired) {
		t.Errorf("cached token past exp: got %v, want ErrExpired", err)
	}
}

func TestKeysUnavailable(t *testing.T) {
	e := newEnv(t)
	tok := e.clientCredentials(t, daemonID, "api://records/.default")
	e.idp.Close()
	if _, err := e.verify(t, "records", tok); !errors.Is(err, bearer.ErrKeysUnavailable) {
		t.Errorf("provider down: got %v, want ErrKeysUnavailable", err)
	}
}
