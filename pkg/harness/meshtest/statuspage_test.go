package meshtest

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/harness/browsertest"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/simnet"
)

// hostileName is an app display name that a careless page would run.
const hostileName = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`

// TestStatusPageInABrowser opens node a's admin /status in headless
// Chromium: the page shows every node with its region, state and RTT
// estimate, the connectors per group (a group without one stands out), and
// the chosen route of every app; it runs no script, loads nothing from
// elsewhere, and prints a hostile app name as text. The screenshot goes to
// the test's artifact directory (go test -artifacts keeps it). Machine
// clients (meshd status) still get JSON.
func TestStatusPageInABrowser(t *testing.T) {
	sim := simnet.NewNetwork(simnet.DefaultMatrix(), 1)
	top := &harness.Topology{Net: sim, AttachK: 1,
		Nodes: []harness.NodeSpec{{ID: "a", Region: "us-east-1"}, {ID: "b", Region: "eu-west-1"},
			{ID: "c", Region: "ap-southeast-1"}},
		Connectors: []harness.ConnectorSpec{{Group: "hq", Region: "us-east-1"}}}
	extra := `  - id: evil
    display_name: '` + hostileName + `'
    host: evil.localhost
    internal_url: http://127.0.0.1:9
    connector_group: hq
    preauth: passthrough
`
	h, err := harness.Start(t.Context(), harness.Options{Topology: top, Auth: true, ExtraCatalog: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	waitTunnels(t, h)
	a := h.Meshes()[h.MeshIndex("a")]
	// Every node knows a route for hq before the page is read.
	for _, m := range h.Meshes() {
		if err := harness.WaitFor(t.Context(), harness.Patience, func() bool { return routed(m.Node, "hq") }); err != nil {
			t.Fatalf("%s never chose a route for hq: %v", m.ID, err)
		}
	}
	// and a serves the assertion keys of all three (set at its next sync).
	if err := harness.WaitFor(t.Context(), harness.Patience, func() bool { return len(a.Node.Status().AssertionKeys) == 3 }); err != nil {
		t.Fatalf("a lists %+v as assertion keys, want three: %v", a.Node.Status().AssertionKeys, err)
	}
	admin := httptest.NewServer(a.Node.AdminHandler())
	t.Cleanup(admin.Close)

	// Machine clients: no Accept, */*, or JSON asked for.
	for _, accept := range []string{"", "*/*", "application/json", "text/html;q=0.5, application/json"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, admin.URL+"/status", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st meshnode.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || st.Node != "a" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("Accept %q: got %s, %v (node %q), want the JSON status", accept, resp.Header.Get("Content-Type"), err, st.Node)
		}
	}

	ctx := browsertest.New(t, chromedp.WindowSize(1280, 900))
	if err := chromedp.Do(ctx, chromedp.Navigate(admin.URL+"/status"), chromedp.WaitVisible(chromedp.CSS("#apps"))); err != nil {
		t.Fatalf("open the status page: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; less is JPEG
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(shot)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), "status.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](pageFactsJS))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s; page facts: %v", what, got)
		}
	}
	check("title names node a in us-east-1", got["node"] == "a" && got["region"] == "us-east-1")
	check("header counts the catalogue's 4 apps", strings.HasSuffix(fmtAny(got["catalog"]), ", 4 apps"))
	nodes, _ := got["nodes"].(map[string]any)
	for id, region := range map[string]string{"a": "us-east-1", "b": "eu-west-1", "c": "ap-southeast-1"} {
		n, _ := nodes[id].(map[string]any)
		check("node "+id+" listed in "+region+", alive, tunnel up", n != nil && n["region"] == region && n["state"] == "alive" && n["tunnel"] == "up")
		if id != "a" {
			rtt, _ := n["rtt"].(string)
			check("node "+id+" has an RTT estimate in ms", strings.HasSuffix(rtt, " ms"))
		}
	}
	groups, _ := got["groups"].(map[string]any)
	hq, _ := groups["hq"].(map[string]any)
	check("group hq has one live connector, attached to a", hq != nil && hq["live"] == "1" && strings.Contains(hq["text"].(string), "on a"))
	apps, _ := got["apps"].(map[string]any)
	for _, app := range []string{"smartmoney", "evil"} {
		r, _ := apps[app].(string)
		check("app "+app+" has a chosen route", strings.Contains(r, "connector ") || strings.Contains(r, "relay via "))
	}
	check("the assertion keys of a, b and c are listed", got["keys"] == "a:true,b:true,c:true")
	check("the hostile name is shown as text", got["evilName"] == hostileName)
	check("no script ran and none is in the page", got["pwned"] == false && got["scripts"] == float64(0) && got["imgs"] == float64(0))
	check("nothing loaded from elsewhere", got["external"] == float64(0))

	// Node b has no connector of its own: its page shows the relay.
	b := httptest.NewServer(h.Meshes()[h.MeshIndex("b")].Node.AdminHandler())
	t.Cleanup(b.Close)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, b.URL+"/status", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), "relay via a") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("node b's page (%s, CSP %q) lacks \"relay via a\":\n%s", resp.Header.Get("Content-Type"),
			resp.Header.Get("Content-Security-Policy"), page)
	}
}

func fmtAny(v any) string { s, _ := v.(string); return s }

// routed reports whether node n has chosen a route for group.
func routed(n *meshnode.Node, group string) bool {
	for _, r := range n.Status().Mesh.Routes {
		if r.Group == group && len(r.Chosen) > 0 {
			return true
		}
	}
	return false
}

// pageFactsJS reads what an operator looks for off the status page's DOM.
const pageFactsJS = `(() => {
  const text = (el) => el ? el.innerText.trim() : null;
  const nodes = {};
  for (const tr of document.querySelectorAll('#nodes tr.node')) {
    const td = tr.querySelectorAll('td');
    nodes[tr.dataset.node] = {region: text(td[1]), state: tr.dataset.state, rtt: text(td[3]), tunnel: text(td[4])};
  }
  const groups = {};
  for (const tr of document.querySelectorAll('#groups tr.group')) {
    groups[tr.dataset.group] = {live: tr.dataset.live, text: text(tr)};
  }
  const apps = {};
  for (const tr of document.querySelectorAll('#apps tr.app')) apps[tr.dataset.app] = text(tr.querySelector('.routes'));
  const keys = [...document.querySelectorAll('#keys tr.key')].map(tr => tr.dataset.node + ':' + tr.dataset.present).sort().join(',');
  const evil = document.querySelector('#apps tr.app[data-app="evil"] .app-name');
  return {
    catalog: text(document.getElementById('catalog')),
    node: text(document.getElementById('node-id')), region: text(document.getElementById('node-region')),
    nodes, groups, apps, keys, evilName: evil ? evil.textContent : null,
    pwned: window.pwned !== undefined, scripts: document.scripts.length, imgs: document.images.length,
    external: performance.getEntriesByType('resource').length,
  };
})()`
