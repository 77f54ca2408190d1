package devidp

import (
	"html/template"
	"net/http"
	"net/url"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Development sign-in</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto}button{display:block;width:100%;margin:.4rem 0;padding:.6rem;text-align:left}</style>
</head><body>
<h1>Development identity provider</h1>
<p>Sign in to <code>{{.ClientID}}</code> (tenant <code>{{.Tenant}}</code>) as a test user.{{if .ACRs}} Requested authentication contexts: {{range .ACRs}}<code>{{.}}</code> {{end}}{{end}}</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="id" value="{{.ID}}">
{{range .Users}}<button type="submit" name="user" value="{{.Login}}" data-user="{{.Login}}">{{.Name}} &lt;{{.Username}}&gt;{{if .Roles}} · roles: {{range .Roles}}{{.}} {{end}}{{end}} · {{with len .Groups}}{{.}} {{if eq . 1}}group{{else}}groups{{end}}{{else}}no groups{{end}}{{if .ACRs}} · can satisfy: {{range .ACRs}}{{.}} {{end}}{{end}}{{if .HomeTenantID}} · guest{{end}}</button>
{{else}}<p>No users are configured for this tenant.</p>
{{end}}<button type="submit" name="deny" value="1" data-deny="true">Deny (cancel sign-in)</button>
</form>
<p id="legend"><small><b>roles</b> and <b>groups</b> go into the user's token (groups as object ids, as Entra sends them).
<b>can satisfy: c1</b> means the user can meet authentication context <code>c1</code> (for example "MFA done"): an app whose policy
requires <code>acrs: [c1]</code> lets in only users who can, and a sign-in that asks for it gets it in the token's <code>acrs</code> claim.
<b>guest</b> marks a user from another tenant.</small></p>
<p><small>For development only: no passwords, any user can be picked.</small></p>
</body></html>`))

var messagePage = template.Must(template.New("msg").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>`))

type loginData struct {
	ID, ClientID, Tenant, Action string
	ACRs                         []string
	Users                        []User
}

func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	// No form-action: Chrome applies it to the redirects after the POST,
	// which end at the relying party's own host.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
}

func (p *Provider) message(w http.ResponseWriter, status int, title, text string) {
	pageHeaders(w)
	w.WriteHeader(status)
	_ = messagePage.Execute(w, struct{ Title, Text string }{title, text})
}

// serveLogin shows the account picker (GET) and completes or denies the
// request (POST).
func (p *Provider) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		p.showLogin(w, r)
	case http.MethodPost:
		p.submitLogin(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		p.message(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

func (p *Provider) showLogin(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	a, err := p.store.request(id)
	if err != nil || a.done {
		p.message(w, http.StatusBadRequest, "Sign-in request unknown", "This sign-in request is unknown, expired or already completed. Start again from the application.")
		return
	}
	d := loginData{ID: id, ClientID: a.req.ClientID, Tenant: a.tenant, Action: "/login", ACRs: a.acrs}
	for _, u := range p.store.users {
		if u.TenantID == a.tenant {
			d.Users = append(d.Users, u)
		}
	}
	pageHeaders(w)
	_ = loginPage.Execute(w, d)
}

func (p *Provider) submitLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		p.message(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	id := r.PostForm.Get("id")
	a, err := p.store.request(id)
	t, ok := p.tenantByIssuer(a.issuer)
	if err != nil || a.done || !ok {
		p.message(w, http.StatusBadRequest, "Sign-in request unknown", "This sign-in request is unknown, expired or already completed. Start again from the application.")
		return
	}
	if r.PostForm.Get("deny") != "" {
		_ = p.store.DeleteAuthRequest(r.Context(), id)
		p.log.InfoContext(r.Context(), "devidp: sign-in denied", "client_id", a.req.ClientID)
		op.AuthRequestError(w, r, &a, oidc.ErrAccessDenied().WithDescription("the user declined to sign in"), t.op)
		return
	}
	u, ok := p.store.userByLogin(r.PostForm.Get("user"))
	if !ok || u.TenantID != a.tenant {
		p.message(w, http.StatusBadRequest, "Unknown user", "Pick one of the listed users.")
		return
	}
	if err := p.store.complete(id, u); err != nil {
		p.message(w, http.StatusBadRequest, "Sign-in request unknown", "This sign-in request was already completed.")
		return
	}
	http.Redirect(w, r, a.issuer+"/authorize/callback?id="+url.QueryEscape(id), http.StatusSeeOther)
}

// serveSignedOut is where the end-session endpoint lands without a
// registered post-logout redirect.
func (p *Provider) serveSignedOut(w http.ResponseWriter, r *http.Request) {
	text := "You have signed out of the development identity provider. You can close this window."
	if r.URL.Query().Get("unregistered") != "" {
		text += " (The requested post-logout redirect URI is not registered for this application, so you were not sent back.)"
	}
	p.message(w, http.StatusOK, "Signed out", text)
}
