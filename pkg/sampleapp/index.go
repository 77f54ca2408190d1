package sampleapp

import (
	"bytes"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// headerRow is one request header line on the index page.
type headerRow struct {
	Name      string
	Value     string
	Highlight bool
}

// indexData is what the index page template renders.
type indexData struct {
	Name    string
	Info    RequestInfo
	Headers []headerRow
}

// isIdentityHeader reports whether a header is one the mesh adds or
// rewrites on the way to the app, which the index page highlights.
func isIdentityHeader(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "x-postern-") || strings.HasPrefix(n, "x-forwarded-") || n == "forwarded"
}

func (a *App) serveIndex(w http.ResponseWriter, r *http.Request) {
	d := indexData{Name: a.name, Info: a.requestInfo(r)}
	for name, values := range r.Header {
		for _, v := range values {
			d.Headers = append(d.Headers, headerRow{Name: name, Value: v, Highlight: isIdentityHeader(name)})
		}
	}
	slices.SortStableFunc(d.Headers, func(x, y headerRow) int {
		return strings.Compare(x.Name, y.Name)
	})
	a.render(w, a.index, d)
}

// render executes page with data and sends it as an uncached HTML page,
// or a 500 if the template fails.
func (a *App) render(w http.ResponseWriter, page *template.Template, data any) {
	var buf bytes.Buffer
	if err := page.Execute(&buf, data); err != nil {
		a.logger.Error("render page", "page", page.Name(), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// indexHTML is the index page. html/template escapes every value.
const indexHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Name}} (sample internal app)</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; table-layout: auto; }
td, th { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; font-family: ui-monospace, monospace; }
td:first-child, th:first-child { white-space: nowrap; width: 1%; }
td:last-child { overflow-wrap: anywhere; word-break: break-all; }
tr.identity { background: #fff3b0; font-weight: bold; }
</style>
</head>
<body>
<h1>{{.Name}} (sample internal app)</h1>
<p>This page runs on an internal host. It shows the request exactly as it arrived;
highlighted rows are headers the mesh added (X-Postern-*, X-Forwarded-*).</p>
<p id="request">{{.Info.Method}} {{.Info.Path}}{{if .Info.RawQuery}}?{{.Info.RawQuery}}{{end}} {{.Info.Proto}}
&middot; host <b>{{.Info.Host}}</b> &middot; from {{.Info.RemoteAddr}}</p>
<table id="headers">
<tr><th>Header</th><th>Value</th></tr>
{{range .Headers}}<tr{{if .Highlight}} class="identity"{{end}}><td>{{.Name}}</td><td>{{.Value}}</td></tr>
{{end}}</table>
<p>Try <a href="/admin">/admin</a> (the admin area: admins only in the demo), <a href="/headers">/headers</a> (JSON), <a href="/sse?n=5&amp;interval=500ms">/sse</a>,
<a href="/download?bytes=1048576&amp;seed=1">/download</a> (1 MiB),
<a href="/slow?delay=2s">/slow</a>, <a href="/status/418">/status/418</a>.</p>
</body>
</html>
`

// serveAdmin is the app's admin area: a page that says so, and who is in
// it (the X-Postern-Name the mesh sent), so that an allowed request to a
// path the policy guards looks allowed.
func (a *App) serveAdmin(w http.ResponseWriter, r *http.Request) {
	user := r.Header.Get("X-Postern-Name")
	if user == "" {
		user = r.Header.Get("X-Postern-User")
	}
	a.render(w, a.admin, struct{ Name, User, Path string }{a.name, user, r.URL.Path})
}

// adminHTML is the admin area page. html/template escapes every value.
const adminHTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Admin area · {{.Name}}</title>
<style>body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }</style></head>
<body>
<h1 id="admin">Admin area of {{.Name}}</h1>
<p>{{if .User}}Welcome, <b id="admin-user">{{.User}}</b>: you{{else}}You{{end}} may use the admin area ({{.Path}}).
In the demo only users with the SmartMoney.Admin role get this far; the mesh refused everyone else before the request reached this app.</p>
<p><a href="/">Back to the request headers</a></p>
</body>
</html>
`
