package harness

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/acmecert"
	"github.com/postern/postern/pkg/acmecert/pebbletest"
	"github.com/postern/postern/pkg/dnstest"
)

// TestACMECertificatesFollowCatalogue: a mesh node with ACME serves its
// catalogue's app a certificate from a real ACME server (Pebble), which a
// client verifies with Pebble's root; a host outside the catalogue gets
// no ACME certificate (only the file one) and causes no order; an app
// added to the live catalogue gets its certificate at its first handshake,
// with no restart.
func TestACMECertificatesFollowCatalogue(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the mesh node listens here; Pebble validates TLS-ALPN-01 on it
	_, port, _ := net.SplitHostPort(addr)
	dns := dnstest.Start(t, map[string][]string{"*": {"127.0.0.1"}})
	pebble := pebbletest.Start(t, pebbletest.Options{TLSPort: l.Addr().(*net.TCPAddr).Port, DNSServer: dns.Addr})
	roots, err := pebble.Roots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, Options{PublicAddr: addr, AppHost: "smartmoney.example.test",
		ACME: &acmecert.Config{DirectoryURL: pebble.DirectoryURL, Email: "ops@example.test", HTTPClient: pebble.Client}})

	// c verifies the mesh node's certificates with Pebble's root only.
	tr := h.MeshTransport(0)
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	get := func(host string) (int, string, error) {
		resp, err := c.Get("https://" + host + ":" + port + "/hello")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	if code, body, err := get("smartmoney.example.test"); err != nil || code != 200 {
		t.Fatalf("catalogue app: got %d %q, %v; want 200 with an ACME certificate; pebble: %s", code, body, err, pebble.Logs())
	}
	if _, _, err := get("payroll.example.test"); err == nil {
		t.Fatal("a host outside the catalogue got a certificate Pebble's root verifies")
	}
	// The expiry gauge names the ACME certificate just served and the
	// file one, each with its leaf's not-after.
	served := func(host string) time.Time {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: host})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].NotAfter
	}
	metrics := metricsOf(t, h)
	for _, want := range []string{
		fmt.Sprintf(`postern_tls_certificate_expiry_timestamp_seconds{name="smartmoney.example.test",source="acme"} %s`, promFloat(served("smartmoney.example.test"))),
		fmt.Sprintf(`postern_tls_certificate_expiry_timestamp_seconds{name="localhost",source="file"} %s`, promFloat(h.cert.Leaf.NotAfter)),
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(metrics, "postern_tls_certificate"))
		}
	}
	if strings.Contains(metrics, `name="payroll.example.test"`) {
		t.Error("an expiry gauge for a host with no certificate")
	}
	if strings.Contains(pebble.Logs(), "payroll.example.test") {
		t.Fatal("a host outside the catalogue caused an ACME order")
	}
	// The file certificate still serves names ACME does not certify.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: h.CA.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("file certificate for a name outside the catalogue: %v", err)
	}
	conn.Close()

	cat, err := os.ReadFile(h.CatalogPath)
	if err != nil {
		t.Fatal(err)
	}
	app := "  - id: payroll\n    host: payroll.example.test\n    internal_url: " + h.App + "\n    connector_group: hq\n    preauth: passthrough\n"
	if err := os.WriteFile(h.CatalogPath, append(cat, app...), 0o600); err != nil {
		t.Fatal(err)
	}
	var last error
	if err := WaitFor(t.Context(), 60*time.Second, func() bool {
		code, _, err := get("payroll.example.test")
		last = err
		return err == nil && code == 200
	}); err != nil {
		t.Fatalf("the app added to the catalogue got no ACME certificate: %v (last: %v); pebble: %s", err, last, pebble.Logs())
	}
}

// promFloat formats t's Unix seconds as the text exposition writes a
// gauge's value.
func promFloat(t time.Time) string { return strconv.FormatFloat(float64(t.Unix()), 'g', -1, 64) }
