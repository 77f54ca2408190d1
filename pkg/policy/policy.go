package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Allow names who may have access: a caller matches when their subject is
// in Users, or they are in one of Groups, or they hold one of Roles, or
// they are an application named in Clients, or a workload meeting one of
// Workloads. All empty means any signed-in user: applications and
// workloads are admitted only by name (Entra issues an app-only token for
// any API to any application of the tenant, with no roles).
type Allow struct {
	// Users are subjects ("<tid>/<oid>" for Entra, also of an
	// application's service principal; "wif:<issuer>/<sub>" for a
	// workload).
	Users []string
	// Groups are group object ids.
	Groups []string
	// Roles are app role values, such as "SmartMoney.Admin": assigned to
	// users, or granted to applications (application permissions).
	Roles []string
	// Clients are client (application) ids whose app-only tokens are
	// admitted: the application calling on its own behalf.
	Clients []string
	// Workloads are conditions on federated workload tokens: any one met
	// admits.
	Workloads []Workload
	// Tenants are Entra tenant ids, other than the home tenant, whose
	// groups and app roles count for Groups and Roles; empty means only
	// the home tenant's (Config.HomeTenant) do. A partner tenant's admins
	// assign their own users roles and groups: accept them only by name.
	Tenants []string
}

// Workload admits the tokens of one trusted issuer whose claims have the
// given values, such as a GitHub Actions job of one repository and
// environment.
type Workload struct {
	// Issuer is the catalogue id of the issuer.
	Issuer string
	// Claims maps a claim name to the exact string value it must have;
	// empty admits every token of the issuer that reaches the app.
	Claims map[string]string
}

// PathRule adds requirements for the part of an app under Prefix, on top
// of the app-wide ones.
type PathRule struct {
	// Prefix is a path starting with "/"; it covers whole segments.
	Prefix string
	// Allow restricts who may use the part; empty means anyone the app
	// allows.
	Allow Allow
	// RequireACRs are authentication contexts the user must have met, in
	// addition to the app's; nil means none.
	RequireACRs []string
	// RequireScopes are delegated permissions a delegated access token
	// must carry, in addition to the app's; nil means none.
	RequireScopes []string
}

// Config is an app's policy as written in the catalogue.
type Config struct {
	// Allow is who may use the app; empty means any signed-in user.
	Allow Allow
	// RequireACRs are authentication contexts (Entra "acrs") the user must
	// have met; nil means none. Applications and workloads meet none.
	RequireACRs []string
	// RequireScopes are delegated permissions (Entra "scp") that a user's
	// delegated access token must all carry; nil means none. They limit
	// what a client app may do on a user's behalf, so they do not apply to
	// a user signed in with a browser, nor to applications and workloads
	// (which are admitted by name).
	RequireScopes []string
	// SourceCIDRs are the client addresses allowed; nil means any.
	SourceCIDRs []netip.Prefix
	// MaxSessionAge is the longest time since the user authenticated at
	// the provider (auth_time); zero means no limit. A user without
	// auth_time (a delegated access token) is refused by it; applications
	// and workloads have no sign-in session and are exempt.
	MaxSessionAge time.Duration
	// CaseInsensitive matches paths ignoring ASCII case, for backends
	// (IIS, most Windows apps) that do; false means case-sensitive.
	CaseInsensitive bool
	// Paths are path rules; the longest matching prefix applies.
	Paths []PathRule
	// HomeTenant is the Entra tenant whose groups and roles count in every
	// allow list; empty means identities without a tenant (providers other
	// than Entra), whose groups and roles count, while those of an
	// identity with a tenant then count only where an allow list names
	// its tenant.
	HomeTenant string
}

// Policy is a compiled, immutable [Config], safe for concurrent use.
type Policy struct {
	allow           set
	acrs            []string
	scopes          []string
	cidrs           []netip.Prefix
	maxAge          time.Duration
	caseInsensitive bool
	paths           []rule // longest prefix first
	groups, roles   []string
	home            string
}

// rule is a compiled path rule.
type rule struct {
	prefix string // normalised
	allow  set
	acrs   []string
	scopes []string
	name   string // normalised prefix, for messages
	label  string // "path <name>", the Decision's Rule
}

// set is a compiled Allow.
type set struct {
	users, groups, roles, clients map[string]struct{}
	src                           Allow
}

// Request is what Decide needs to know about a request.
type Request struct {
	// Path is the request's escaped path (r.URL.EscapedPath()); used only
	// when RawPath is empty.
	Path string
	// RawPath is the request target exactly as received (r.RequestURI),
	// query included; preferred over Path, so that a full URL in the
	// request line is refused.
	RawPath string
	// ClientIP is the client's address; the zero value fails any
	// source_cidrs.
	ClientIP netip.Addr
	// Now is the time of the request; the zero value means time.Now().
	Now time.Time
}

// Decision is the outcome of [Policy.Decide].
type Decision struct {
	// Allow reports whether the request may proceed.
	Allow bool
	// Reason is a sentence for the 403 page and the log, naming what was
	// missing ("requires the app role SmartMoney.Admin for /admin").
	Reason string
	// Rule names the rule that decided: "app" or "path /admin".
	Rule string
	// BadPath reports a denial because the request path is refused
	// outright (see [Normalize]); the edge answers it with 400.
	BadPath bool
	// MissingACRs lists required authentication contexts the user has not
	// met, when that is the only reason for a denial: signing in again
	// with them (step-up) could succeed.
	MissingACRs []string
	// MissingScopes lists required delegated permissions a delegated
	// access token lacks, when that is the reason for a denial (the edge
	// answers insufficient_scope).
	MissingScopes []string
}

// New compiles cfg. It refuses rule prefixes that do not normalise, and
// repeated prefixes, with [ErrBadConfig].
func New(cfg Config) (*Policy, error) {
	p := &Policy{
		allow:           compileAllow(cfg.Allow),
		acrs:            slices.Clone(cfg.RequireACRs),
		scopes:          slices.Clone(cfg.RequireScopes),
		cidrs:           slices.Clone(cfg.SourceCIDRs),
		maxAge:          cfg.MaxSessionAge,
		caseInsensitive: cfg.CaseInsensitive,
		home:            cfg.HomeTenant,
	}
	if cfg.MaxSessionAge < 0 {
		return nil, fmt.Errorf("new policy: %w: negative max session age", ErrBadConfig)
	}
	for i, c := range p.cidrs {
		if !c.IsValid() {
			return nil, fmt.Errorf("new policy: %w: source CIDR #%d is not valid", ErrBadConfig, i+1)
		}
		p.cidrs[i] = c.Masked()
	}
	seen := make(map[string]string, len(cfg.Paths))
	for _, pr := range cfg.Paths {
		prefix, err := NormalizePrefix(pr.Prefix, cfg.CaseInsensitive)
		if err != nil {
			return nil, fmt.Errorf("new policy: path prefix %q: %w", pr.Prefix, err)
		}
		if first, dup := seen[prefix]; dup {
			return nil, fmt.Errorf("new policy: %w: path prefix %q is the same as %q", ErrBadConfig, pr.Prefix, first)
		}
		seen[prefix] = pr.Prefix
		p.paths = append(p.paths, rule{prefix: prefix, allow: compileAllow(pr.Allow), acrs: slices.Clone(pr.RequireACRs),
			scopes: slices.Clone(pr.RequireScopes), name: prefix, label: "path " + prefix})
	}
	slices.SortStableFunc(p.paths, func(a, b rule) int { return len(b.prefix) - len(a.prefix) })
	for _, w := range workloadsOf(cfg) {
		if w.Issuer == "" {
			return nil, fmt.Errorf("new policy: %w: a workload condition names no issuer", ErrBadConfig)
		}
	}
	p.groups, p.roles = named(cfg)
	return p, nil
}

// NormalizePrefix returns a rule prefix in the form [Normalize] gives
// request paths, without a trailing slash (except for "/"). It refuses a
// prefix that does not start with "/", has a query, has ";" parameters or
// "//" (which backends read in several ways), or does not normalise, with
// [ErrBadConfig].
func NormalizePrefix(prefix string, caseInsensitive bool) (string, error) {
	if !strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "?") {
		return "", fmt.Errorf("%w: must be a path starting with / and without a query", ErrBadConfig)
	}
	r, err := readPath(prefix, caseInsensitive)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	n := r.p[0]
	if r.n > 1 || strings.Contains(n, ";") {
		return "", fmt.Errorf("%w: must not contain ; parameters or //", ErrBadConfig)
	}
	if len(n) > 1 {
		n = strings.TrimSuffix(n, "/")
	}
	return n, nil
}

func compileAllow(a Allow) set {
	return set{users: toSet(a.Users), groups: toSet(a.Groups), roles: toSet(a.Roles), clients: toSet(a.Clients), src: a}
}

// workloadsOf returns every workload condition of cfg.
func workloadsOf(cfg Config) []Workload {
	out := slices.Clone(cfg.Allow.Workloads)
	for _, pr := range cfg.Paths {
		out = append(out, pr.Allow.Workloads...)
	}
	return out
}

func toSet(items []string) map[string]struct{} {
	if len(items) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(items))
	for _, s := range items {
		m[s] = struct{}{}
	}
	return m
}

// named returns every group and role the config names, sorted, unique.
func named(cfg Config) (groups, roles []string) {
	groups = append(groups, cfg.Allow.Groups...)
	roles = append(roles, cfg.Allow.Roles...)
	for _, pr := range cfg.Paths {
		groups = append(groups, pr.Allow.Groups...)
		roles = append(roles, pr.Allow.Roles...)
	}
	slices.Sort(groups)
	slices.Sort(roles)
	return slices.Compact(groups), slices.Compact(roles)
}

// Groups returns every group the policy names, sorted: an app token needs
// only these (see session.Identity.ForPolicy).
func (p *Policy) Groups() []string { return slices.Clone(p.groups) }

// Roles returns every app role the policy names, sorted.
func (p *Policy) Roles() []string { return slices.Clone(p.roles) }

// RequiredACRs returns the app-wide authentication contexts; the auth
// functions request them at sign-in.
func (p *Policy) RequiredACRs() []string { return slices.Clone(p.acrs) }

// MaxSessionAge returns the longest time since auth_time; zero means none.
func (p *Policy) MaxSessionAge() time.Duration { return p.maxAge }

// CaseInsensitive reports whether paths are matched ignoring ASCII case.
func (p *Policy) CaseInsensitive() bool { return p.caseInsensitive }
