package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/pkg/session"
)

// Decide reports whether the user id may have the request r. It checks,
// in order: a signed-in user, the source address, the session age, the
// app-wide allow list and authentication contexts, then the rule of the
// longest matching path prefix. A path that does not normalise is denied.
// A nil Policy denies everything.
func (p *Policy) Decide(id *session.Identity, r Request) Decision {
	if p == nil {
		return deny("app", "the app has no policy")
	}
	if id == nil || id.Subject == "" {
		return deny("app", "requires a signed-in user")
	}
	raw := r.RawPath
	if raw == "" {
		raw = r.Path
	}
	paths, err := readPath(raw, p.caseInsensitive)
	if err != nil {
		d := deny("app", "the request path is not acceptable: "+strings.TrimPrefix(err.Error(), "normalize path: "))
		d.BadPath = true
		return d
	}
	if len(p.cidrs) > 0 && !p.sourceAllowed(r) {
		return deny("app", fmt.Sprintf("requires a connection from %s; this one comes from %s", cidrList(p), addrText(r)))
	}
	if p.maxAge > 0 && id.PrincipalType() == session.PrincipalUser {
		now := r.Now
		if now.IsZero() {
			now = time.Now()
		}
		if age := now.Sub(time.Unix(id.AuthTime, 0)); id.AuthTime <= 0 || age > p.maxAge {
			return deny("app", fmt.Sprintf("requires a sign-in within the last %s; sign in again", p.maxAge))
		}
	}
	if d, ok := p.check(id, &p.allow, p.acrs, p.scopes, "app", "this app"); !ok {
		return d
	}
	first := p.decidePath(id, paths.p[0])
	for _, path := range paths.p[1:paths.n] {
		if d := p.decidePath(id, path); !d.Allow {
			return d // another backend's reading of the path is denied
		}
	}
	return first
}

// decidePath applies the rule of the longest prefix matching path, one
// reading of the request path.
func (p *Policy) decidePath(id *session.Identity, path string) Decision {
	for i := range p.paths {
		rl := &p.paths[i]
		if !underPrefix(path, rl.prefix) {
			continue
		}
		if d, ok := p.check(id, &rl.allow, rl.acrs, rl.scopes, rl.label, rl.name); !ok {
			return d
		}
		return Decision{Allow: true, Rule: rl.label}
	}
	return Decision{Allow: true, Rule: "app"}
}

func deny(rule, reason string) Decision { return Decision{Rule: rule, Reason: reason} }

// check applies one allow list, acrs list and scopes list; scope names
// the part in messages.
func (p *Policy) check(id *session.Identity, s *set, acrs, scopes []string, ruleName, scope string) (Decision, bool) {
	if !(ruleName != "app" && s.empty()) && !s.matches(id, p.home) { // an empty path rule admits whom the app does
		reason := "requires " + s.describe() + " for " + scope
		if s.matches(&session.Identity{Subject: id.Subject, Type: id.Type, ClientID: id.ClientID, Groups: id.Groups, Roles: id.Roles}, "") {
			reason += fmt.Sprintf("; roles and groups count only from the tenants %s, and you signed in from %s",
				strings.Join(s.tenantsWith(p.home), ", "), tenantText(id.TenantID))
		}
		return deny(ruleName, reason), false
	}
	if missing := missingACRs(id.ACRs, acrs); len(missing) > 0 {
		d := deny(ruleName, fmt.Sprintf("requires the authentication context %s for %s; sign in again to meet it", strings.Join(missing, " and "), scope))
		d.MissingACRs = missing
		return d, false
	}
	if id.Delegated() {
		if missing := missingACRs(id.Scopes, scopes); len(missing) > 0 {
			d := deny(ruleName, fmt.Sprintf("requires the delegated permission %s for %s", strings.Join(missing, " and "), scope))
			d.MissingScopes = missing
			return d, false
		}
	}
	return Decision{}, true
}

func tenantText(tid string) string {
	if tid == "" {
		return "no tenant"
	}
	return "tenant " + tid
}

// matches reports whether id is allowed by s. An empty s admits users
// only: applications and workloads must be named. Users are
// tenant-qualified already; workloads match their conditions; clients,
// groups and roles count only when id's tenant is home or one of the
// tenants s accepts. An identity without a tenant (a provider other than
// Entra) counts only where there is no home tenant either.
func (s *set) matches(id *session.Identity, home string) bool {
	if s.empty() {
		return id.PrincipalType() == session.PrincipalUser
	}
	if _, ok := s.users[id.Subject]; ok {
		return true
	}
	if id.Type == session.PrincipalWorkload {
		return s.workloadMatches(id)
	}
	if !s.tenantAccepted(id.TenantID, home) {
		return false
	}
	if _, ok := s.clients[id.ClientID]; ok && id.Type == session.PrincipalApp {
		return true
	}
	for _, g := range id.Groups {
		if _, ok := s.groups[g]; ok {
			return true
		}
	}
	for _, r := range id.Roles {
		if _, ok := s.roles[r]; ok {
			return true
		}
	}
	return false
}

// empty reports whether s names no one.
func (s *set) empty() bool {
	return s.users == nil && s.groups == nil && s.roles == nil && s.clients == nil && len(s.src.Workloads) == 0
}

// workloadMatches reports whether the workload id meets one of the
// conditions of s: its issuer, and every claim value exactly.
func (s *set) workloadMatches(id *session.Identity) bool {
	for _, w := range s.src.Workloads {
		if w.Issuer != id.Issuer {
			continue
		}
		met := true
		for k, v := range w.Claims {
			if got, ok := id.Claims[k]; !ok || got != v {
				met = false
				break
			}
		}
		if met {
			return true
		}
	}
	return false
}

func (s *set) tenantAccepted(tid, home string) bool {
	if tid == "" || tid == home {
		return tid == home
	}
	return slices.Contains(s.src.Tenants, tid)
}

// tenantsWith lists home and the tenants s accepts, for messages.
func (s *set) tenantsWith(home string) []string {
	out := make([]string, 0, 1+len(s.src.Tenants))
	if home != "" {
		out = append(out, home)
	}
	return append(out, s.src.Tenants...)
}

// describe names an allow list in a sentence: "the app role X",
// "membership of one of the groups A, B or the app role X"; an empty
// list says that it admits users only.
func (s *set) describe() string {
	var parts []string
	if s.empty() {
		return "a signed-in user (applications and workloads are admitted only when the policy names them)"
	}
	if n := len(s.src.Roles); n > 0 {
		parts = append(parts, plural(n, "the app role ", "one of the app roles ")+strings.Join(s.src.Roles, ", "))
	}
	if n := len(s.src.Groups); n > 0 {
		parts = append(parts, plural(n, "membership of the group ", "membership of one of the groups ")+strings.Join(s.src.Groups, ", "))
	}
	if n := len(s.src.Users); n > 0 {
		parts = append(parts, plural(n, "the user ", "one of the users ")+strings.Join(s.src.Users, ", "))
	}
	if n := len(s.src.Clients); n > 0 {
		parts = append(parts, plural(n, "the client application ", "one of the client applications ")+strings.Join(s.src.Clients, ", "))
	}
	for _, w := range s.src.Workloads {
		parts = append(parts, "a workload of issuer "+w.Issuer+describeClaims(w.Claims))
	}
	return strings.Join(parts, " or ")
}

// describeClaims renders workload conditions in a stable order.
func describeClaims(c map[string]string) string {
	if len(c) == 0 {
		return ""
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + c[k]
	}
	return " with " + strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func missingACRs(have, want []string) []string {
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// underPrefix reports whether path is prefix or below it, by whole
// segments.
func underPrefix(path, prefix string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

func (p *Policy) sourceAllowed(r Request) bool {
	if !r.ClientIP.IsValid() {
		return false
	}
	ip := r.ClientIP.Unmap()
	for _, c := range p.cidrs {
		if c.Contains(ip) {
			return true
		}
	}
	return false
}

func cidrList(p *Policy) string {
	s := make([]string, len(p.cidrs))
	for i, c := range p.cidrs {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

func addrText(r Request) string {
	if !r.ClientIP.IsValid() {
		return "an unknown address"
	}
	return r.ClientIP.Unmap().String()
}
