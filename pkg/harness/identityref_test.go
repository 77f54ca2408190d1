package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/testkit"
)

// identityCount returns the connector's count of identity blocks by
// result (held, expanded, unknown, refused).
func identityCount(tb testing.TB, reg *prometheus.Registry, result string) float64 {
	tb.Helper()
	return testkit.MetricValue(tb, reg, "postern_connector_identity_blocks_total", "result", result)
}

// TestIdentityByReferenceEndToEnd: through a real mesh node, WireGuard
// tunnel and connector, a signed-in user's and a daemon's identity reach
// the backend on every request, the same on each, while after the first
// request the tunnel carries only its digest; a connector that restarts
// (and so holds nothing) gets the block in full again, and no request
// reaches the backend without its identity.
func TestIdentityByReferenceEndToEnd(t *testing.T) {
	h := start(t, Options{Auth: true})
	ck, err := h.SignIn(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := h.ClientCredentials(t.Context(), DaemonClientID, DaemonSecret, APIIdentifier+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	callers := []struct {
		name, url string
		hdr       []string
		ptype     string
	}{
		{"cookie", h.AppURL(0, "/headers"), []string{"Cookie", ck.String()}, "user"},
		{"bearer", h.APIURL(0, "/headers"), []string{"Authorization", "Bearer " + tok}, "app"},
	}
	round := func(step string, n int) {
		t.Helper()
		for _, c := range callers {
			var first string
			for i := range n {
				resp, body := call(t, h, c.url, "", c.hdr...)
				if resp.StatusCode != 200 {
					t.Fatalf("%s %s request %d: status %d: %.300s", step, c.name, i, resp.StatusCode, body)
				}
				got := backendHeaders(t, body)
				for k := range got {
					if strings.HasPrefix(k, "Postern-") {
						t.Errorf("%s %s: the backend got internal header %s", step, c.name, k)
					}
				}
				if got.Get("X-Postern-Principal-Type") != c.ptype || got.Get("X-Postern-User") == "" || len(got.Values("X-Postern-Assertion")) != 1 {
					t.Fatalf("%s %s request %d: identity headers %v", step, c.name, i, got)
				}
				if c.name == "bearer" {
					checkAssertion(t, h, got.Get("X-Postern-Assertion"), c.ptype)
				}
				id := got.Get("X-Postern-User") + "|" + got.Get("X-Postern-Assertion")
				if first == "" {
					first = id
				} else if id != first {
					t.Fatalf("%s %s request %d: identity changed between requests", step, c.name, i)
				}
			}
		}
	}
	reg := func() *prometheus.Registry { return h.Connectors()[0].Registry }
	round("first", 5)
	held, expanded := identityCount(t, reg(), "held"), identityCount(t, reg(), "expanded")
	if held < 2 || expanded < 8 {
		t.Fatalf("blocks held %v, expanded %v: want the first request of each caller in full and the other 8 by reference", held, expanded)
	}
	if n := identityCount(t, reg(), "refused"); n != 0 {
		t.Fatalf("%v blocks refused", n)
	}

	h.KillConnector(0)
	if err := h.RestartConnector(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(t.Context(), 60*time.Second, func() bool {
		resp, err := h.MeshClient(0).Get(h.OpenAppURL(0, "/hello"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}); err != nil {
		t.Fatal("not serving 60 s after the connector restarted")
	}
	round("after a restart", 3)
	if held := identityCount(t, reg(), "held"); held < 2 {
		t.Fatalf("the restarted connector held %v blocks: want each caller's sent in full again", held)
	}
	if identityCount(t, reg(), "expanded") < 4 {
		t.Fatal("the restarted connector got no references")
	}
}
