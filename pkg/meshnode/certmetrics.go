package meshnode

import (
	"crypto/tls"
	"crypto/x509"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/certfile"
)

var descCertExpiry = prometheus.NewDesc("postern_tls_certificate_expiry_timestamp_seconds",
	"Unix time after which each certificate the public listener serves is expired, by source (file: --tls-cert, the value moves when the file is replaced and reloaded; acme: obtained by ACME, the value moves when it is renewed) and name (the host it is for: the ACME host, or the file certificate's first DNS name).",
	[]string{"source", "name"}, nil)

// servedCert is the expiry of one file certificate.
type servedCert struct {
	name     string
	notAfter time.Time
}

// fileCertExpiries reads the leaf of each of cfg's certificates (fixed
// for the process's life). A certificate served by a GetCertificate
// callback is not listed here: TLSFiles' is read at each scrape
// (collectCertExpiries), any other is not known before a handshake asks
// for it.
func fileCertExpiries(cfg *tls.Config) []servedCert {
	if cfg == nil {
		return nil
	}
	var out []servedCert
	for _, c := range cfg.Certificates {
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		if leaf == nil {
			continue
		}
		out = append(out, servedCert{name: certfile.Name(leaf), notAfter: leaf.NotAfter})
	}
	return out
}

// collectCertExpiries sends the expiry gauge of every served certificate:
// the file one in force now (a reload shows at the next scrape), fixed
// ones read at start, and the ACME ones as held now (a renewal shows at
// the next scrape).
func (n *Node) collectCertExpiries(ch chan<- prometheus.Metric) {
	if n.cfg.TLSFiles != nil {
		leaf := n.cfg.TLSFiles.Certificate().Leaf
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), "file", certfile.Name(leaf))
	}
	for _, c := range n.fileCerts {
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(c.notAfter.Unix()), "file", c.name)
	}
	if n.acme == nil {
		return
	}
	for host, notAfter := range n.acme.Expiries() {
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(notAfter.Unix()), "acme", host)
	}
}
