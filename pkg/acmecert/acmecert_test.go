package acmecert_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/acmecert"
	"github.com/postern/postern/pkg/acmecert/pebbletest"
	"github.com/postern/postern/pkg/dnstest"
	"github.com/postern/postern/pkg/testkit"
)

func serve(t *testing.T, l net.Listener, m *acmecert.Manager) {
	t.Helper()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from "+r.Host) }),
		TLSConfig: &tls.Config{GetCertificate: m.GetCertificate, NextProtos: []string{"h2", "http/1.1", acmecert.ALPNProto},
			MinVersion: tls.VersionTLS12},
		ErrorLog: nil,
	}
	srv.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// get fetches https://host/ from addr, verifying with roots, and returns
// the body and the leaf's serial.
func get(t *testing.T, addr, host string, roots *x509.CertPool) (string, string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("https://" + host + "/")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.TLS.PeerCertificates[0].SerialNumber.String(), nil
}

// TestPebble obtains a certificate from a real ACME server (Pebble) by
// TLS-ALPN-01 for a catalogue host at its first handshake, serves it to a
// client that verifies it with Pebble's root, refuses a host outside the
// catalogue, renews when a third of the lifetime is left, keeps serving the
// old certificate while a renewal fails, and serves the stored certificate
// after a restart without asking the server.
func TestPebble(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, map[string][]string{"*": {"127.0.0.1"}})
	pebble := pebbletest.Start(t, pebbletest.Options{TLSPort: l.Addr().(*net.TCPAddr).Port, DNSServer: dns.Addr})
	roots, err := pebble.Roots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "acme")
	clk := testkit.NewClock(time.Now())
	logs := &testkit.SyncBuffer{}
	hosts := []string{"smartmoney.example.test", "mesh.example.test"}
	newManager := func() *acmecert.Manager {
		m, err := acmecert.New(acmecert.Config{DirectoryURL: pebble.DirectoryURL, Email: "ops@example.test", Dir: dir,
			Hosts: func() []string { return hosts }, HTTPClient: pebble.Client, RetryAfter: time.Minute,
			Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := newManager()
	serve(t, l, m)
	addr := l.Addr().String()

	body, serial1, err := get(t, addr, "smartmoney.example.test", roots)
	if err != nil || body != "hello from smartmoney.example.test" {
		t.Fatalf("first handshake: got %q, %v; pebble: %s", body, err, pebble.Logs())
	}
	if _, _, err := get(t, addr, "evil.example.test", roots); err == nil {
		t.Fatal("a host outside the catalogue got a certificate")
	}
	if m.Certificate("evil.example.test") != nil || strings.Contains(pebble.Logs(), "evil.example.test") {
		t.Fatal("an order was made for a host outside the catalogue")
	}
	for _, name := range []string{"account.key", "smartmoney.example.test.key"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", name, err, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "evil.example.test.crt")); err == nil {
		t.Error("a certificate file was written for a host outside the catalogue")
	}

	// Check obtains the other catalogue host's; nothing is due yet.
	m.Check(t.Context())
	if m.Certificate("mesh.example.test") == nil {
		t.Fatalf("Check did not obtain the second host's certificate: %s", logs)
	}
	if _, s, err := get(t, addr, "smartmoney.example.test", roots); err != nil || s != serial1 {
		t.Fatalf("before renewal: serial %s (%v), want %s", s, err, serial1)
	}
	// expiriesHeld checks that Expiries lists exactly the certificates m
	// holds now, each with its leaf's not-after (the expiry metric).
	expiriesHeld := func(m *acmecert.Manager, what string, hosts ...string) {
		t.Helper()
		got := m.Expiries()
		if len(got) != len(hosts) {
			t.Errorf("%s: Expiries lists %v, want %v", what, got, hosts)
		}
		for _, h := range hosts {
			if c := m.Certificate(h); c == nil || !got[h].Equal(c.Leaf.NotAfter) {
				t.Errorf("%s: Expiries()[%s] = %v, want the held certificate's not-after", what, h, got[h])
			}
		}
	}
	expiriesHeld(m, "before renewal", "smartmoney.example.test", "mesh.example.test")
	// 61 of 90 days later, less than a third is left: renewed.
	clk.Add(61 * 24 * time.Hour)
	m.Check(t.Context())
	_, serial2, err := get(t, addr, "smartmoney.example.test", roots)
	if err != nil || serial2 == serial1 {
		t.Fatalf("after renewal: serial %s (%v), want a new one; %s", serial2, err, logs)
	}
	if c := m.Certificate("smartmoney.example.test"); c == nil || c.Leaf.SerialNumber.String() != serial2 {
		t.Fatal("the renewed certificate is not the one held")
	}
	expiriesHeld(m, "after renewal", "smartmoney.example.test", "mesh.example.test")
	// The ACME server is gone when the next renewal is due: the renewed
	// certificate stays in use, and the failure is logged.
	pebble.Stop()
	clk.Add(61 * 24 * time.Hour)
	m.Check(t.Context())
	if !strings.Contains(logs.String(), `"msg":"acme_order_failed"`) || !strings.Contains(logs.String(), `"renewal":true`) {
		t.Errorf("the failed renewal was not logged: %s", logs)
	}
	if _, s, err := get(t, addr, "smartmoney.example.test", roots); err != nil || s != serial2 {
		t.Fatalf("while renewal fails: serial %s (%v), want the old %s", s, err, serial2)
	}
	// A restarted node serves its stored certificates at once.
	clk.Add(-122 * 24 * time.Hour)
	m2 := newManager()
	if c := m2.Certificate("smartmoney.example.test"); c == nil || c.Leaf.SerialNumber.String() != serial2 {
		t.Fatalf("after a restart: got %v, want the stored certificate %s", c, serial2)
	}
	expiriesHeld(m2, "after a restart", "smartmoney.example.test", "mesh.example.test")
}
