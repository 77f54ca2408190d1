package authfn

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/postern/postern/pkg/errpage"
	"github.com/postern/postern/pkg/session"
)

// A command-line client (connectord access) signs a person in as "az
// login" does: it listens on a loopback port, keeps a random nonce, and
// opens the browser at the app's /.postern/cli-login with the port and the
// nonce's hash; the edge signs both into the app request
// (appreq.Request.CLIPort and Binding) it sends the browser here with,
// so the functions trust the port as they trust the app. The app
// token is minted as for a browser, marked CLI and bound to the hash (the
// mesh accepts it only as a bearer token with the nonce itself, which
// never left the client), and handed to http://127.0.0.1:<port>/callback —
// the redirect target is built from the port alone — after the user
// confirms on a page of the auth host: a link to a loopback port must not
// be followed for a person without their say, since another local program
// (or a web page that started the flow with its own nonce) could be
// listening there.

var cliPage = template.Must(template.New("cli").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in a command-line client · Postern</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
a.button{display:inline-block;padding:.6rem 1.2rem;background:#1f6feb;color:#fff;text-decoration:none;border-radius:.3rem}</style></head>
<body><h1>Sign in a command-line client</h1>
<p>A program on this computer asks to use <strong>{{.App}}</strong> (<code>{{.Host}}</code>) as <strong>{{.User}}</strong>, through <code>connectord access</code>.</p>
<p>Continue only if you started it yourself just now.</p>
<p><a class="button" id="continue" href="{{.Link}}">Continue</a></p>
<p><small>The client receives a token for this application only, valid until {{.Expires}}.</small></p></body></html>
`))

// cliHandOff shows the confirmation page whose link hands the app token
// tok to the client's loopback listener.
func (s *Service) cliHandOff(w http.ResponseWriter, r *http.Request, rid string, h *handoff, id session.Identity, tok string, exp int64) {
	user := id.Username
	if user == "" {
		user = id.Subject
	}
	link := "http://127.0.0.1:" + strconv.Itoa(h.cli) + "/callback?token=" + url.QueryEscape(tok)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	errpage.Harden(hd)
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	s.cfg.Logger.Info("auth_cli_handoff", "request_id", rid, "app", h.app.AppID, "user", id.Subject, "port", h.cli, "app_exp", exp)
	_ = cliPage.Execute(w, map[string]any{"App": h.app.AppID, "Host": h.app.Host, "User": user,
		"Link": template.URL(link), "Expires": time.Unix(exp, 0).UTC().Format("2006-01-02 15:04 MST")})
}
