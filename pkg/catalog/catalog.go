package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DefaultBackendTimeout is an app's backend_timeout when the key is absent.
const DefaultBackendTimeout = 85 * time.Second

// maxHostLen is the longest DNS name, in bytes, without the trailing dot.
const maxHostLen = 253

// PreAuth is how the mesh authenticates a user before a request reaches an app.
type PreAuth string

// Pre-authentication modes. Only [PreAuthPassthrough] is supported so far; the
// others are recognised so that a catalogue written for a later build fails
// with a clear message rather than "unknown value".
const (
	// PreAuthPassthrough forwards requests without authenticating the user;
	// the app does its own sign-in.
	PreAuthPassthrough PreAuth = "passthrough"
	// PreAuthEntra requires a Microsoft Entra ID sign-in (not supported yet).
	PreAuthEntra PreAuth = "entra"
	// PreAuthOIDC requires a generic OpenID Connect sign-in (not supported yet).
	PreAuthOIDC PreAuth = "oidc"
)

// check returns nil for a supported mode, [ErrUnsupported] for a recognised
// one whose support has not landed, and [ErrValue] otherwise.
func (m PreAuth) check() (msg string, class error) {
	switch m {
	case PreAuthPassthrough:
		return "", nil
	case PreAuthEntra, PreAuthOIDC: // move a mode to the case above once it is served
		return fmt.Sprintf("pre-authentication mode %s is not supported yet", m), ErrUnsupported
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
	// Line is the line of the group's entry in the catalogue file.
	Line int
}

// App is one published app. The catalogue owns it: callers must treat it,
// including InternalURL, as read-only.
type App struct {
	// ID names the app in logs, metrics and policy.
	ID string
	// Host is the external host name users open, lower-case, without port or
	// trailing dot.
	Host string
	// InternalURL is the backend's base URL: http or https, with host, no
	// user info, query or fragment. Its path, if any, is a prefix joined
	// before the request path.
	InternalURL *url.URL
	// ConnectorGroup is the ID of the group whose connectors reach the app;
	// it always names a group of the same catalogue.
	ConnectorGroup string
	// PreAuth is the pre-authentication mode.
	PreAuth PreAuth
	// BackendTimeout bounds the time to the first byte of the backend's
	// response, not the length of the response stream. Always > 0.
	BackendTimeout time.Duration
	// HostHeader selects the Host header sent to the backend.
	HostHeader HostHeader
	// TLSSkipVerify disables verification of the backend's certificate; it
	// is only ever true with an https InternalURL.
	TLSSkipVerify bool
	// Line is the line of the app's entry in the catalogue file.
	Line int
}

// Catalog is a validated catalogue. It is immutable after [Parse] and safe
// for concurrent use; all lookups are map lookups.
type Catalog struct {
	hash     string
	apps     []*App
	groups   []*ConnectorGroup
	byID     map[string]*App
	byHost   map[string]*App
	groupsBy map[string]*ConnectorGroup
}

func newCatalog(data []byte, groups []*ConnectorGroup, apps []*App) *Catalog {
	c := &Catalog{
		hash:     hashOf(data),
		apps:     apps,
		groups:   groups,
		byID:     make(map[string]*App, len(apps)),
		byHost:   make(map[string]*App, len(apps)),
		groupsBy: make(map[string]*ConnectorGroup, len(groups)),
	}
	for _, a := range apps {
		c.byID[a.ID] = a
		c.byHost[a.Host] = a
	}
	for _, g := range groups {
		c.groupsBy[g.ID] = g
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
