package authfn

import (
	"slices"
	"time"

	"github.com/postern/postern/pkg/appreq"
	"github.com/postern/postern/pkg/session"
)

// appRequirements is what a signed app request asks of a sign-in.
type appRequirements struct {
	// groups and roles are those the app's policy names; the app token
	// carries only these.
	groups, roles []string
	// tenants are those whose users' groups and roles count; empty means
	// any tenant's.
	tenants []string
	// acrs are the authentication contexts required for the return path,
	// the path rule's step-up included.
	acrs []string
	// maxAge bounds the time since the user authenticated; zero means none.
	maxAge time.Duration
	// lifetime is the app token's lifetime.
	lifetime time.Duration
	// filter is the catalogue's session filter, and filterDigest its
	// digest, which a session must have recorded for its groups and roles
	// to be complete for this app.
	filter, filterDigest string
}

// Reasons a session does not meet an app's requirements.
const (
	unmetACRs    = "acrs"
	unmetMaxAge  = "max_age"
	unmetFilter  = "session_filter"
	unmetNothing = ""
)

// requirementsOf reads the requirements of a verified request.
func requirementsOf(r *appreq.Request) appRequirements {
	return appRequirements{
		groups: r.Groups, roles: r.Roles, tenants: r.Tenants, acrs: r.ACRs,
		maxAge: r.MaxAgeDuration(), lifetime: r.LifetimeDuration(),
		filter: r.SessionFilter, filterDigest: appreq.Digest(r.SessionFilter),
	}
}

// groupGated reports whether the app admits users by group.
func (r appRequirements) groupGated() bool { return len(r.groups) > 0 }

// unmet returns "" when the global session sc meets r at now, or the first
// reason it does not.
func (r appRequirements) unmet(sc *session.SessionClaims, now time.Time) string {
	if why := r.unmetBy(&sc.Identity, now); why != unmetNothing {
		return why
	}
	if len(r.groups)+len(r.roles) > 0 && sc.Filter != r.filterDigest {
		// The session's groups and roles were cut to another catalogue's
		// names: a group this app names may be missing. Sign in again.
		return unmetFilter
	}
	return unmetNothing
}

// unmetBy returns "" when identity id meets r's authentication contexts
// and session age at now, or the first reason it does not.
func (r appRequirements) unmetBy(id *session.Identity, now time.Time) string {
	for _, a := range r.acrs {
		if !slices.Contains(id.ACRs, a) {
			return unmetACRs
		}
	}
	if r.maxAge > 0 && now.Sub(time.Unix(id.AuthTime, 0)) > r.maxAge {
		return unmetMaxAge
	}
	return unmetNothing
}

// forApp cuts id to what the app's token may carry: the groups and roles
// its policy names, and none from a tenant whose groups and roles the
// policy does not count.
func (r appRequirements) forApp(id session.Identity) session.Identity {
	if len(r.tenants) > 0 && !slices.Contains(r.tenants, id.TenantID) {
		id.Groups, id.Roles = nil, nil
	}
	return id.ForPolicy(r.groups, r.roles)
}
