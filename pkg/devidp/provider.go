package devidp

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Provider is the development OpenID Connect provider and its mock
// Microsoft Graph. It is an http.Handler serving, under each issuer path,
// discovery (/.well-known/openid-configuration), /authorize, /token,
// /keys and /logout (end session); and at the root /login (the account
// picker), /signedout and the Graph routes under /v1.0/.
// It is safe for concurrent use.
type Provider struct {
	base     string // scheme://host[:port]
	issuer   string // primary issuer (Config.Issuer)
	lifetime time.Duration
	now      func() time.Time
	log      *slog.Logger
	store    *store
	graph    *Graph
	tenants  []tenantHandler

	mu      sync.Mutex // guards the following
	srv     *http.Server
	done    chan struct{}
	closed  bool
	stopped bool
}

type tenantHandler struct {
	prefix  string // issuer path, "" for an issuer without a path
	tenant  string
	issuer  string
	handler http.Handler
	op      *op.Provider
}

var _ http.Handler = (*Provider)(nil)

// New builds a provider from cfg. It does not listen: serve it with Serve,
// or mount it on your own https server at the root of the issuer's host,
// or use Listen.
func New(cfg Config) (*Provider, error) {
	users, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, fmt.Errorf("devidp: new: %w", err)
	}
	if err := validateAPIs(cfg.APIs); err != nil {
		return nil, err
	}
	p := &Provider{issuer: cfg.Issuer, lifetime: cfg.TokenLifetime, now: cfg.Now, log: cfg.Logger}
	if p.lifetime <= 0 {
		p.lifetime = time.Hour
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	u, _ := url.Parse(cfg.Issuer)
	p.base = u.Scheme + "://" + u.Host
	p.store = &store{
		keys: []signingKey{key}, now: p.now, apis: cfg.APIs,
		loginURL: p.base + "/login", users: users,
		requests: map[string]*authRequest{}, codes: map[string]string{}, clients: map[string]*opClient{},
	}
	p.graph = &Graph{p: p}
	for _, c := range cfg.Clients {
		if err := p.AddClient(c); err != nil {
			return nil, err
		}
	}
	if err := p.buildTenants(u.Path, users); err != nil {
		return nil, err
	}
	return p, nil
}

// buildTenants creates one op server per issuer.
func (p *Provider) buildTenants(issuerPath string, users []User) error {
	_, defTenant, entra := issuerShape(p.issuer)
	tenants := []string{defTenant}
	for _, u := range users {
		if entra && !slices.Contains(tenants, u.TenantID) {
			tenants = append(tenants, u.TenantID)
		}
	}
	for _, t := range tenants {
		th := tenantHandler{prefix: issuerPath, tenant: t, issuer: p.issuer}
		if entra {
			th.prefix = "/" + t + "/v2.0"
			th.issuer = p.base + th.prefix
		}
		h, prov, err := p.newTenantServer(th.issuer, t)
		if err != nil {
			return err
		}
		th.op = prov
		th.handler = http.StripPrefix(th.prefix, h)
		p.tenants = append(p.tenants, th)
	}
	return nil
}

func (p *Provider) newTenantServer(issuer, tenant string) (http.Handler, *op.Provider, error) {
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, nil, fmt.Errorf("devidp: new: %w", err)
	}
	conf := &op.Config{
		CryptoKey:       cryptoKey,
		CodeMethodS256:  true,
		AuthMethodPost:  true,
		SupportedScopes: []string{"openid", "profile", "email", "offline_access"},
		SupportedClaims: []string{"aud", "iss", "iat", "nbf", "exp", "nonce", "sub", "oid", "tid", "ver", "uti", "rh",
			"name", "preferred_username", "email", "groups", "roles", "acrs", "idp", "_claim_names", "_claim_sources"},
	}
	prov, err := op.NewProvider(conf, p.store, op.StaticIssuer(issuer))
	if err != nil {
		return nil, nil, fmt.Errorf("devidp: new provider for %s: %w", issuer, err)
	}
	ts := &tenantServer{p: p, op: prov, issuer: issuer, tenant: tenant}
	ts.LegacyServer = op.NewLegacyServer(prov, op.Endpoints{
		Authorization: op.NewEndpoint("authorize"),
		Token:         op.NewEndpoint("token"),
		EndSession:    op.NewEndpoint("logout"),
		JwksURI:       op.NewEndpoint("keys"),
	})
	return op.RegisterLegacyServer(ts, op.AuthorizeCallbackHandler(prov)), prov, nil
}

// newSigningKey generates an RSA signing key named by its RFC 7638
// thumbprint.
func newSigningKey() (signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return signingKey{}, err
	}
	thumb, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return signingKey{}, err
	}
	return signingKey{key: key, kid: base64.RawURLEncoding.EncodeToString(thumb)}, nil
}

// RotateKey starts signing with a new key, as Entra rolls its keys over:
// the new key is published first in the JWKS, the previous keys stay
// published so that the tokens they signed keep verifying. It returns the
// new key's kid.
func (p *Provider) RotateKey() (string, error) {
	k, err := newSigningKey()
	if err != nil {
		return "", fmt.Errorf("devidp: rotate key: %w", err)
	}
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.keys = append([]signingKey{k}, p.store.keys...)
	return k.kid, nil
}

// RetireOldKeys stops publishing every key but the current signing key.
func (p *Provider) RetireOldKeys() {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.keys = p.store.keys[:1]
}

// KeyID returns the kid of the current signing key.
func (p *Provider) KeyID() string { return p.store.signer().kid }

// AddClient registers a client, replacing one with the same id.
func (p *Provider) AddClient(c Client) error {
	if err := c.validate(); err != nil {
		return err
	}
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	c.AppRoles = maps.Clone(c.AppRoles)
	p.store.clients[c.ID] = &opClient{Client: c, loginURL: p.store.loginURL, store: p.store}
	return nil
}

// Issuer returns the primary issuer URL (Config.Issuer).
func (p *Provider) Issuer() string { return p.issuer }

// IssuerFor returns the issuer URL of a tenant, or "" if the provider does
// not serve that tenant.
func (p *Provider) IssuerFor(tenantID string) string {
	for _, t := range p.tenants {
		if t.tenant == tenantID {
			return t.issuer
		}
	}
	return ""
}

// BaseURL returns the scheme and host of the issuer, e.g.
// "https://idp.localhost:8444".
func (p *Provider) BaseURL() string { return p.base }

// GraphURL returns the base URL of the mock Graph, to use in place of
// "https://graph.microsoft.com" (it serves /v1.0/...).
func (p *Provider) GraphURL() string { return p.base }

// Graph returns the provider's mock Microsoft Graph, which accepts the
// access tokens this provider issues. The provider serves it under /v1.0/
// as well.
func (p *Provider) Graph() *Graph { return p.graph }

// Users returns the configured users with defaults applied.
func (p *Provider) Users() []User { return slices.Clone(p.store.users) }

func (p *Provider) tenantByIssuer(issuer string) (tenantHandler, bool) {
	for _, t := range p.tenants {
		if t.issuer == issuer {
			return t, true
		}
	}
	return tenantHandler{}, false
}

func (p *Provider) issuers() []string {
	out := make([]string, len(p.tenants))
	for i, t := range p.tenants {
		out[i] = t.issuer
	}
	return out
}

// ServeHTTP routes to the login page, the mock Graph or a tenant's OIDC
// endpoints.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/login":
		p.serveLogin(w, r)
		return
	case path == "/signedout":
		p.serveSignedOut(w, r)
		return
	case strings.HasPrefix(path, "/v1.0/"):
		p.graph.ServeHTTP(w, r)
		return
	}
	for _, t := range p.tenants {
		if t.prefix == "" || path == t.prefix || strings.HasPrefix(path, t.prefix+"/") {
			t.handler.ServeHTTP(w, r)
			return
		}
	}
	http.NotFound(w, r)
}

// Serve serves the provider on l (wrap it with tls.NewListener for TLS) in
// a goroutine until Close. It may be called once.
func (p *Provider) Serve(l net.Listener) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.srv != nil {
		return fmt.Errorf("%w: already serving", ErrBadConfig)
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("devidp: serve", "err", err)
		}
	}()
	return nil
}

// Listen listens on addr (e.g. "127.0.0.1:0") with TLS from tlsConfig,
// builds the provider and serves it until Close. When cfg.Issuer is empty
// it becomes "https://idp.localhost:<port>/<DemoTenantID>/v2.0"; a
// "{port}" in cfg.Issuer is replaced by the port listened on.
func Listen(addr string, tlsConfig *tls.Config, cfg Config) (*Provider, error) {
	if tlsConfig == nil {
		return nil, fmt.Errorf("%w: listen needs a TLS config", ErrBadConfig)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devidp: listen: %w", err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if cfg.Issuer == "" {
		cfg.Issuer = "https://idp.localhost:{port}/" + DemoTenantID + "/v2.0"
	}
	cfg.Issuer = strings.ReplaceAll(cfg.Issuer, "{port}", port)
	p, err := New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := p.Serve(tls.NewListener(ln, tlsConfig)); err != nil {
		ln.Close()
		return nil, err
	}
	return p, nil
}

// Close stops serving (if Serve or Listen started it) and waits for the
// server goroutine. It is idempotent.
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed = true
	srv, done := p.srv, p.done
	first := !p.stopped
	p.stopped = true
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	var err error
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err = srv.Shutdown(ctx); err != nil {
			err = errors.Join(err, srv.Close())
		}
	}
	<-done
	if err != nil {
		return fmt.Errorf("devidp: close: %w", err)
	}
	return nil
}
