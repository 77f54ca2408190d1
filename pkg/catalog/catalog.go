package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/policy"
)

// DefaultBackendTimeout is an app's backend_timeout when the key is absent.
const DefaultBackendTimeout = 85 * time.Second

// DefaultHSTSMaxAge is an app's hsts_max_age when the key is absent: one
// year.
const DefaultHSTSMaxAge = 365 * 24 * time.Hour

// DefaultHSTS is the Strict-Transport-Security value of DefaultHSTSMaxAge,
// also sent on the mesh's answers for hosts that are no app.
const DefaultHSTS = "max-age=31536000"

// maxHostLen is the longest DNS name, in bytes, without the trailing dot.
const maxHostLen = 253

// PreAuth is how the mesh authenticates a user before a request reaches an app.
type PreAuth string

// Pre-authentication modes.
const (
	// PreAuthPassthrough forwards requests without authenticating the user;
	// the app does its own sign-in.
	PreAuthPassthrough PreAuth = "passthrough"
	// PreAuthEntra requires a Microsoft Entra ID sign-in through the auth
	// functions; the mesh enforces the app's policy.
	PreAuthEntra PreAuth = "entra"
	// PreAuthOIDC requires a sign-in with another OpenID Connect provider
	// through the auth functions; the mesh enforces the app's policy.
	PreAuthOIDC PreAuth = "oidc"
)

// check returns nil for a supported mode and [ErrValue] otherwise. A mode
// that is recognised but not served yet would return [ErrUnsupported].
func (m PreAuth) check() (msg string, class error) {
	switch m {
	case PreAuthPassthrough, PreAuthEntra, PreAuthOIDC:
		return "", nil
	}
	return fmt.Sprintf("preauth %q: must be one of %s, %s, %s", string(m), PreAuthPassthrough, PreAuthEntra, PreAuthOIDC), ErrValue
}

// HostHeader selects the Host header the mesh sends to an app's backend.
type HostHeader string

// Host header modes.
const (
	// HostHeaderInternal sends the internal URL's host (and port); the default.
	HostHeaderInternal HostHeader = "internal"
	// HostHeaderExternal sends the app's external host name, for backends
	// that build absolute links from Host.
	HostHeaderExternal HostHeader = "external"
)

// ConnectorGroup is a set of connectors that can reach the same internal apps.
type ConnectorGroup struct {
	// ID names the group; apps refer to it and connectors enrol in it.
	ID string
	// Region is an optional hint of where the group's connectors run; empty
	// when not set.
	Region string
	// PinRegion restricts the group's traffic to mesh nodes of Region, as
	// Entra's connector group region does: connectors attach only there and
	// requests from other regions are relayed there. False means the mesh
	// routes by latency alone.
	PinRegion bool
	// ExcludeRegions lists regions whose mesh nodes never carry the
	// group's traffic; empty excludes none.
	ExcludeRegions []string
	// Workload, if set, lets the group's connectors enrol with a workload
	// identity token (a Kubernetes ServiceAccount token) instead of a
	// one-time token; nil means one-time tokens only.
	Workload *WorkloadEnrollment
	// Line is the line of the group's entry in the catalogue file.
	Line int
}

// App is one published app. The catalogue owns it: callers must treat it,
// including InternalURL, as read-only.
type App struct {
	// ID names the app in logs, metrics and policy.
	ID string
	// DisplayName is the name users see on error pages (display_name);
	// empty means the pages use ID. Use Title to read it.
	DisplayName string
	// Host is the external host name users open, lower-case, without port or
	// trailing dot.
	Host string
	// Kind is what the app publishes: KindWeb (HTTP) or KindTCP.
	Kind AppKind
	// InternalURL is the backend's base URL: http or https, with host, no
	// user info, query or fragment. Its path, if any, is a prefix joined
	// before the request path. Nil for a TCP app.
	InternalURL *url.URL
	// Target is a TCP app's internal "host:port"; empty for a web app.
	Target string
	// Bearer says which bearer tokens the app accepts instead of the app
	// cookie; nil means none.
	Bearer *Bearer
	// ConnectorGroup is the ID of the group whose connectors reach the app;
	// it always names a group of the same catalogue.
	ConnectorGroup string
	// PreAuth is the pre-authentication mode.
	PreAuth PreAuth
	// BackendTimeout bounds the time to the first byte of the backend's
	// response once the request is sent, not the length of the response
	// stream; while the client is still sending the request body, only a
	// backend that stops taking it for this long times out. Always > 0.
	BackendTimeout time.Duration
	// HostHeader selects the Host header sent to the backend.
	HostHeader HostHeader
	// TLSSkipVerify disables verification of the backend's certificate; it
	// is only ever true with an https InternalURL.
	TLSSkipVerify bool
	// TrustTraceHeaders (trust_trace_headers) continues the client's W3C
	// trace (traceparent, tracestate): the mesh's spans become children of
	// the client's and the backend sees the client's trace id. False, the
	// default, drops the client's trace headers at the edge, so that no
	// client can choose the trace a request is recorded under.
	TrustTraceHeaders bool
	// SessionLifetime is the lifetime of the app cookie (session_lifetime);
	// zero for a passthrough app.
	SessionLifetime time.Duration
	// MaxSessionAge is the longest time since the user authenticated at the
	// provider (max_session_age); zero means no limit.
	MaxSessionAge time.Duration
	// PathCase is how the app's paths are matched by the policy; empty for
	// a passthrough app.
	PathCase PathCase
	// Policy decides access for a pre-authenticated app, built once when
	// the catalogue loads; nil for a passthrough app. An app without a
	// policy key gets a policy allowing any signed-in user.
	Policy *policy.Policy
	// PolicyTests are the cases of policy: tests:, run by "meshd catalog
	// check" (RunPolicyTests), never by a serving node; empty for a
	// passthrough app.
	PolicyTests []PolicyTest
	// IdentityHeaders names the headers sent to the backend; zero for a
	// passthrough app.
	IdentityHeaders IdentityHeaders
	// PassHeaders are client headers, in canonical form, that the mesh
	// would strip as another proxy's (see pkg/edge) but lets through to
	// this app under exactly this name; empty passes none.
	PassHeaders []string
	// HSTS is the Strict-Transport-Security value the mesh sends on every
	// HTTPS response of the app, from hsts_max_age (DefaultHSTS when the
	// key is absent); empty means none (hsts_max_age: 0).
	HSTS string
	// Line is the line of the app's entry in the catalogue file.
	Line int
}

// Catalog is a validated catalogue. It is immutable after [Parse] and safe
// for concurrent use; all lookups are map lookups.
type Catalog struct {
	hash                string
	apps                []*App
	groups              []*ConnectorGroup
	byID                map[string]*App
	byHost              map[string]*App
	groupsBy            map[string]*ConnectorGroup
	polGroups, polRoles []string
	homeTenant          string
	filter              string        // appreq session filter of polGroups and polRoles
	longestLifetime     time.Duration // longest session_lifetime of a pre-authenticated app
	entra               Entra
	issuers             []*Issuer
}

func newCatalog(data []byte, home string, groups []*ConnectorGroup, apps []*App) *Catalog {
	c := &Catalog{
		hash:       hashOf(data),
		homeTenant: home,
		apps:       apps,
		groups:     groups,
		byID:       make(map[string]*App, len(apps)),
		byHost:     make(map[string]*App, len(apps)),
		groupsBy:   make(map[string]*ConnectorGroup, len(groups)),
	}
	for _, a := range apps {
		c.byID[a.ID] = a
		c.byHost[a.Host] = a
	}
	for _, g := range groups {
		c.groupsBy[g.ID] = g
	}
	for _, a := range apps {
		if a.Policy != nil {
			c.polGroups = append(c.polGroups, a.Policy.Groups()...)
			c.polRoles = append(c.polRoles, a.Policy.Roles()...)
		}
	}
	slices.Sort(c.polGroups)
	slices.Sort(c.polRoles)
	c.polGroups, c.polRoles = slices.Compact(c.polGroups), slices.Compact(c.polRoles)
	c.filter = appreq.NewFilter(c.polGroups, c.polRoles)
	c.longestLifetime = DefaultSessionLifetime
	for _, a := range apps {
		if a.PreAuth != PreAuthPassthrough {
			c.longestLifetime = max(c.longestLifetime, a.SessionLifetime)
		}
	}
	return c
}

func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Hash returns the hex SHA-256 of the source bytes the catalogue was parsed
// from.
func (c *Catalog) Hash() string { return c.hash }

// Apps returns the apps in file order. The slice is a copy; the apps are shared.
func (c *Catalog) Apps() []*App { return append([]*App(nil), c.apps...) }

// Groups returns the connector groups in file order. The slice is a copy; the
// groups are shared.
func (c *Catalog) Groups() []*ConnectorGroup {
	return append([]*ConnectorGroup(nil), c.groups...)
}

// PolicyGroups returns every group that any app's policy names, sorted: the
// auth functions keep only these in the global session (and read only these
// from Microsoft Graph on group overage), told by the session filter of
// each signed app request (SignInRequest).
func (c *Catalog) PolicyGroups() []string { return slices.Clone(c.polGroups) }

// PolicyRoles returns every app role that any app's policy names, sorted.
func (c *Catalog) PolicyRoles() []string { return slices.Clone(c.polRoles) }

// HomeTenant returns the Entra tenant whose groups and app roles count in
// every policy (home_tenant); empty when the catalogue names none.
func (c *Catalog) HomeTenant() string { return c.homeTenant }

// Entra returns where Entra access tokens come from (the entra section,
// defaults applied).
func (c *Catalog) Entra() Entra { return c.entra }

// Issuers returns the trusted workload issuers in file order. The slice is
// a copy; the issuers are shared.
func (c *Catalog) Issuers() []*Issuer { return append([]*Issuer(nil), c.issuers...) }

// PassesHeader reports whether the app passes the client header named k
// through (pass_headers): the same name ignoring case, so a spelling with
// "_" for "-" is not passed.
func (a *App) PassesHeader(k string) bool {
	for _, p := range a.PassHeaders {
		if strings.EqualFold(k, p) {
			return true
		}
	}
	return false
}

// App returns the app with the given ID.
func (c *Catalog) App(id string) (*App, bool) {
	a, ok := c.byID[id]
	return a, ok
}

// Group returns the connector group with the given ID.
func (c *Catalog) Group(id string) (*ConnectorGroup, bool) {
	g, ok := c.groupsBy[id]
	return g, ok
}

// AppByHost returns the app published at host, as found in a request's Host
// header: the match ignores case, a ":port" suffix and a trailing dot. It does
// not allocate.
func (c *Catalog) AppByHost(host string) (*App, bool) {
	if a, ok := c.byHost[host]; ok {
		return a, true
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) == 0 || len(host) > maxHostLen {
		return nil, false
	}
	var buf [maxHostLen]byte
	for i := 0; i < len(host); i++ {
		b := host[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		buf[i] = b
	}
	a, ok := c.byHost[string(buf[:len(host)])] // no allocation: the compiler elides the conversion
	return a, ok
}

// Title returns the name users see for the app: DisplayName, or ID when
// there is none.
func (a *App) Title() string {
	if a.DisplayName != "" {
		return a.DisplayName
	}
	return a.ID
}
