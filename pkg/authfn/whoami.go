package authfn

import (
	"html/template"
	"net/http"
)

var whoamiPage = template.Must(template.New("whoami").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Who am I · Postern</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}code{background:#f2f2f2;padding:.1rem .3rem;word-break:break-all}dt{font-weight:600;margin-top:.6rem}</style></head>
<body><h1>Who am I</h1>
{{if .}}<p>You are signed in to Postern as:</p>
<dl>
<dt>User id (write this into a policy's <code>users:</code> list, or give it to <code>meshd revoke user --user</code>)</dt><dd><code id="principal">{{.Subject}}</code></dd>
{{if .Name}}<dt>Name</dt><dd id="name">{{.Name}}</dd>{{end}}
{{if .Username}}<dt>User name</dt><dd id="username">{{.Username}}</dd>{{end}}
{{if .Email}}<dt>E-mail (informational: policies never match it)</dt><dd id="email">{{.Email}}</dd>{{end}}
{{if .Groups}}<dt>Groups that some policy of the catalogue names</dt><dd id="groups">{{range .Groups}}<code>{{.}}</code> {{end}}</dd>{{end}}
{{if .Roles}}<dt>Roles that some policy of the catalogue names</dt><dd id="roles">{{range .Roles}}<code>{{.}}</code> {{end}}</dd>{{end}}
</dl>
{{else}}<p id="anonymous">You are not signed in to Postern. Open any app that needs a sign-in, sign in, then come back to this page.</p>{{end}}
</body></html>
`))

// handleWhoami shows the signed-in user's principal id (what policies and
// revocations name), display name and the groups and roles the session
// holds, so that an operator can write a policy without computing ids by
// hand. It reads only the global session cookie; without a valid one it
// says so (200: this is not an error).
func (s *Service) handleWhoami(w http.ResponseWriter, r *http.Request) {
	sc, _ := s.session(r)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("X-Frame-Options", "DENY")
	if sc == nil {
		whoamiPage.Execute(w, nil)
		return
	}
	whoamiPage.Execute(w, &sc.Identity)
}
