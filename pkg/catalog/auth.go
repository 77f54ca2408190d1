package catalog

import (
	"fmt"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/postern/postern/pkg/policy"
)

// DefaultSessionLifetime is a pre-authenticated app's session_lifetime when
// the key is absent.
const DefaultSessionLifetime = 8 * time.Hour

// PathCase says whether an app's paths are case-sensitive for policy
// matching.
type PathCase string

// Path case modes.
const (
	// PathCaseSensitive matches paths exactly; the default.
	PathCaseSensitive PathCase = "sensitive"
	// PathCaseInsensitive matches paths ignoring ASCII case, for backends
	// that do (IIS and most Windows apps): "/Admin" meets a rule on "/admin".
	PathCaseInsensitive PathCase = "insensitive"
)

// IdentityHeaders names the request headers through which the mesh tells a
// pre-authenticated app's backend who the user is. An empty name disables
// that header.
type IdentityHeaders struct {
	// User carries the subject ("<tid>/<oid>").
	User string
	// Email carries the e-mail address (informational).
	Email string
	// Name carries the display name.
	Name string
	// Groups carries the group ids the app's policy names, comma-separated.
	Groups string
	// Assertion carries a signed identity-assertion JWT.
	Assertion string
	// Type carries the principal type: user, app (an application with an
	// app-only token) or workload (a federated workload).
	Type string
	// Client carries the client application id of a bearer token (azp or
	// appid).
	Client string
}

// Names returns the header names in use, empty ones included.
func (ih *IdentityHeaders) Names() [7]string {
	return [7]string{ih.User, ih.Email, ih.Name, ih.Groups, ih.Assertion, ih.Type, ih.Client}
}

// DefaultIdentityHeaders are the identity headers when identity_headers is
// absent; a key left out of identity_headers keeps its default.
var DefaultIdentityHeaders = IdentityHeaders{
	User: "X-Postern-User", Email: "X-Postern-Email", Name: "X-Postern-Name",
	Groups: "X-Postern-Groups", Assertion: "X-Postern-Assertion",
	Type: "X-Postern-Principal-Type", Client: "X-Postern-Client-Id",
}

// reservedHeaders may not carry identity: the mesh or HTTP itself owns them.
var reservedHeaders = []string{
	"authorization", "connection", "content-length", "content-type", "cookie", "forwarded", "host",
	"keep-alive", "proxy-authorization", "proxy-connection", "set-cookie", "te", "trailer",
	"transfer-encoding", "upgrade", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip",
}

// authKeys collects an app's sign-in settings while its mapping is
// decoded; they are checked together once the preauth mode is known.
type authKeys struct {
	passLine        int            // line of pass_headers, 0 when absent
	lines           map[string]int // key -> line, for every sign-in key present
	pathCase        PathCase
	policy          *policySpec
	identityHeaders IdentityHeaders
	headerLines     map[string]int
	bearer          *bearerSpec
}

// policySpec is a decoded policy mapping with the lines of what is checked
// later.
type policySpec struct {
	cfg           policy.Config
	prefixLines   []int // 0 for a rule without prefix
	appTenantLine int   // line of policy: allow: tenants, 0 when absent
	ruleTenants   []int // line of each path rule's allow: tenants, 0 when absent
	policyLine    int   // line of the policy key
	tests         []PolicyTest
}

func (p *parser) authFields(a *App, k *authKeys, label string) []field {
	mark := func(key string, v *yaml.Node) { k.lines[key] = v.Line }
	return []field{
		{Key: "session_lifetime", Decode: func(v *yaml.Node) {
			mark("session_lifetime", v)
			a.SessionLifetime = p.timeout(v, label, "session_lifetime")
		}},
		{Key: "max_session_age", Decode: func(v *yaml.Node) {
			mark("max_session_age", v)
			a.MaxSessionAge = p.timeout(v, label, "max_session_age")
		}},
		{Key: "path_case", Decode: func(v *yaml.Node) {
			mark("path_case", v)
			k.pathCase = p.pathCase(v, label)
		}},
		{Key: "policy", Decode: func(v *yaml.Node) {
			mark("policy", v)
			k.policy = p.policy(v, label)
		}},
		{Key: "identity_headers", Decode: func(v *yaml.Node) {
			mark("identity_headers", v)
			k.identityHeaders = p.identityHeaders(v, label, k.headerLines)
		}},
	}
}

// finishAuth checks the sign-in keys against the preauth mode and builds
// the app's policy.
func (p *parser) finishAuth(a *App, k *authKeys, label string) {
	if a.PreAuth != PreAuthEntra && a.PreAuth != PreAuthOIDC {
		if a.PreAuth == "" {
			return // already reported
		}
		p.checkPassHeaders(a, k.passLine, label)
		p.finishBearer(a, k.bearer, label)
		for _, key := range []string{"session_lifetime", "max_session_age", "path_case", "policy", "identity_headers"} {
			if line, ok := k.lines[key]; ok {
				p.add(line, ErrValue, label, "%s: only for preauth %s or %s, not %s", key, PreAuthEntra, PreAuthOIDC, a.PreAuth)
			}
		}
		return
	}
	if _, ok := k.lines["session_lifetime"]; !ok {
		a.SessionLifetime = DefaultSessionLifetime
	}
	a.PathCase = PathCaseSensitive
	if k.pathCase != "" {
		a.PathCase = k.pathCase
	}
	a.IdentityHeaders = k.identityHeaders
	if _, ok := k.lines["identity_headers"]; !ok {
		a.IdentityHeaders = DefaultIdentityHeaders
	}
	p.checkPassHeaders(a, k.passLine, label)
	p.finishBearer(a, k.bearer, label)
	spec := k.policy
	if spec == nil {
		spec = &policySpec{}
	}
	spec.policyLine = k.lines["policy"]
	if a.Kind == KindTCP && len(spec.cfg.Paths) > 0 {
		p.add(spec.prefixLines[0], ErrValue, label, "policy: paths: a TCP app has no paths")
		return
	}
	if !p.checkTenants(a, spec, k.lines["policy"], label) || !p.checkPolicyBearer(a, spec, label) {
		return
	}
	spec.cfg.HomeTenant = p.homeTenant
	spec.cfg.MaxSessionAge = max(a.MaxSessionAge, 0)
	spec.cfg.CaseInsensitive = a.PathCase == PathCaseInsensitive
	ok := p.checkPrefixes(spec, label)
	if !ok {
		return
	}
	pol, err := policy.New(spec.cfg)
	if err != nil {
		p.add(k.lines["policy"], ErrValue, label, "policy: %v", err)
		return
	}
	a.Policy = pol
	a.PolicyTests = spec.tests
}

// checkPrefixes normalises every path prefix as the policy will and
// reports bad and repeated ones at their lines.
func (p *parser) checkPrefixes(spec *policySpec, label string) bool {
	ok := true
	seen := make(map[string]int, len(spec.cfg.Paths))
	for i, r := range spec.cfg.Paths {
		line := spec.prefixLines[i]
		if line == 0 {
			ok = false
			continue
		}
		n, err := policy.NormalizePrefix(r.Prefix, spec.cfg.CaseInsensitive)
		if err != nil {
			p.add(line, ErrValue, label, "policy: prefix %q: must be a path starting with /, without a query, fragment, encoded slash, .. above the root, spaces or control characters", r.Prefix)
			ok = false
			continue
		}
		if first, dup := seen[n]; dup {
			p.add(line, ErrDuplicate, label, "policy: prefix %q is the same path as the prefix at line %d", r.Prefix, first)
			ok = false
			continue
		}
		seen[n] = line
	}
	return ok
}

func (p *parser) pathCase(v *yaml.Node, label string) PathCase {
	s, ok := p.str(v, label, "path_case")
	if !ok {
		return ""
	}
	switch c := PathCase(s); c {
	case PathCaseSensitive, PathCaseInsensitive:
		return c
	}
	p.add(v.Line, ErrValue, label, "path_case %q: must be %s or %s", s, PathCaseSensitive, PathCaseInsensitive)
	return ""
}

func (p *parser) policy(v *yaml.Node, label string) *policySpec {
	spec := &policySpec{}
	cfg := &spec.cfg
	p.mapping(v, label+": policy", []field{
		{Key: "allow", Decode: func(v *yaml.Node) { cfg.Allow = p.allow(v, label, "policy: allow", &spec.appTenantLine) }},
		{Key: "require_acrs", Decode: func(v *yaml.Node) { cfg.RequireACRs = p.names(v, label, "policy: require_acrs") }},
		{Key: "require_scopes", Decode: func(v *yaml.Node) { cfg.RequireScopes = p.names(v, label, "policy: require_scopes") }},
		{Key: "source_cidrs", Decode: func(v *yaml.Node) { cfg.SourceCIDRs = p.cidrs(v, label) }},
		{Key: "paths", Decode: func(v *yaml.Node) {
			p.list(v, "policy: paths", "path rule", func(i int, item *yaml.Node) {
				var tl int
				r, line := p.pathRule(item, label, i, &tl)
				cfg.Paths = append(cfg.Paths, r)
				spec.prefixLines = append(spec.prefixLines, line)
				spec.ruleTenants = append(spec.ruleTenants, tl)
			})
		}},
		{Key: "tests", Decode: func(v *yaml.Node) { spec.tests = p.policyTests(v, label) }},
	})
	return spec
}

func (p *parser) pathRule(n *yaml.Node, label string, i int, tenantLine *int) (policy.PathRule, int) {
	var r policy.PathRule
	line := 0 // stays 0 when prefix is missing (reported by mapping)
	where := fmt.Sprintf("policy: path rule #%d", i+1)
	p.mapping(n, label+": "+where, []field{
		{Key: "prefix", Required: true, Decode: func(v *yaml.Node) {
			r.Prefix, _ = p.str(v, label, where+": prefix")
			line = v.Line
		}},
		{Key: "allow", Decode: func(v *yaml.Node) { r.Allow = p.allow(v, label, where+": allow", tenantLine) }},
		{Key: "require_acrs", Decode: func(v *yaml.Node) { r.RequireACRs = p.names(v, label, where+": require_acrs") }},
		{Key: "require_scopes", Decode: func(v *yaml.Node) { r.RequireScopes = p.names(v, label, where+": require_scopes") }},
	})
	return r, line
}

func (p *parser) allow(v *yaml.Node, label, key string, tenantLine *int) policy.Allow {
	var a policy.Allow
	p.mapping(v, label+": "+key, []field{
		{Key: "users", Decode: func(v *yaml.Node) {
			a.Users = p.names(v, label, key+": users")
			for _, u := range a.Users {
				if !strings.Contains(u, "/") {
					p.add(v.Line, ErrValue, label, "%s: users: %q: want <tenant id>/<object id> (or <issuer id>/<sub>, wif:<issuer>/<sub>), never an e-mail", key, u)
				}
			}
		}},
		{Key: "groups", Decode: func(v *yaml.Node) { a.Groups = p.names(v, label, key+": groups") }},
		{Key: "roles", Decode: func(v *yaml.Node) { a.Roles = p.names(v, label, key+": roles") }},
		{Key: "clients", Decode: func(v *yaml.Node) { a.Clients = p.names(v, label, key+": clients") }},
		{Key: "workloads", Decode: func(v *yaml.Node) { a.Workloads = p.workloads(v, label, key+": workloads") }},
		{Key: "tenants", Decode: func(v *yaml.Node) {
			a.Tenants = p.names(v, label, key+": tenants")
			for _, t := range a.Tenants {
				if !validTenant(t) {
					p.add(v.Line, ErrValue, label, "%s: tenants: %q: want an Entra tenant id (GUID)", key, t)
				}
			}
			*tenantLine = v.Line
		}},
	})
	return a
}

// names decodes a list of non-empty strings without spaces, refusing
// repeats; null is an empty list.
func (p *parser) names(v *yaml.Node, label, key string) []string {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, ErrType, label, "%s: got %s, want a list of strings", key, describe(v))
		return nil
	}
	var out []string
	for _, item := range v.Content {
		item = resolve(item)
		s, ok := p.str(item, label, key+" item")
		if !ok {
			continue
		}
		switch {
		case s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			p.add(item.Line, ErrValue, label, "%s: %q: must be non-empty, without spaces or control characters", key, s)
		case slices.Contains(out, s):
			p.add(item.Line, ErrDuplicate, label, "%s: %q listed twice", key, s)
		default:
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) cidrs(v *yaml.Node, label string) []netip.Prefix {
	const key = "policy: source_cidrs"
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, ErrType, label, "%s: got %s, want a list of CIDRs", key, describe(v))
		return nil
	}
	var out []netip.Prefix
	for _, item := range v.Content {
		item = resolve(item)
		s, ok := p.str(item, label, key+" item")
		if !ok {
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			p.add(item.Line, ErrValue, label, "%s: %q: not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", key, s)
		case pfx != pfx.Masked():
			p.add(item.Line, ErrValue, label, "%s: %q: host bits set (did you mean %s?)", key, s, pfx.Masked())
		default:
			out = append(out, pfx)
		}
	}
	return out
}

func (p *parser) identityHeaders(v *yaml.Node, label string, lines map[string]int) IdentityHeaders {
	h := DefaultIdentityHeaders
	set := func(key string, dst *string) field {
		return field{Key: key, Decode: func(v *yaml.Node) {
			*dst = p.headerName(v, label, key)
			lines[key] = v.Line
		}}
	}
	p.mapping(v, label+": identity_headers", []field{
		set("user", &h.User), set("email", &h.Email), set("name", &h.Name),
		set("groups", &h.Groups), set("assertion", &h.Assertion), set("type", &h.Type), set("client", &h.Client),
	})
	seen := make(map[string]string, 7)
	for _, kv := range []struct{ key, name string }{
		{"user", h.User}, {"email", h.Email}, {"name", h.Name}, {"groups", h.Groups}, {"assertion", h.Assertion},
		{"type", h.Type}, {"client", h.Client},
	} {
		if kv.name == "" {
			continue
		}
		if first, dup := seen[kv.name]; dup {
			p.add(lines[kv.key], ErrDuplicate, label, "identity_headers: %s: header %s is already used by %s", kv.key, kv.name, first)
			continue
		}
		seen[kv.name] = kv.key
	}
	return h
}

// headerName returns a valid header name in canonical form, "" to disable.
func (p *parser) headerName(v *yaml.Node, label, key string) string {
	s, ok := p.str(v, label, "identity_headers: "+key)
	if !ok || s == "" {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			p.add(v.Line, ErrValue, label, "identity_headers: %s %q: not a valid header name (letters, digits and !#$%%&'*+-.^_`|~)", key, s)
			return ""
		}
	}
	if slices.Contains(reservedHeaders, strings.ToLower(s)) {
		p.add(v.Line, ErrValue, label, "identity_headers: %s %q: reserved header, choose another name", key, s)
		return ""
	}
	return textproto.CanonicalMIMEHeaderKey(s)
}

func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkTenants enforces the tenant scoping of groups and roles: an Entra
// app whose policy names groups or roles needs the catalogue's home_tenant
// (else no tenant's would count), and tenants are only for Entra apps and
// only next to groups or roles. It reports at the lines concerned.
func (p *parser) checkTenants(a *App, spec *policySpec, policyLine int, label string) bool {
	ok := true
	check := func(al policy.Allow, line int, where string) {
		if line == 0 {
			return
		}
		switch {
		case a.PreAuth != PreAuthEntra:
			p.add(line, ErrValue, label, "%s: tenants: only for preauth %s (other providers have no tenants)", where, PreAuthEntra)
			ok = false
		case len(al.Groups)+len(al.Roles) == 0:
			p.add(line, ErrValue, label, "%s: tenants: only next to groups or roles, which they scope", where)
			ok = false
		case slices.Contains(al.Tenants, p.homeTenant):
			p.add(line, ErrValue, label, "%s: tenants: %s is the home tenant, whose groups and roles always count", where, p.homeTenant)
			ok = false
		}
	}
	check(spec.cfg.Allow, spec.appTenantLine, "policy: allow")
	named := len(spec.cfg.Allow.Groups)+len(spec.cfg.Allow.Roles) > 0
	for i, r := range spec.cfg.Paths {
		check(r.Allow, spec.ruleTenants[i], fmt.Sprintf("policy: path rule #%d: allow", i+1))
		named = named || len(r.Allow.Groups)+len(r.Allow.Roles) > 0
	}
	if named && a.PreAuth == PreAuthEntra && p.homeTenant == "" {
		p.add(policyLine, ErrMissing, label, "policy: names groups or roles, which count only from the home tenant: set home_tenant (the Entra tenant id) at the top of the catalogue")
		ok = false
	}
	return ok
}

// tenant decodes an Entra tenant id.
func (p *parser) tenant(v *yaml.Node, label, key string) string {
	return p.checked(v, label, key, validTenant, "want an Entra tenant id (GUID)")
}

// validTenant reports whether s is an Entra tenant id: a GUID, in lower
// case as Entra's tid claim carries it.
func validTenant(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// hsts decodes hsts_max_age into a Strict-Transport-Security value: a
// duration of at least a second, or 0 for none.
func (p *parser) hsts(v *yaml.Node, label string) string {
	s, ok := p.str(v, label, "hsts_max_age")
	if !ok {
		return DefaultHSTS
	}
	if s == "0" || s == "0s" {
		return ""
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		p.add(v.Line, ErrValue, label, "hsts_max_age %q: want a duration of at least 1s, such as 8760h (a year), or 0 for no Strict-Transport-Security header", s)
		return DefaultHSTS
	}
	return fmt.Sprintf("max-age=%d", int64(d/time.Second))
}

// passHeaders decodes pass_headers: header names in canonical form.
func (p *parser) passHeaders(v *yaml.Node, label string) []string {
	names := p.names(v, label, "pass_headers")
	out := make([]string, 0, len(names))
	for _, n := range names {
		for i := 0; i < len(n); i++ {
			if !isTokenChar(n[i]) {
				p.add(v.Line, ErrValue, label, "pass_headers: %q: not a valid header name", n)
				return nil
			}
		}
		out = append(out, textproto.CanonicalMIMEHeaderKey(n))
	}
	return out
}

// mustStrip are headers the mesh sets itself or that carry Postern's own
// identity: no app may have the client's copy.
var mustStrip = []string{"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-request-id", "http2-settings"}

// checkPassHeaders refuses pass_headers that name a header the mesh owns:
// its forwarding headers, the X-Postern- family, the app's identity
// headers and the hop-by-hop or reserved ones.
func (p *parser) checkPassHeaders(a *App, line int, label string) {
	ih := a.IdentityHeaders
	for _, n := range a.PassHeaders {
		l := strings.ToLower(strings.ReplaceAll(n, "_", "-"))
		owned := slices.Contains(mustStrip, l) || slices.Contains(reservedHeaders, l) || strings.HasPrefix(l, "x-postern-") || strings.HasPrefix(l, "postern-")
		for _, id := range ih.Names() {
			owned = owned || (id != "" && strings.EqualFold(strings.ReplaceAll(id, "_", "-"), l))
		}
		if owned {
			p.add(line, ErrValue, label, "pass_headers: %s: the mesh owns this header; it cannot be passed through", n)
		}
	}
}
