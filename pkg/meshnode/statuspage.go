package meshnode

import (
	_ "embed"
	"html/template"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/errpage"
)

// The admin listener's /status answers a browser with an HTML page (see
// wantsStatusHTML) and everything else (meshd status, scripts, monitoring)
// with the JSON Status. The page is one html/template with inline CSS and
// no script or external asset: node ids, regions, app names and connector
// ids come from the catalogue and the gossip, and are escaped like any
// other untrusted text.

//go:embed statuspage.html
var statusPageHTML string

var statusPageTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"short":      shortHash,
	"ms":         msText,
	"stateClass": func(s string) string { return strings.ReplaceAll(s, " ", "-") },
}).Parse(statusPageHTML))

// statusPage is what the page template renders.
type statusPage struct {
	Status
	Generated string
	Groups    []groupView
	AppRoutes []appView
}

// groupView is one connector group with the connectors serving it.
type groupView struct {
	ID, Region string
	Connectors []connView
	Live       int
}

// connView is one connector of a group, attached to Node.
type connView struct {
	ID, Node, State, RTT string
	InFlight             int64
}

// appView is one app of the catalogue and where its requests go now.
type appView struct {
	ID, Name, Host, Kind, PreAuth, Group string
	Routes                               []string
	Candidates                           int
}

// wantsStatusHTML reports whether the client prefers HTML to JSON: a
// browser's Accept ranks text/html above application/json (or */*);
// ?format=json or ?format=html decides outright. No Accept (meshd status,
// curl's */*) means JSON.
func wantsStatusHTML(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "html":
		return true
	case "json":
		return false
	}
	html, json := 0.0, 0.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch mt {
		case "text/html":
			html = max(html, q)
		case "application/json", "*/*", "application/*":
			json = max(json, q)
		}
	}
	return html > json
}

// serveStatusHTML writes the status page.
func (n *Node) serveStatusHTML(w http.ResponseWriter) {
	page := n.statusPage(n.cfg.Now())
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	errpage.Harden(h)
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	statusPageTmpl.Execute(w, page)
}

// statusPage gathers the page's view of the node at now.
func (n *Node) statusPage(now time.Time) statusPage {
	st := n.Status()
	cat := n.catalog.Current()
	p := statusPage{Status: st, Generated: now.UTC().Format(time.RFC3339)}
	byGroup := map[string]*groupView{}
	for _, g := range cat.Groups() {
		p.Groups = append(p.Groups, groupView{ID: g.ID, Region: g.Region})
	}
	for i := range p.Groups {
		byGroup[p.Groups[i].ID] = &p.Groups[i]
	}
	addConn := func(group string, c connView, live bool) {
		g, ok := byGroup[group]
		if !ok {
			return // a group the catalogue no longer has
		}
		g.Connectors = append(g.Connectors, c)
		if live {
			g.Live++
		}
	}
	routes := map[string]RouteStatus{}
	if st.Mesh != nil {
		for _, a := range st.Mesh.Attachments {
			addConn(a.Group, connView{ID: a.Connector, Node: a.Node, State: state(a.Alive, a.Draining), RTT: msText(a.RTTMs),
				InFlight: int64(a.InFlight)}, a.Alive && !a.Draining)
		}
		for _, r := range st.Mesh.Routes {
			routes[r.Group] = r
		}
	} else {
		for _, c := range st.Connectors {
			addConn(c.Group, connView{ID: c.ID, Node: st.Node, State: state(c.Alive, c.Draining), RTT: msText(c.RTTMs),
				InFlight: c.Outstanding}, c.Alive && !c.Draining)
		}
	}
	for _, g := range p.Groups {
		slices.SortFunc(g.Connectors, func(a, b connView) int { return strings.Compare(a.ID+"\x00"+a.Node, b.ID+"\x00"+b.Node) })
	}
	for _, a := range cat.Apps() {
		p.AppRoutes = append(p.AppRoutes, n.appView(a, st, routes, byGroup))
	}
	return p
}

// appView describes app a and its chosen routes: in a cluster the route
// decision of its group; on a lone node the live connectors attached here.
func (n *Node) appView(a *catalog.App, st Status, routes map[string]RouteStatus, groups map[string]*groupView) appView {
	v := appView{ID: a.ID, Name: a.DisplayName, Host: a.Host, Kind: string(a.Kind), PreAuth: string(a.PreAuth), Group: a.ConnectorGroup}
	if v.Kind == "" {
		v.Kind = "http"
	}
	if st.Mesh != nil {
		r := routes[a.ConnectorGroup]
		v.Candidates = r.Candidates
		for _, k := range r.Chosen {
			v.Routes = append(v.Routes, routeText(k))
		}
		return v
	}
	if g := groups[a.ConnectorGroup]; g != nil {
		v.Candidates = len(g.Connectors)
		for _, c := range g.Connectors {
			if c.State == "alive" {
				v.Routes = append(v.Routes, "connector "+c.ID+" (here)")
			}
		}
	}
	return v
}

// routeText reads a route key ("local/<connector>", "node/<id>").
func routeText(key string) string {
	switch {
	case strings.HasPrefix(key, "local/"):
		return "connector " + strings.TrimPrefix(key, "local/") + " (here)"
	case strings.HasPrefix(key, "node/"):
		return "relay via " + strings.TrimPrefix(key, "node/")
	}
	return key
}
