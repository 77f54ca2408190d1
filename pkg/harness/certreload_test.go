package harness

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/testkit"
)

// TestMeshdTLSCertReload runs the real meshd binary with --tls-cert and
// --tls-key and replaces the files under it, as an operator rotating a
// certificate does: the public listener serves the new certificate and
// the expiry gauge names it, without a restart; a broken key afterwards
// is logged and the new certificate stays.
func TestMeshdTLSCertReload(t *testing.T) {
	meshd, dir, key, example := meshdSetup(t)
	catPath := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(catPath, example, 0o644); err != nil {
		t.Fatal(err)
	}
	ca, err := devcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	certDir := filepath.Join(dir, "tls")
	issue := func(name string) {
		t.Helper()
		c, err := ca.Issue(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := ca.WriteFiles(certDir, c); err != nil {
			t.Fatal(err)
		}
	}
	issue("first.localhost")
	listen, admin := testkit.FreeAddr(t), testkit.FreeAddr(t)
	run := exec.Command(meshd, "run", "--id", "tls-node", "--listen", listen, "--wg-listen", "127.0.0.1:0",
		"--tls-cert", filepath.Join(certDir, "cert.pem"), "--tls-key", filepath.Join(certDir, "key.pem"),
		"--state-dir", filepath.Join(dir, "state"), "--authority-key", key, "--catalog", catPath, "--admin", admin, "--drain-timeout", "1s")
	var logs SyncBuffer
	run.Stderr = &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })

	// served is the name of the certificate a handshake gets now; "" if
	// none could be made.
	served := func() string {
		c, err := tls.Dial("tcp", listen, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			// The name does not match the certificate: read it anyway.
			c, err = tls.Dial("tcp", listen, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return ""
			}
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].DNSNames[0]
	}
	gauge := func() string {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "postern_tls_certificate_expiry_timestamp_seconds{") {
				return l
			}
		}
		return ""
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		if err := WaitFor(t.Context(), time.Minute, cond); err != nil {
			t.Fatalf("%s: served %q, gauge %q\n%s", what, served(), gauge(), logs.String())
		}
	}
	wait("start", func() bool {
		return served() == "first.localhost" && strings.Contains(gauge(), `name="first.localhost",source="file"`)
	})

	issue("second.localhost")
	wait("after the files were replaced", func() bool {
		return served() == "second.localhost" && strings.Contains(gauge(), `name="second.localhost",source="file"`) &&
			strings.Contains(logs.String(), `"msg":"tls_certificate_reloaded"`)
	})

	if err := os.WriteFile(filepath.Join(certDir, "key.pem"), []byte("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wait("a broken key", func() bool { return strings.Contains(logs.String(), `"msg":"tls_certificate_reload_failed"`) })
	if got := served(); got != "second.localhost" {
		t.Errorf("after a broken key: served %q, want second.localhost", got)
	}
	if got := gauge(); !strings.Contains(got, `name="second.localhost"`) {
		t.Errorf("after a broken key: gauge %q", got)
	}
	if strings.Contains(logs.String(), "broken") {
		t.Error("the log echoes the key file's content")
	}
}
