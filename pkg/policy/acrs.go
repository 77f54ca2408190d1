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
