package meshnode

import (
	"crypto/tls"
	"testing"

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
