package harness

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestNewAppSignsInWithoutRedeploy: an app added to the mesh's catalogue
// signs users in as soon as the mesh nodes reload it. The auth functions
// are not touched (they hold no catalogue): the sign-in link carries the
// new app's requirements, signed by the mesh node.
func TestNewAppSignsInWithoutRedeploy(t *testing.T) {
	h := start(t, Options{Auth: true})
	payroll := strings.Replace(h.AppURL(0, "/headers"), h.AppHost, "payroll.localhost", 1)
	c := browserish(t, h)
	if resp, _ := navigate(t, c, payroll, "", ""); resp.StatusCode != 404 {
		t.Fatalf("before the catalogue change: got %d, want 404", resp.StatusCode)
	}
	cat, err := os.ReadFile(h.CatalogPath)
	if err != nil {
		t.Fatal(err)
	}
	smartmoney, _, _ := strings.Cut(h.authCatalogApp(), "  - id: open")
	app := strings.NewReplacer("id: smartmoney", "id: payroll", "host: "+h.AppHost, "host: payroll.localhost").Replace(smartmoney)
	if err := os.WriteFile(h.CatalogPath, append(cat, app...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(t.Context(), 20*time.Second, func() bool {
		resp, _, err := Navigate(t.Context(), h.Browser(), payroll, "", "/authorize")
		return err == nil && resp.StatusCode == 302
	}); err != nil {
		t.Fatalf("the mesh did not pick up the new app: %v", err)
	}
	resp, body := navigate(t, c, payroll, "alice", "")
	if resp.StatusCode != 200 || resp.Request.URL.Host != strings.TrimPrefix(strings.TrimSuffix(payroll, "/headers"), "https://") {
		t.Fatalf("sign-in to the new app: got %d at %s: %s", resp.StatusCode, resp.Request.URL, body)
	}
	if !strings.Contains(body, "X-Postern-User") {
		t.Errorf("the new app got no identity: %s", body)
	}
}
