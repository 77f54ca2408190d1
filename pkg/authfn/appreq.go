package authfn

import (
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/policy"
	"github.com/postern/postern/pkg/session"
)

// appRequirements is what an app's catalogue entry asks of a sign-in.
type appRequirements struct {
	// groups and roles are those the app's policy names; the app token
	// carries only these.
	groups, roles []string
	// acrs are the authentication contexts required for the return path.
	acrs []string
	// maxAge bounds the time since the user authenticated; zero means none.
	maxAge time.Duration
	// lifetime is the app token's lifetime.
	lifetime time.Duration
	// groupGated is true when some rule of the policy admits by group.
	groupGated bool
	// policy and path let a session be checked for the authentication
	// contexts a path rule adds (step-up).
	policy *policy.Policy
	path   string
}

// Reasons a session does not meet an app's requirements.
const (
	unmetACRs   = "acrs"
	unmetMaxAge = "max_age"
)

// requirementsOf reads app's requirements for a request to rd.
func requirementsOf(app *catalog.App, rd string) appRequirements {
	r := appRequirements{policy: app.Policy, path: rd, lifetime: app.SessionLifetime, maxAge: app.MaxSessionAge}
	if i := strings.IndexByte(rd, '?'); i >= 0 {
		r.path = rd[:i]
	}
	if r.lifetime <= 0 {
		r.lifetime = DefaultAppSessionLifetime
	}
	if p := app.Policy; p != nil {
		r.groups, r.roles, r.acrs = p.Groups(), p.Roles(), p.RequiredACRs()
		r.groupGated = len(r.groups) > 0
		if p.MaxSessionAge() > 0 {
			r.maxAge = p.MaxSessionAge()
		}
	}
	return r
}

// unmet returns "" when id meets r at now, or the first reason it does not.
func (r appRequirements) unmet(id *session.Identity, now time.Time) string {
	for _, a := range r.acrs {
		if !slices.Contains(id.ACRs, a) {
			return unmetACRs
		}
	}
	if r.policy != nil {
		if d := r.policy.Decide(id, policy.Request{Path: r.path, Now: now}); !d.Allow && len(d.MissingACRs) > 0 {
			return unmetACRs
		}
	}
	if r.maxAge > 0 && now.Sub(time.Unix(id.AuthTime, 0)) > r.maxAge {
		return unmetMaxAge
	}
	return ""
}

// stepUp returns r with the authentication contexts that id lacks for
// r's path added to those requested.
func (r appRequirements) stepUp(id *session.Identity, now time.Time) appRequirements {
	if r.policy == nil {
		return r
	}
	d := r.policy.Decide(id, policy.Request{Path: r.path, Now: now})
	for _, a := range d.MissingACRs {
		if !slices.Contains(r.acrs, a) {
			r.acrs = append(slices.Clone(r.acrs), a)
		}
	}
	return r
}
