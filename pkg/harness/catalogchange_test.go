package harness

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/awsapi"
	"github.com/postern/postern/pkg/awsapi/awstest"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/testkit"
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

// TestCatalogFromS3EndToEnd: the mesh nodes read the catalogue from one S3
// object (the local S3 stand-in, real wire format and signatures), as
// meshd --catalog s3://bucket/key does. An app added to the object signs
// users in with no redeploy of anything; broken uploads (not YAML, a
// schema violation, an app that clashes with another, an empty object, a
// truncated copy) are each refused with a catalog_reload_failed line that
// names the object, and the catalogue in force keeps serving both apps;
// the object fixed again (the new app removed) is followed.
func TestCatalogFromS3EndToEnd(t *testing.T) {
	const bucket, key, uri = "postern-config", "mesh/catalog.yaml", "s3://postern-config/mesh/catalog.yaml"
	s3 := awstest.New(t)
	logs := &SyncBuffer{}
	var generated []byte
	h := start(t, Options{Auth: true, Meshes: 2, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		CatalogSource: func(g []byte) (catalog.Source, error) {
			generated = slices.Clone(g)
			s3.Put(bucket, key, g)
			c, err := awsapi.New(awsapi.Config{Region: "eu-west-1", Endpoint: s3.URL, Credentials: awstest.Credentials()})
			if err != nil {
				return nil, err
			}
			return awsapi.NewS3Source(c, uri)
		}})
	if err := os.Remove(h.CatalogPath); err != nil {
		t.Fatal(err) // the nodes must not need the file
	}
	payrollAt := func(i int) string { return strings.Replace(h.AppURL(i, "/headers"), h.AppHost, "payroll.localhost", 1) }
	payroll, smartmoney := payrollAt(0), h.AppURL(0, "/headers")
	anon := h.Browser() // never signs in
	defer anon.CloseIdleConnections()
	if resp, _ := navigate(t, anon, payroll, "", ""); resp.StatusCode != 404 {
		t.Fatalf("before the catalogue change: got %d, want 404", resp.StatusCode)
	}
	app, _, _ := strings.Cut(h.authCatalogApp(), "  - id: open")
	app = strings.NewReplacer("id: smartmoney", "id: payroll", "host: "+h.AppHost, "host: payroll.localhost").Replace(app)
	withPayroll := append(slices.Clone(generated), app...)
	s3.Put(bucket, key, withPayroll)

	signsIn := func(u string) bool {
		c := h.Browser() // a fresh cookie jar: a real sign-in each time
		defer c.CloseIdleConnections()
		resp, body, err := Navigate(t.Context(), c, u, "alice", "")
		return err == nil && resp.StatusCode == 200 && strings.Contains(body, "X-Postern-User")
	}
	for i := range 2 {
		u := payrollAt(i)
		testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("node %d serving the new app from S3", i), func() bool {
			resp, _, err := Navigate(t.Context(), anon, u, "", "/authorize")
			return err == nil && resp.StatusCode == 302
		})
		if !signsIn(u) {
			t.Fatalf("node %d: sign-in to the app added in S3 failed", i)
		}
	}

	dup := strings.NewReplacer("id: payroll", "id: payroll2").Replace(app)
	for _, bad := range []struct{ name, body string }{
		{"not YAML", "apps: [\x00\n"},
		{"schema violation", string(withPayroll) + "  - nonsense\n"},
		{"host clash", string(withPayroll) + dup},
		{"empty object", ""},
		{"truncated upload", string(withPayroll[:len(withPayroll)/2])},
	} {
		before := strings.Count(logs.String(), `"msg":"catalog_reload_failed"`)
		s3.Put(bucket, key, []byte(bad.body))
		testkit.WaitFor(t, 30*time.Second, bad.name+" refused by both nodes", func() bool {
			return strings.Count(logs.String(), `"msg":"catalog_reload_failed"`) >= before+2
		})
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"catalog_reload_failed"`) && !strings.Contains(line, `"source":"`+uri+`"`) {
				t.Fatalf("%s: the refusal does not name the object: %s", bad.name, line)
			}
		}
		if !signsIn(payroll) || !signsIn(smartmoney) {
			t.Fatalf("%s: the catalogue in force stopped serving", bad.name)
		}
	}

	s3.Put(bucket, key, generated)
	testkit.WaitFor(t, 30*time.Second, "the app removed in S3 gone", func() bool {
		resp, _, err := Navigate(t.Context(), anon, payroll, "", "/authorize")
		return err == nil && resp.StatusCode == 404
	})
	if !signsIn(smartmoney) {
		t.Fatal("the remaining app stopped serving")
	}
}
