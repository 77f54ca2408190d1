package sampleapp

import (
	"bytes"
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
	var buf bytes.Buffer
	if err := a.index.Execute(&buf, d); err != nil {
		a.logger.Error("render index page", "err", err)
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
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; font-family: ui-monospace, monospace; word-break: break-all; }
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
<p>Try <a href="/headers">/headers</a> (JSON), <a href="/sse?n=5&amp;interval=500ms">/sse</a>,
<a href="/download?bytes=1048576&amp;seed=1">/download</a> (1 MiB),
<a href="/slow?delay=2s">/slow</a>, <a href="/status/418">/status/418</a>.</p>
</body>
</html>
`
