package meshnode

import (
	"crypto/tls"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"sync"

	"github.com/postern/postern/pkg/acmecert"
	"github.com/postern/postern/pkg/catalog"
)

// newACME builds the node's ACME certificate manager: certificates for the
// live catalogue's hosts and the node's own public host, kept in
// <state>/acme. It returns the public listener's TLS configuration: the
// ACME certificates, and for any other name the file certificate of
// cfg.TLS, if any.
func newACME(cfg Config, store *catalog.Store, publicHost string) (*acmecert.Manager, *tls.Config, error) {
	ac := *cfg.ACME
	if ac.Dir == "" {
		ac.Dir = filepath.Join(cfg.StateDir, "acme")
	}
	if ac.Logger == nil {
		ac.Logger = cfg.Logger
	}
	if ac.Hosts == nil {
		ac.Hosts = catalogHosts(store, publicHost)
	}
	m, err := acmecert.New(ac)
	if err != nil {
		return nil, nil, err
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1", acmecert.ALPNProto}}
	var fallback *tls.Config
	if cfg.TLS != nil {
		fallback = cfg.TLS
		t = cfg.TLS.Clone()
		t.Certificates = nil // and so NameToCertificate is never consulted
		if !slices.Contains(t.NextProtos, acmecert.ALPNProto) {
			t.NextProtos = append(t.NextProtos, acmecert.ALPNProto)
		}
	}
	t.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := m.GetCertificate(hello)
		if err != nil && fallback != nil && !slices.Contains(hello.SupportedProtos, acmecert.ALPNProto) {
			if fc, ferr := fallbackCert(fallback, hello); ferr == nil {
				return fc, nil
			}
		}
		return c, err
	}
	return m, t, nil
}

// fallbackCert picks cfg's file certificate for hello.
func fallbackCert(cfg *tls.Config, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cfg.GetCertificate != nil {
		return cfg.GetCertificate(hello)
	}
	for i := range cfg.Certificates {
		if hello.SupportsCertificate(&cfg.Certificates[i]) == nil {
			return &cfg.Certificates[i], nil
		}
	}
	if len(cfg.Certificates) > 0 {
		return &cfg.Certificates[0], nil
	}
	return nil, acmecert.ErrHostNotAllowed
}

// catalogHosts returns the hosts ACME may certify: the live catalogue's
// app hosts and publicHost, cached per catalogue.
func catalogHosts(store *catalog.Store, publicHost string) func() []string {
	type cached struct {
		cat   *catalog.Catalog
		hosts []string
	}
	var (
		mu   sync.Mutex // guards last
		last cached
	)
	return func() []string {
		cat := store.Current()
		mu.Lock()
		defer mu.Unlock()
		if last.cat != cat {
			hosts := []string{}
			if publicHost != "" {
				hosts = append(hosts, publicHost)
			}
			for _, a := range cat.Apps() {
				hosts = append(hosts, a.Host)
			}
			last = cached{cat: cat, hosts: hosts}
		}
		return last.hosts
	}
}

// publicHostOf returns the DNS name of a public URL, or "" for an IP or an
// unusable URL (ACME certifies names only).
func publicHostOf(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	if _, err := netip.ParseAddr(u.Hostname()); err == nil {
		return ""
	}
	return u.Hostname()
}
