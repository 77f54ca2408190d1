// Package errpage renders the error pages a mesh node answers with at the
// edge: a status, a one-line reason and the request id under which the full
// detail is logged. Pages never carry stack traces, internal addresses or
// secrets.
package errpage

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"unicode"
)

// Page is one error answer.
type Page struct {
	Status    int
	Title     string // short, e.g. "No connector online"
	Reason    string // one line, safe to show to the user
	RequestID string
	// Links are actions offered under the reason (such as "Sign in as
	// someone else"); nil means none.
	Links []Link
}

// Link is an action on an error page: a same-site path and its text.
type Link struct {
	Text string
	// Path is an absolute path on the host the page is served for.
	Path string
}

var tmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Status}} {{.Title}} · Postern</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}code{background:#f3f3f3;padding:.1rem .3rem}.rid{color:#666;font-size:.9rem}</style></head>
<body><h1>{{.Status}} · {{.Title}}</h1><p>{{.Reason}}</p>
{{range .Links}}<p><a href="{{.Path}}">{{.Text}}</a></p>
{{end}}<p class="rid">Request id: <code>{{.RequestID}}</code> — quote it to your administrator.</p></body></html>
`))

// Harden sets the headers every page of Postern's own carries: no MIME
// sniffing, no Referer to other sites, and no framing by any page
// (X-Frame-Options for old browsers, CSP frame-ancestors for the rest).
// Backend responses never get them from here.
func Harden(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if h.Get("Content-Security-Policy") == "" {
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	}
}

// Write sends p as HTML to browsers and as plain text to everything else.
func Write(w http.ResponseWriter, r *http.Request, p Page) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	Harden(h)
	if p.RequestID != "" {
		h.Set("X-Request-Id", p.RequestID)
	}
	if wantsHTML(r) {
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
		w.WriteHeader(p.Status)
		tmpl.Execute(w, p)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(p.Status)
	fmt.Fprintf(w, "%d %s: %s (request id %s)\n", p.Status, p.Title, p.Reason, p.RequestID)
	for _, l := range p.Links {
		fmt.Fprintf(w, "%s: %s\n", l.Text, l.Path)
	}
}

// maxShown bounds a client-supplied value shown on a page, in characters.
const maxShown = 100

// Shown returns s, a value the client sent (such as the Host header), fit
// to quote on a page: control and unprintable characters replaced by
// U+FFFD and at most 100 characters, with an ellipsis when cut. The page
// template escapes it for HTML.
func Shown(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxShown {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = unicode.ReplacementChar
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// wantsHTML reports whether the client is a browser asking for a page.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}
