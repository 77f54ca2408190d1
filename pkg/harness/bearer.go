package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/devidp"
)

// The app registrations of the development tenant that a harness with
// Options.Auth has: an API with delegated scopes and an app role, a daemon
// granted the role, a daemon of the tenant granted nothing, and a native
// (public) client for delegated tokens.
const (
	// APIClientID is the client id of the records API (v2 tokens); its
	// Application ID URI is APIIdentifier.
	APIClientID = "0a1b2c3d-0000-4000-8000-00000000a002"
	// APIIdentifier is the records API's Application ID URI.
	APIIdentifier = "api://records"
	// APIReadRole is the app role daemons need to call the records API.
	APIReadRole = "Records.Read.All"
	// DaemonClientID is a confidential client granted APIReadRole.
	DaemonClientID = "11111111-2222-4333-8444-555555555555"
	// StrangerClientID is a confidential client of the tenant granted
	// nothing: Entra still issues it a token (without roles) for the API.
	StrangerClientID = "99999999-2222-4333-8444-555555555555"
	// DaemonSecret is the secret of both daemon clients.
	DaemonSecret = "daemon-secret"
	// NativeClientID is a public client users sign in to for delegated
	// tokens.
	NativeClientID = "22222222-2222-4333-8444-555555555555"
	// APIAppHost is the records API's external host: the sample app,
	// accepting the API's Entra tokens and GitHub Actions tokens of
	// GitHubRepo's main branch.
	APIAppHost = "records.localhost"
	// GitHubAudience is the audience GitHub Actions tokens for the records
	// API carry.
	GitHubAudience = "https://records.localhost"
	// GitHubRepo is the repository whose main branch may call the API.
	GitHubRepo = "octo/records"
)

// authAPIs and authClients are the development provider's registrations
// beside the auth functions' client.
func authAPIs() []devidp.API {
	return []devidp.API{{ClientID: APIClientID, IdentifierURI: APIIdentifier, Scopes: []string{"Records.Read", "Records.Write"}, IDTypClaim: true}}
}

func authClients() []devidp.Client {
	return []devidp.Client{
		{ID: DaemonClientID, Secret: DaemonSecret, AppRoles: map[string][]string{APIClientID: {APIReadRole}}},
		{ID: StrangerClientID, Secret: DaemonSecret},
		{ID: NativeClientID, RedirectURIs: []string{"http://127.0.0.1/callback"}},
	}
}

// startWorkloadIssuer starts the stand-in for GitHub Actions' token
// issuer.
func (h *Harness) startWorkloadIssuer() error {
	gh, err := devidp.ListenWorkloadIssuer("127.0.0.1:0", devcert.ServerTLS(h.cert), "https://token.localhost:{port}/github")
	if err != nil {
		return err
	}
	h.auth.gh = gh
	return nil
}

// bearerCatalog is the catalogue's top of a harness with sign-in: where
// Entra tokens come from (the development provider) and the trusted
// workload issuer.
func (h *Harness) bearerCatalog() string {
	return fmt.Sprintf("entra:\n  authority: %s\nissuers:\n  - id: github\n    issuer: %s\n", h.auth.idp.BaseURL(), h.auth.gh.Issuer())
}

// apiCatalogApp is the records API: Entra v2 tokens of the API (daemons
// with the app role; users of the support group or with an app role,
// through a client holding Records.Read, and Records.Write for /write),
// and GitHub Actions tokens of GitHubRepo's main branch.
func (h *Harness) apiCatalogApp() string {
	return fmt.Sprintf(`  - id: records
    host: %s
    internal_url: %s
    connector_group: hq
    preauth: entra
    bearer:
      entra: {audiences: ["%s", "%s"], versions: [2]}
      workloads: [{issuer: github, audiences: ["%s"]}]
    policy:
      allow:
        roles: ["%s", "SmartMoney.Admin"]
        groups: ["%s"]
        workloads: [{issuer: github, claims: {repository: "%s", ref: refs/heads/main}}]
      require_scopes: [Records.Read]
      paths:
        - prefix: /write
          require_scopes: [Records.Write]
`, APIAppHost, h.App, APIClientID, APIIdentifier, GitHubAudience, APIReadRole, devidp.DemoSupportGroupID, GitHubRepo)
}

// IdP returns the development identity provider (Options.Auth), to mint
// tokens and rotate keys.
func (h *Harness) IdP() *devidp.Provider { return h.auth.idp }

// GitHub returns the stand-in for GitHub Actions' token issuer
// (Options.Auth).
func (h *Harness) GitHub() *devidp.WorkloadIssuer { return h.auth.gh }

// ClientCredentials gets an app-only access token for scope (such as
// "api://records/.default") from the development provider's token
// endpoint, as a daemon does.
func (h *Harness) ClientCredentials(ctx context.Context, clientID, secret, scope string) (string, error) {
	cc := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: h.auth.idp.Issuer() + "/token",
		Scopes: []string{scope}, AuthStyle: oauth2.AuthStyleInParams}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, h.auth.client))
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// APIURL returns the URL of path on the records API through mesh node i.
func (h *Harness) APIURL(i int, path string) string {
	_, port, _ := net.SplitHostPort(h.Meshes()[i].Addr)
	return "https://" + APIAppHost + ":" + port + path
}

// StreamClient returns an HTTP/1.1 client (WebSocket streams cannot ride
// HTTP/2) that trusts the dev CA and sends every request, whatever its
// host, to mesh node i, with no overall timeout.
func (h *Harness) StreamClient(i int) *http.Client {
	t := h.MeshTransport(i)
	t.ForceAttemptHTTP2 = false
	t.TLSClientConfig.NextProtos = []string{"http/1.1"}
	return &http.Client{Transport: t}
}

// URLFor returns https://host:port of mesh node i's public listener.
func (h *Harness) URLFor(i int, host string) string {
	_, port, _ := net.SplitHostPort(h.Meshes()[i].Addr)
	return "https://" + host + ":" + port
}
