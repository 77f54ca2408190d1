package catalog

import (
	"time"

	"github.com/postern/postern/pkg/appreq"
)

// SignInRequest returns what the auth functions must know to sign a user
// in to app (a pre-authenticated app of c) and send them back to the
// request target rd: the app's id and host, the groups and roles its
// policy names and the tenants whose groups and roles it counts, the
// authentication contexts required for rd (the app's and those of the path
// rule covering rd), the session age limit, the app
// token's lifetime, and the catalogue-wide session filter and longest
// lifetime. The edge adds the browser binding and signs it (pkg/appreq);
// the auth functions keep no catalogue of their own.
func (c *Catalog) SignInRequest(app *App, rd string) appreq.Request {
	r := appreq.Request{
		AppID:          app.ID,
		Host:           app.Host,
		ReturnPath:     rd,
		MaxAge:         int64(app.MaxSessionAge / time.Second),
		Lifetime:       int64(app.SessionLifetime / time.Second),
		SessionFilter:  c.filter,
		NoticeLifetime: int64(c.longestLifetime / time.Second),
	}
	if r.Lifetime <= 0 {
		r.Lifetime = int64(DefaultSessionLifetime / time.Second)
	}
	if p := app.Policy; p != nil {
		r.Groups, r.Roles, r.ACRs, r.Tenants = p.Groups(), p.Roles(), p.ACRsFor(rd), p.Tenants()
		if p.MaxSessionAge() > 0 {
			r.MaxAge = int64(p.MaxSessionAge() / time.Second)
		}
	}
	return r
}
