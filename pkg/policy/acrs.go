package policy

import "slices"

// ACRsFor returns the authentication contexts required to use the
// request target raw (a path, optionally with a query, as the edge sends
// a browser back to it): the app-wide ones and those of the path rule
// that covers it. The auth functions request them at sign-in, so that a
// user sent to sign in for a step-up comes back meeting them. A path that
// does not normalise gets the app-wide ones (Decide refuses it anyway).
func (p *Policy) ACRsFor(raw string) []string {
	if p == nil {
		return nil
	}
	out := slices.Clone(p.acrs)
	path, err := Normalize(raw, p.caseInsensitive)
	if err != nil {
		return out
	}
	for i := range p.paths {
		if rl := &p.paths[i]; underPrefix(path, rl.prefix) {
			for _, a := range rl.acrs {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
			break
		}
	}
	return out
}

// Tenants returns the tenants whose users' groups and roles some allow
// list of the policy counts: the home tenant ("" when there is none: then
// identities without a tenant, from providers other than Entra) and every
// tenant a list names. The auth functions keep the groups and roles of
// other users out of the app's token. It is nil when the policy names no
// group or role.
func (p *Policy) Tenants() []string {
	if p == nil || len(p.groups)+len(p.roles) == 0 {
		return nil
	}
	out := []string{p.home}
	add := func(s *set) {
		for _, t := range s.src.Tenants {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	add(&p.allow)
	for i := range p.paths {
		add(&p.paths[i].allow)
	}
	return out
}
