package catalog

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/postern/postern/pkg/policy"
)

// Defaults of the catalogue's entra section.
const (
	// DefaultEntraAuthority is where Entra v2 access tokens come from: their
	// issuer is <authority>/<tenant id>/v2.0, and the tenant's signing keys
	// are found through that issuer's discovery document.
	DefaultEntraAuthority = "https://login.microsoftonline.com"
	// DefaultEntraV1Issuer is the base of Entra v1 access tokens' issuer:
	// <v1 issuer>/<tenant id>/.
	DefaultEntraV1Issuer = "https://sts.windows.net"
)

// Entra says where Entra ID access tokens come from (the catalogue's entra
// section). Tokens are accepted only where an app's bearer section asks
// for them.
type Entra struct {
	// Authority is the base of v2 issuers and of the discovery documents
	// that name the signing keys; DefaultEntraAuthority when absent (the
	// development provider sets its own).
	Authority string
	// V1Issuer is the base of v1 issuers; DefaultEntraV1Issuer when
	// absent.
	V1Issuer string
}

// V2Issuer returns the issuer of tenant tid's v2 tokens.
func (e Entra) V2Issuer(tid string) string { return e.Authority + "/" + tid + "/v2.0" }

// V1IssuerFor returns the issuer of tenant tid's v1 tokens.
func (e Entra) V1IssuerFor(tid string) string { return e.V1Issuer + "/" + tid + "/" }

// Issuer is another OpenID Connect issuer whose tokens apps may trust
// (workload identity federation), from the catalogue's issuers list.
type Issuer struct {
	// ID names the issuer in apps, policies and principal names
	// ("wif:<id>/<sub>").
	ID string
	// URL is the issuer exactly as tokens carry it in iss; its discovery
	// document is URL + "/.well-known/openid-configuration".
	URL string
	// JWKSURL, if set, is fetched for the signing keys instead of the
	// discovery document's jwks_uri; empty means JWKSFile or discovery.
	JWKSURL string
	// JWKSFile, if set, is a local JWKS file (an absolute path) read for
	// the signing keys, for an issuer whose keys the mesh cannot fetch (a
	// private cluster's service-account issuer); empty means JWKSURL or
	// discovery. At most one of JWKSURL and JWKSFile is set.
	JWKSFile string
	// Line is the line of the issuer's entry in the catalogue file.
	Line int
}

// Bearer is what bearer tokens an app accepts in the Authorization
// header, instead of the app cookie.
type Bearer struct {
	// Entra accepts Entra ID access tokens; nil means none.
	Entra *EntraBearer
	// Workloads accepts tokens of trusted issuers; empty means none.
	Workloads []WorkloadBearer
	// ForwardToken passes the Authorization header to the backend; false
	// strips it (and a request carrying a bearer token the app does not
	// accept is refused).
	ForwardToken bool
}

// Accepts reports whether b accepts any bearer token at all (Entra or a
// workload issuer).
func (b *Bearer) Accepts() bool { return b != nil && (b.Entra != nil || len(b.Workloads) > 0) }

// Workload returns the app's settings for the issuer with catalogue id id.
func (b *Bearer) Workload(id string) (*WorkloadBearer, bool) {
	if b == nil {
		return nil, false
	}
	for i := range b.Workloads {
		if b.Workloads[i].Issuer.ID == id {
			return &b.Workloads[i], true
		}
	}
	return nil, false
}

// WorkloadByURL returns the app's settings for the issuer whose iss is url.
func (b *Bearer) WorkloadByURL(url string) (*WorkloadBearer, bool) {
	if b == nil {
		return nil, false
	}
	for i := range b.Workloads {
		if b.Workloads[i].Issuer.URL == url {
			return &b.Workloads[i], true
		}
	}
	return nil, false
}

// EntraBearer is an app's acceptance of Entra ID access tokens.
type EntraBearer struct {
	// Audiences are the aud values accepted: the API's Application ID URI
	// (api://...) and/or its client id. At least one.
	Audiences []string
	// V1 and V2 say which token versions are accepted (the API's
	// requested access token version); a token's ver, iss and client
	// claim (appid for v1, azp for v2) must all be of one accepted
	// version. At least one is true.
	V1, V2 bool
	// Tenants are the tenants whose tokens are accepted: the home tenant
	// and those listed in the app's bearer: entra: tenants.
	Tenants []string
}

// WorkloadBearer is an app's acceptance of one trusted issuer's tokens.
type WorkloadBearer struct {
	// Issuer is the trusted issuer.
	Issuer *Issuer
	// Audiences are the aud values accepted from it (a token must name one
	// of them). At least one.
	Audiences []string
}

// AppKind is what an app publishes.
type AppKind string

// App kinds.
const (
	// KindWeb publishes a web app (HTTP); the default.
	KindWeb AppKind = "web"
	// KindTCP publishes a TCP service (SSH, RDP, a database) reached
	// with "connectord access" over one WebSocket per connection.
	KindTCP AppKind = "tcp"
)

// TCPPath is the reserved path on a TCP app's host where the client opens
// one WebSocket per TCP connection.
const TCPPath = "/.postern/tcp"

// root decodes the top-level entra and issuers sections; they are read
// before the apps, which refer to them.
func (p *parser) rootBearer(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			continue
		}
		switch k.Value {
		case "entra":
			p.entraSet = true
			p.mapping(v, "entra", []field{
				{Key: "authority", Decode: func(v *yaml.Node) { p.entra.Authority = p.baseURL(v, "entra", "authority") }},
				{Key: "v1_issuer", Decode: func(v *yaml.Node) { p.entra.V1Issuer = p.baseURL(v, "entra", "v1_issuer") }},
			})
		case "issuers":
			p.list(v, "issuers", "issuer", func(i int, item *yaml.Node) { p.issuer(item, i) })
		}
	}
	if p.entra.Authority == "" {
		p.entra.Authority = DefaultEntraAuthority
	}
	if p.entra.V1Issuer == "" {
		p.entra.V1Issuer = DefaultEntraV1Issuer
	}
}

func (p *parser) issuer(n *yaml.Node, i int) {
	label := labelOf(n, "issuer", i)
	is := &Issuer{Line: n.Line}
	idLine, fileLine := n.Line, n.Line
	p.mapping(n, label, []field{
		{Key: "id", Required: true, Decode: func(v *yaml.Node) { is.ID, idLine = p.id(v, label, "id"), v.Line }},
		{Key: "issuer", Required: true, Decode: func(v *yaml.Node) { is.URL = p.absURL(v, label, "issuer", false) }},
		{Key: "jwks_url", Decode: func(v *yaml.Node) { is.JWKSURL = p.absURL(v, label, "jwks_url", true) }},
		{Key: "jwks_file", Decode: func(v *yaml.Node) {
			fileLine = v.Line
			if s, ok := p.str(v, label, "jwks_file"); ok {
				if !filepath.IsAbs(s) {
					p.add(v.Line, ErrValue, label, "jwks_file %q: want an absolute path", s)
					return
				}
				is.JWKSFile = filepath.Clean(s)
			}
		}},
	})
	if is.JWKSURL != "" && is.JWKSFile != "" {
		p.add(fileLine, ErrValue, label, "jwks_file: give jwks_url or jwks_file, not both")
		is.JWKSFile = ""
	}
	for _, o := range p.issuers {
		switch {
		case is.ID != "" && o.ID == is.ID:
			p.add(idLine, ErrDuplicate, label, "id already used at line %d", o.Line)
			return
		case is.URL != "" && o.URL == is.URL:
			p.add(idLine, ErrDuplicate, label, "issuer %s already listed at line %d", is.URL, o.Line)
			return
		}
	}
	if is.ID != "" && is.URL != "" {
		p.issuers = append(p.issuers, is)
	}
}

// baseURL decodes an https URL without query, fragment or trailing slash.
func (p *parser) baseURL(v *yaml.Node, label, key string) string {
	s := p.absURL(v, label, key, false)
	if strings.HasSuffix(s, "/") {
		p.add(v.Line, ErrValue, label, "%s %q: must not end with /", key, s)
		return ""
	}
	return s
}

// absURL decodes an absolute https URL (http only for a loopback or
// *.localhost host) without user info, query or fragment; withQuery allows
// a query.
func (p *parser) absURL(v *yaml.Node, label, key string, withQuery bool) string {
	s, ok := p.str(v, label, key)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	local := err == nil && (u.Hostname() == "localhost" || strings.HasSuffix(u.Hostname(), ".localhost") || u.Hostname() == "127.0.0.1")
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		p.add(v.Line, ErrValue, label, "%s %q: want an absolute https URL", key, s)
	case u.Scheme != "https" && !(u.Scheme == "http" && local):
		p.add(v.Line, ErrValue, label, "%s %q: must use https", key, s)
	case u.User != nil || u.Fragment != "" || (!withQuery && u.RawQuery != ""):
		p.add(v.Line, ErrValue, label, "%s %q: must not carry user info, a fragment or a query", key, s)
	default:
		return s
	}
	return ""
}

// bearerSpec is a decoded bearer section with the lines of what is
// checked once the app's preauth mode is known.
type bearerSpec struct {
	b               Bearer
	line, entraLine int
	entraTenants    []string
	tenantsLine     int
}

func (p *parser) bearer(v *yaml.Node, label string) *bearerSpec {
	spec := &bearerSpec{line: v.Line}
	p.mapping(v, label+": bearer", []field{
		{Key: "entra", Decode: func(v *yaml.Node) {
			spec.entraLine = v.Line
			eb := &EntraBearer{}
			spec.b.Entra = eb
			p.mapping(v, label+": bearer: entra", []field{
				{Key: "audiences", Required: true, Decode: func(v *yaml.Node) { eb.Audiences = p.names(v, label, "bearer: entra: audiences") }},
				{Key: "versions", Required: true, Decode: func(v *yaml.Node) { eb.V1, eb.V2 = p.versions(v, label) }},
				{Key: "tenants", Decode: func(v *yaml.Node) {
					spec.entraTenants, spec.tenantsLine = p.names(v, label, "bearer: entra: tenants"), v.Line
					for _, t := range spec.entraTenants {
						if !validTenant(t) {
							p.add(v.Line, ErrValue, label, "bearer: entra: tenants: %q: want an Entra tenant id (GUID)", t)
						}
					}
				}},
			})
		}},
		{Key: "workloads", Decode: func(v *yaml.Node) {
			p.list(v, "bearer: workloads", "workload issuer", func(i int, item *yaml.Node) {
				wb, line := p.workloadBearer(item, label, i)
				if wb.Issuer == nil {
					return
				}
				if _, dup := spec.b.Workload(wb.Issuer.ID); dup {
					p.add(line, ErrDuplicate, label, "bearer: workloads: issuer %s listed twice", wb.Issuer.ID)
					return
				}
				spec.b.Workloads = append(spec.b.Workloads, wb)
			})
		}},
		{Key: "forward_token", Decode: func(v *yaml.Node) { spec.b.ForwardToken, _ = p.boolean(v, label, "bearer: forward_token") }},
	})
	return spec
}

func (p *parser) versions(v *yaml.Node, label string) (v1, v2 bool) {
	const key = "bearer: entra: versions"
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		p.add(v.Line, ErrType, label, "%s: got %s, want a list of token versions: [2], [1] or [1, 2]", key, describe(v))
		return false, false
	}
	for _, item := range v.Content {
		item = resolve(item)
		s, _ := p.str(item, label, key+" item")
		switch s {
		case "1", "1.0":
			v1 = true
		case "2", "2.0":
			v2 = true
		default:
			p.add(item.Line, ErrValue, label, "%s: %q: want 1 or 2 (the API's accessTokenAcceptedVersion)", key, s)
		}
	}
	return v1, v2
}

func (p *parser) workloadBearer(n *yaml.Node, label string, i int) (WorkloadBearer, int) {
	var wb WorkloadBearer
	where := fmt.Sprintf("bearer: workloads #%d", i+1)
	line := n.Line
	p.mapping(n, label+": "+where, []field{
		{Key: "issuer", Required: true, Decode: func(v *yaml.Node) {
			line = v.Line
			id, ok := p.str(v, label, where+": issuer")
			if !ok {
				return
			}
			if wb.Issuer = p.issuerByID(id); wb.Issuer == nil {
				p.add(v.Line, ErrValue, label, "%s: issuer %q: %s", where, id, p.knownIssuers())
			}
		}},
		{Key: "audiences", Required: true, Decode: func(v *yaml.Node) { wb.Audiences = p.names(v, label, where+": audiences") }},
	})
	if wb.Issuer != nil && len(wb.Audiences) == 0 {
		p.add(line, ErrValue, label, "%s: audiences: name at least one audience the tokens must carry", where)
		wb.Issuer = nil
	}
	return wb, line
}

func (p *parser) issuerByID(id string) *Issuer {
	for _, is := range p.issuers {
		if is.ID == id {
			return is
		}
	}
	return nil
}

func (p *parser) knownIssuers() string {
	if len(p.issuers) == 0 {
		return "no such issuer (the catalogue's issuers list is empty)"
	}
	ids := make([]string, len(p.issuers))
	for i, is := range p.issuers {
		ids[i] = is.ID
	}
	return "no such issuer (defined: " + strings.Join(ids, ", ") + ")"
}

// finishBearer checks an app's bearer section against its preauth mode
// and the home tenant, and sets app.Bearer.
func (p *parser) finishBearer(a *App, spec *bearerSpec, label string) {
	if spec == nil {
		return
	}
	if a.PreAuth != PreAuthEntra && a.PreAuth != PreAuthOIDC {
		if a.PreAuth != "" {
			p.add(spec.line, ErrValue, label, "bearer: only for preauth %s or %s, not %s", PreAuthEntra, PreAuthOIDC, a.PreAuth)
		}
		return
	}
	b := spec.b
	if eb := b.Entra; eb != nil {
		switch {
		case a.PreAuth != PreAuthEntra:
			p.add(spec.entraLine, ErrValue, label, "bearer: entra: only for preauth %s", PreAuthEntra)
			return
		case p.homeTenant == "":
			p.add(spec.entraLine, ErrMissing, label, "bearer: entra: accepts tokens of the home tenant: set home_tenant (the Entra tenant id) at the top of the catalogue")
			return
		case len(eb.Audiences) == 0:
			p.add(spec.entraLine, ErrValue, label, "bearer: entra: audiences: name the API's Application ID URI or client id")
			return
		case !eb.V1 && !eb.V2:
			return // reported by versions
		case slices.Contains(spec.entraTenants, p.homeTenant):
			p.add(spec.tenantsLine, ErrValue, label, "bearer: entra: tenants: %s is the home tenant, whose tokens are always accepted", p.homeTenant)
			return
		}
		eb.Tenants = append([]string{p.homeTenant}, spec.entraTenants...)
	}
	a.Bearer = &b
}

// checkPolicyBearer reports policy keys that need an app's bearer
// section: clients and require_scopes need Entra tokens, workloads their
// issuer.
func (p *parser) checkPolicyBearer(a *App, spec *policySpec, label string) bool {
	ok := true
	check := func(al policy.Allow, scopes []string, line int, where string) {
		if len(al.Clients) > 0 && (a.Bearer == nil || a.Bearer.Entra == nil) {
			p.add(line, ErrValue, label, "%s: clients: the app accepts no Entra access tokens (bearer: entra)", where)
			ok = false
		}
		if len(scopes) > 0 && (a.Bearer == nil || a.Bearer.Entra == nil) {
			p.add(line, ErrValue, label, "%s: require_scopes: the app accepts no Entra access tokens (bearer: entra)", where)
			ok = false
		}
		for _, w := range al.Workloads {
			if _, found := a.Bearer.Workload(w.Issuer); !found {
				p.add(line, ErrValue, label, "%s: workloads: issuer %q: the app accepts no tokens of it (bearer: workloads)", where, w.Issuer)
				ok = false
			}
		}
	}
	check(spec.cfg.Allow, spec.cfg.RequireScopes, spec.policyLine, "policy")
	for i, r := range spec.cfg.Paths {
		check(r.Allow, r.RequireScopes, spec.prefixLines[i], fmt.Sprintf("policy: path rule #%d", i+1))
	}
	return ok
}

// workloads decodes a policy's list of workload conditions.
func (p *parser) workloads(v *yaml.Node, label, key string) []policy.Workload {
	var out []policy.Workload
	p.list(v, key, "workload condition", func(i int, item *yaml.Node) {
		var w policy.Workload
		where := fmt.Sprintf("%s #%d", key, i+1)
		p.mapping(item, label+": "+where, []field{
			{Key: "issuer", Required: true, Decode: func(v *yaml.Node) { w.Issuer, _ = p.str(v, label, where+": issuer") }},
			{Key: "claims", Decode: func(v *yaml.Node) { w.Claims = p.claimConditions(v, label, where+": claims") }},
		})
		if w.Issuer != "" {
			out = append(out, w)
		}
	})
	return out
}

// claimConditions decodes a mapping of claim name to exact string value.
func (p *parser) claimConditions(v *yaml.Node, label, key string) map[string]string {
	if v.Kind != yaml.MappingNode {
		p.add(v.Line, ErrType, label, "%s: got %s, want a mapping of claim name to value", key, describe(v))
		return nil
	}
	out := make(map[string]string, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := resolve(v.Content[i]), resolve(v.Content[i+1])
		name, ok := p.str(k, label, key+": claim name")
		if !ok {
			continue
		}
		s, ok := p.str(val, label, key+": "+name)
		if !ok {
			continue
		}
		if _, dup := out[name]; dup {
			p.add(k.Line, ErrDuplicate, label, "%s: claim %q listed twice", key, name)
			continue
		}
		if name == "" || s == "" {
			p.add(k.Line, ErrValue, label, "%s: claim names and values must not be empty", key)
			continue
		}
		out[name] = s
	}
	return out
}

// tcpTarget decodes a TCP app's target: host:port.
func (p *parser) tcpTarget(v *yaml.Node, label string) string {
	s, ok := p.str(v, label, "target")
	if !ok {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	switch {
	case err != nil || host == "":
		p.add(v.Line, ErrValue, label, "target %q: want host:port, such as 10.1.2.3:22 or db.corp:5432 ([v6]:port for IPv6)", s)
	case perr != nil || n < 1 || n > 65535:
		p.add(v.Line, ErrValue, label, "target %q: port out of range", s)
	case strings.ContainsAny(host, "/?#@ ") || (!isIP(host) && !validHostName(host)):
		p.add(v.Line, ErrValue, label, "target %q: not a host name or IP address", s)
	default:
		return s
	}
	return ""
}

// validHostName reports whether h is a DNS name (labels of letters,
// digits, "-" and "_").
func validHostName(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" || len(h) > maxHostLen {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	return true
}

func (p *parser) kind(v *yaml.Node, label string) AppKind {
	s, ok := p.str(v, label, "kind")
	if !ok {
		return KindWeb
	}
	switch k := AppKind(s); k {
	case KindWeb, KindTCP:
		return k
	}
	p.add(v.Line, ErrValue, label, "kind %q: must be %s or %s", s, KindWeb, KindTCP)
	return KindWeb
}

// webOnlyKeys are app keys that make no sense for a TCP app.
var webOnlyKeys = []string{"internal_url", "host_header", "tls_skip_verify", "trust_trace_headers", "hsts_max_age", "pass_headers", "path_case", "identity_headers"}

// finishKind checks the keys of an app against its kind.
func (p *parser) finishKind(a *App, lines map[string]int, appLine int, label string) {
	if a.Kind != KindTCP {
		if line, ok := lines["target"]; ok {
			p.add(line, ErrValue, label, "target: only for kind %s apps (a web app has internal_url)", KindTCP)
		}
		if _, ok := lines["internal_url"]; !ok {
			p.add(appLine, ErrMissing, label, "missing required key %q", "internal_url")
		}
		return
	}
	for _, k := range webOnlyKeys {
		if line, ok := lines[k]; ok {
			p.add(line, ErrValue, label, "%s: not for kind %s apps", k, KindTCP)
		}
	}
	if _, ok := lines["target"]; !ok {
		p.add(appLine, ErrMissing, label, "missing required key %q (host:port of the TCP service)", "target")
	}
	if a.PreAuth == PreAuthPassthrough {
		p.add(lines["preauth"], ErrValue, label, "preauth %s: a TCP app needs %s or %s (only signed-in callers may reach it)", a.PreAuth, PreAuthEntra, PreAuthOIDC)
	}
	a.HSTS = ""
}
