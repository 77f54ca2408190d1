package authfn

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/pkg/session"
)

// Provider modes.
const (
	// ModeEntra signs users in with Microsoft Entra ID: users are (tid, oid),
	// issuers are tenant-specific, group overage is resolved through
	// Microsoft Graph.
	ModeEntra = "entra"
	// ModeOIDC signs users in with any standards-compliant OpenID Connect
	// provider through a [ClaimMapping].
	ModeOIDC = "oidc"
)

// Defaults used for zero [Config] fields.
const (
	DefaultEntraAuthorityBase = "https://login.microsoftonline.com"
	DefaultGraphURL           = "https://graph.microsoft.com"
	DefaultSessionLifetime    = 12 * time.Hour
	// FlowLifetime bounds the time between /authorize and /callback.
	FlowLifetime = 10 * time.Minute
	// DefaultAppSessionLifetime is an app token's lifetime when the app's
	// catalogue entry sets none.
	DefaultAppSessionLifetime = 8 * time.Hour
)

// ClaimMapping names the ID token claims used in [ModeOIDC]. Entra mode
// ignores it and uses tid, oid, name, groups and roles.
type ClaimMapping struct {
	// UserID is the claim that identifies a user; empty means "sub". The
	// session subject is "<issuer id>/<value>".
	UserID string
	// Name is the display-name claim; empty means "name".
	Name string
	// Groups is the group-membership claim (a string or an array of
	// strings); empty means "groups".
	Groups string
	// Roles is the role claim; empty means "roles".
	Roles string
}

// Config configures a [Service]. Fields marked required have no default.
type Config struct {
	// AuthURL is the external base URL of the auth service, such as
	// https://auth.example.com (required, https unless the host is a
	// loopback or *.localhost name). Its host (without port) is the
	// audience of the global session token; AuthURL + "/callback" is the
	// OIDC redirect URI to register at the provider.
	AuthURL string
	// AppPort is appended to an app's host when redirecting back to it,
	// such as ":8443" in development; empty means the default https port.
	AppPort string
	// MeshAuthorityKeys are the mesh authority's public keys (required;
	// several during a rotation). The service learns what it must know
	// about an app from a request signed by a mesh node (pkg/appreq),
	// whose node credential these keys verify; it holds no catalogue.
	MeshAuthorityKeys []ed25519.PublicKey
	// Keys signs session and app tokens; its public keys are served as the
	// JWKS (required).
	Keys *session.Keyset
	// StateKey is the 32-byte key that encrypts the flow cookie (required).
	StateKey []byte

	// Mode is ModeEntra or ModeOIDC; empty means ModeEntra.
	Mode string
	// Issuer is the provider's issuer URL in ModeOIDC (required there); in
	// ModeEntra it is derived from EntraAuthorityBase and TenantID and must
	// be empty or equal to it.
	Issuer string
	// EntraAuthorityBase is the Entra authority host; empty means
	// DefaultEntraAuthorityBase. The development provider sets its own.
	EntraAuthorityBase string
	// TenantID is the single Entra tenant whose users may sign in; the
	// issuer must then be exactly <base>/<TenantID>/v2.0. Exactly one of
	// TenantID and AllowedTenants is required in ModeEntra.
	TenantID string
	// AllowedTenants turns on multi-tenant sign-in through the
	// <base>/organizations/v2.0 authority: an ID token is accepted only
	// when its tid is listed here and its iss is exactly <base>/<tid>/v2.0.
	AllowedTenants []string
	// ClientID and ClientSecret are the app registration's credentials
	// (ClientID required; ClientSecret empty means a public client, PKCE
	// only).
	ClientID     string
	ClientSecret string
	// Scopes are requested in addition to "openid"; nil means "profile",
	// "email" and, in ModeEntra, "User.Read" (so that the access token of
	// the sign-in can read group memberships from Graph on overage).
	Scopes []string
	// ClaimMapping names the claims used in ModeOIDC.
	ClaimMapping ClaimMapping
	// GraphURL is the Microsoft Graph base URL; empty means
	// DefaultGraphURL.
	GraphURL string
	// SessionLifetime is the lifetime of the global session cookie; zero
	// means DefaultSessionLifetime.
	SessionLifetime time.Duration
	// PostLogoutURLs are the only URLs the provider may send the browser to
	// after sign-out; empty means no post_logout_redirect_uri is sent.
	PostLogoutURLs []string
	// EndSessionRedirect makes /logout continue to the provider's
	// end_session_endpoint when it advertises one; false shows a "signed
	// out" page.
	EndSessionRedirect bool
	// HTTPClient makes requests to the provider and Graph; nil means a
	// client with a 10-second timeout.
	HTTPClient *http.Client
	// Logger receives one line per request outcome; nil discards logs.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// tenantRE matches an Entra tenant id as it appears in an issuer URL.
var tenantRE = regexp.MustCompile(`^[0-9a-zA-Z][0-9a-zA-Z.-]{0,127}$`)

// normalize checks c and fills in defaults, returning a copy.
func (c Config) normalize() (Config, error) {
	fail := func(format string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("new auth service: %w: "+format, append([]any{ErrConfig}, a...)...)
	}
	u, err := url.Parse(c.AuthURL)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return fail("AuthURL %q must be a base URL such as https://auth.example.com", c.AuthURL)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLocalHost(u.Hostname())) {
		return fail("AuthURL %q must use https", c.AuthURL)
	}
	c.AuthURL = u.Scheme + "://" + u.Host
	if c.AppPort != "" && !regexp.MustCompile(`^:[0-9]{1,5}$`).MatchString(c.AppPort) {
		return fail("AppPort %q must be empty or like \":8443\"", c.AppPort)
	}
	if len(c.MeshAuthorityKeys) == 0 {
		return fail("MeshAuthorityKeys is required (the mesh authority's public key)")
	}
	if c.Keys == nil {
		return fail("Keys is required")
	}
	if len(c.StateKey) != 32 {
		return fail("StateKey must be 32 bytes, got %d", len(c.StateKey))
	}
	if c.ClientID == "" {
		return fail("ClientID is required")
	}
	switch c.Mode {
	case "", ModeEntra:
		c.Mode = ModeEntra
		if err := c.normalizeEntra(); err != nil {
			return fail("%v", err)
		}
	case ModeOIDC:
		iu, err := url.Parse(c.Issuer)
		if err != nil || iu.Host == "" || (iu.Scheme != "https" && !(iu.Scheme == "http" && isLocalHost(iu.Hostname()))) {
			return fail("Issuer %q must be an https URL in mode oidc", c.Issuer)
		}
		if c.TenantID != "" || len(c.AllowedTenants) > 0 {
			return fail("TenantID and AllowedTenants apply to mode entra only")
		}
	default:
		return fail("Mode %q must be %q or %q", c.Mode, ModeEntra, ModeOIDC)
	}
	m := &c.ClaimMapping
	m.UserID = orDefault(m.UserID, "sub")
	m.Name = orDefault(m.Name, "name")
	m.Groups = orDefault(m.Groups, "groups")
	m.Roles = orDefault(m.Roles, "roles")
	if c.Scopes == nil {
		c.Scopes = []string{"profile", "email"}
		if c.Mode == ModeEntra {
			c.Scopes = append(c.Scopes, "User.Read")
		}
	}
	c.Scopes = append([]string{"openid"}, slices.DeleteFunc(slices.Clone(c.Scopes), func(s string) bool { return s == "openid" })...)
	c.GraphURL = strings.TrimSuffix(orDefault(c.GraphURL, DefaultGraphURL), "/")
	if c.SessionLifetime < 0 {
		return fail("SessionLifetime must not be negative")
	}
	if c.SessionLifetime == 0 {
		c.SessionLifetime = DefaultSessionLifetime
	}
	for _, p := range c.PostLogoutURLs {
		pu, err := url.Parse(p)
		if err != nil || pu.Host == "" || (pu.Scheme != "https" && !(pu.Scheme == "http" && isLocalHost(pu.Hostname()))) {
			return fail("PostLogoutURLs entry %q must be an absolute https URL", p)
		}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// normalizeEntra derives the issuer of an Entra configuration.
func (c *Config) normalizeEntra() error {
	base := strings.TrimSuffix(orDefault(c.EntraAuthorityBase, DefaultEntraAuthorityBase), "/")
	bu, err := url.Parse(base)
	if err != nil || bu.Host == "" || (bu.Scheme != "https" && !(bu.Scheme == "http" && isLocalHost(bu.Hostname()))) {
		return fmt.Errorf("EntraAuthorityBase %q must be an https URL", c.EntraAuthorityBase)
	}
	c.EntraAuthorityBase = base
	switch {
	case c.TenantID != "" && len(c.AllowedTenants) > 0:
		return fmt.Errorf("set TenantID (single tenant) or AllowedTenants (multi-tenant), not both")
	case c.TenantID != "":
		if !tenantRE.MatchString(c.TenantID) || isMetaTenant(c.TenantID) {
			return fmt.Errorf("TenantID %q must be a tenant id (GUID), not common/organizations/consumers", c.TenantID)
		}
		want := entraIssuer(base, c.TenantID)
		if c.Issuer != "" && c.Issuer != want {
			return fmt.Errorf("the issuer %q does not match the tenant's issuer %q", c.Issuer, want)
		}
		c.Issuer = want
	case len(c.AllowedTenants) > 0:
		for _, t := range c.AllowedTenants {
			if !tenantRE.MatchString(t) || isMetaTenant(t) {
				return fmt.Errorf("AllowedTenants entry %q must be a tenant id (GUID)", t)
			}
		}
		if c.Issuer != "" {
			return fmt.Errorf("an issuer must not be set with AllowedTenants: each tenant has its own issuer")
		}
		c.AllowedTenants = slices.Clone(c.AllowedTenants)
	default:
		return fmt.Errorf("mode entra needs TenantID or AllowedTenants")
	}
	return nil
}

// multiTenant reports whether c signs in users of several Entra tenants.
func (c *Config) multiTenant() bool { return c.Mode == ModeEntra && len(c.AllowedTenants) > 0 }

// discoveryURL is the base URL whose /.well-known/openid-configuration is
// fetched.
func (c *Config) discoveryURL() string {
	if c.multiTenant() {
		return c.EntraAuthorityBase + "/organizations/v2.0"
	}
	return c.Issuer
}

// tenantAllowed reports whether users issued by tenant tid may sign in.
func (c *Config) tenantAllowed(tid string) bool {
	if c.multiTenant() {
		return slices.Contains(c.AllowedTenants, tid)
	}
	return tid == c.TenantID
}

func entraIssuer(base, tid string) string { return base + "/" + tid + "/v2.0" }

func isMetaTenant(t string) bool {
	switch strings.ToLower(t) {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

func isLocalHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1" || strings.HasSuffix(h, ".localhost")
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
