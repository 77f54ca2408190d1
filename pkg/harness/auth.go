package harness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/postern/postern/pkg/authfn"
	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/session"
)

// authSystem is the sign-in side of a harness: the development identity
// provider standing in for Entra ID, and the auth functions served as plain
// HTTPS (the same handler Lambda runs).
type authSystem struct {
	idp    *devidp.Provider
	l      net.Listener
	srv    *http.Server
	done   chan struct{}
	URL    string // https://auth.localhost:port
	IdPURL string
	secret string
	keys   *session.Keyset
	client *http.Client
	gh     *devidp.WorkloadIssuer
}

// localClient returns an HTTPS client that trusts ca and sends every
// *.localhost name to 127.0.0.1, as browsers do.
func localClient(ca *devcert.CA) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
		ForceAttemptHTTP2: true,
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// startAuthListener reserves the auth functions' address, so that mesh
// nodes can be told the auth URL before the service starts.
func (h *Harness) startAuthListener() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	var s [24]byte
	rand.Read(s[:])
	h.auth = &authSystem{l: l, URL: "https://auth.localhost:" + port, done: make(chan struct{}),
		secret: base64.RawURLEncoding.EncodeToString(s[:]), client: localClient(h.CA)}
	idp, err := devidp.Listen("127.0.0.1:0", devcert.ServerTLS(h.cert), devidp.Config{
		Users: devidp.DemoUsers(),
		Clients: append([]devidp.Client{{ID: "postern", Secret: h.auth.secret, RedirectURIs: []string{h.auth.URL + "/callback"},
			PostLogoutRedirectURIs: []string{h.auth.URL + "/healthz"}}}, authClients()...),
		APIs:   authAPIs(),
		Logger: h.logger.With("service", "devidp"),
	})
	if err != nil {
		return err
	}
	h.auth.idp = idp
	h.auth.IdPURL = idp.BaseURL()
	return h.startWorkloadIssuer()
}

// startAuthService starts the auth functions once the app port is known.
func (h *Harness) startAuthService(appPort string) error {
	a := h.auth
	keys, err := session.GenerateKeyset()
	if err != nil {
		return err
	}
	stateKey := make([]byte, 32)
	rand.Read(stateKey)
	base, _ := strings.CutSuffix(a.idp.Issuer(), "/"+devidp.DemoTenantID+"/v2.0")
	svc, err := authfn.New(authfn.Config{
		AuthURL: a.URL, AppPort: ":" + appPort, MeshAuthorityKeys: []ed25519.PublicKey{h.authorityPub}, Keys: keys, StateKey: stateKey,
		EntraAuthorityBase: base, TenantID: devidp.DemoTenantID, ClientID: "postern", ClientSecret: a.secret,
		GraphURL: a.idp.GraphURL(), PostLogoutURLs: []string{a.URL + "/healthz"},
		HTTPClient: a.client, Logger: h.logger.With("service", "authfn"),
	})
	if err != nil {
		return err
	}
	a.keys = keys
	a.srv = &http.Server{Handler: svc, TLSConfig: devcert.ServerTLS(h.cert), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(a.done)
		if err := a.srv.ServeTLS(a.l, "", ""); !errors.Is(err, http.ErrServerClosed) {
			h.logger.Error("auth functions stopped serving", "err", err)
		}
	}()
	return nil
}

// close stops the auth functions and the identity providers, and returns
// what stopping them reported.
func (a *authSystem) close() error {
	var errs []error
	if a.srv != nil {
		errs = append(errs, a.srv.Close())
		<-a.done
	} else {
		errs = append(errs, a.l.Close())
	}
	if a.idp != nil {
		errs = append(errs, a.idp.Close())
	}
	if a.gh != nil {
		errs = append(errs, a.gh.Close())
	}
	a.client.CloseIdleConnections()
	return errors.Join(errs...)
}

// AuthURL returns the auth functions' URL, or "" without Options.Auth.
func (h *Harness) AuthURL() string {
	if h.auth == nil {
		return ""
	}
	return h.auth.URL
}

// IdPURL returns the development identity provider's base URL.
func (h *Harness) IdPURL() string {
	if h.auth == nil {
		return ""
	}
	return h.auth.IdPURL
}

// OpenAppHost is the external host of a passthrough copy of the sample app
// that the standard catalogue holds (with or without sign-in).
const OpenAppHost = "open.localhost"

// OpenAppURL returns the URL of path on the passthrough copy of the sample
// app, through mesh node i.
func (h *Harness) OpenAppURL(i int, path string) string {
	_, port, _ := net.SplitHostPort(h.Meshes()[i].Addr)
	return "https://" + OpenAppHost + ":" + port + path
}

// authCatalogApp is the catalogue entry of the sample app when sign-in is
// on: Entra pre-authentication, the support group or the app's roles may
// use it, and only admins may use /admin.
func (h *Harness) authCatalogApp() string {
	return fmt.Sprintf(`  - id: smartmoney
    display_name: SmartMoney
    host: %s
    internal_url: %s
    connector_group: hq
    preauth: entra
    policy:
      allow:
        groups: ["%s"]
        roles: ["SmartMoney.User", "SmartMoney.Admin"]
      paths:
        - prefix: /admin
          allow: { roles: ["SmartMoney.Admin"] }
`, h.AppHost, h.App, devidp.DemoSupportGroupID) + h.openCatalogApp() + h.apiCatalogApp()
}

// openCatalogApp is the catalogue entry of the passthrough copy of the
// sample app.
func (h *Harness) openCatalogApp() string {
	return fmt.Sprintf("  - id: open\n    display_name: SmartMoney (open copy)\n    host: %s\n    internal_url: %s\n    connector_group: hq\n    preauth: passthrough\n",
		OpenAppHost, h.App)
}

func (h *Harness) authClient() *http.Client {
	if h.auth == nil {
		return nil
	}
	return h.auth.client
}
