package meshnode

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/certfile"
	"github.com/postern/postern/pkg/devcert"
)

// TestFileCertExpiries: every file certificate is listed by its first DNS
// name (the common name for an IP-only one) with its leaf's not-after,
// whether or not the leaf was parsed already; no TLS lists nothing.
func TestFileCertExpiries(t *testing.T) {
	ca, err := devcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.Issue("mesh.example.com", "*.apps.example.com")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	noLeaf := b
	noLeaf.Leaf = nil
	got := fileCertExpiries(&tls.Config{Certificates: []tls.Certificate{a, noLeaf}})
	want := []servedCert{{"mesh.example.com", a.Leaf.NotAfter}, {"127.0.0.1", b.Leaf.NotAfter}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].name != want[i].name || !got[i].notAfter.Equal(want[i].notAfter) {
			t.Errorf("certificate %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if got := fileCertExpiries(nil); got != nil {
		t.Errorf("no TLS: got %v", got)
	}
	if got := fileCertExpiries(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{[]byte("not DER")}}}}); len(got) != 0 {
		t.Errorf("an unparsable certificate: got %v", got)
	}
}

// TestFileCertGaugeFollowsReload: with TLSFiles the expiry gauge names
// the certificate in force at each scrape: after the files are replaced
// and reloaded it shows the new one (name and not-after), and the public
// listener's TLS config serves it too; a replacement that fails to load
// leaves both on the old one.
func TestFileCertGaugeFollowsReload(t *testing.T) {
	ca, err := devcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(names ...string) tls.Certificate {
		c, err := ca.Issue(names...)
		if err != nil {
			t.Fatal(err)
		}
		if err := ca.WriteFiles(dir, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := write("mesh.example.com")
	files, err := certfile.Load(certfile.Config{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{TLSFiles: files, Authority: &authority.Authority{}, StateDir: dir, CatalogPath: "x"}
	if err := checkConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: cfg, fileCerts: fileCertExpiries(cfg.TLS)}
	check := func(step string, want tls.Certificate, name string) {
		t.Helper()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(certCollector{n})
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				got = append(got, fmt.Sprintf("%s/%s=%d", labels["source"], labels["name"], int64(m.GetGauge().GetValue())))
			}
		}
		if w := fmt.Sprintf("file/%s=%d", name, want.Leaf.NotAfter.Unix()); len(got) != 1 || got[0] != w {
			t.Errorf("%s: gauge %v, want [%s]", step, got, w)
		}
		served, err := cfg.TLS.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || !bytes.Equal(served.Certificate[0], want.Certificate[0]) {
			t.Errorf("%s: the listener serves another certificate (%v)", step, err)
		}
	}
	check("at start", first, "mesh.example.com")
	second := write("mesh2.example.com")
	if _, err := files.Reload(); err != nil {
		t.Fatal(err)
	}
	check("after a reload", second, "mesh2.example.com")
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := files.Reload(); err == nil {
		t.Fatal("a broken key reloaded")
	}
	check("after a failed reload", second, "mesh2.example.com")

	both := cfg
	both.TLS = devcert.ServerTLS(first)
	if err := checkConfig(&both); err == nil {
		t.Error("TLS and TLSFiles together: accepted")
	}
}

// certCollector collects a node's certificate expiry gauges alone (an
// unchecked collector: it describes nothing).
type certCollector struct{ n *Node }

func (certCollector) Describe(chan<- *prometheus.Desc) {}

func (c certCollector) Collect(ch chan<- prometheus.Metric) { c.n.collectCertExpiries(ch) }
