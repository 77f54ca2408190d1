// Package certfile serves a TLS certificate and key read from PEM files
// (meshd's --tls-cert and --tls-key) and reloads them when the files
// change, so that an operator replaces a certificate without restarting
// the node.
//
// Reloading is by polling, as the catalogue's is (pkg/catalog): Watch
// reads both files every interval and, when their content differs from
// what is served, loads the new pair. A new pair takes effect only if it
// is whole and valid: the key matches the certificate, the certificate
// parses, and it has not expired already (unless the one served has too).
// Anything else keeps the certificate in force and is logged once per
// distinct failure, so a half-written rotation (the certificate written,
// the key not yet) is picked up at the first poll that sees both.
// Handshakes read the certificate in force through GetCertificate, so a
// reload applies to the next handshake; connections already open keep
// theirs.
package certfile

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchInterval is how often Watch reads the files when given no
// interval.
const DefaultWatchInterval = 2 * time.Second

// maxFileSize bounds each file read: a certificate chain and its key take
// a few kilobytes.
const maxFileSize = 1 << 20

// Config configures Load.
type Config struct {
	// CertFile is the PEM certificate chain, leaf first. Required.
	CertFile string
	// KeyFile is the PEM private key of the leaf. Required.
	KeyFile string
	// Logger receives tls_certificate_reloaded (Info) and
	// tls_certificate_reload_failed (Error) lines; nil discards.
	Logger *slog.Logger
	// Now is the clock a new certificate's expiry is checked against; nil
	// means time.Now.
	Now func() time.Time
}

// Files is a certificate and key loaded from files and the certificate
// in force. Its methods are safe for concurrent use.
type Files struct {
	cfg Config
	cur atomic.Pointer[loaded]

	mu          sync.Mutex // serialises Reload
	lastFailure string     // the failure last logged, "" after a success
}

// loaded is one loaded pair, with the bytes it was loaded from.
type loaded struct {
	cert    *tls.Certificate // Leaf set
	certPEM []byte
	keyPEM  []byte
}

// Load reads and checks cfg's files: an error (naming the file, never key
// material) if they are unreadable, mismatched or hold no certificate.
func Load(cfg Config) (*Files, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("certfile: the certificate and key files are both required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := &Files{cfg: cfg}
	l, err := f.read()
	if err != nil {
		return nil, err
	}
	f.cur.Store(l)
	return f, nil
}

// read reads and parses both files.
func (f *Files) read() (*loaded, error) {
	certPEM, keyPEM, err := f.readPEM()
	if err != nil {
		return nil, err
	}
	return parse(certPEM, keyPEM, f.cfg.CertFile, f.cfg.KeyFile)
}

// readPEM reads both files.
func (f *Files) readPEM() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = readFile(f.cfg.CertFile); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = readFile(f.cfg.KeyFile); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// parse builds the pair of certPEM and keyPEM (files certFile and
// keyFile, for the messages). tls.X509KeyPair's errors name no key
// material.
func parse(certPEM, keyPEM []byte, certFile, keyFile string) (*loaded, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certfile: %s and %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certfile: %s: %w", certFile, err)
		}
	}
	return &loaded{cert: &cert, certPEM: certPEM, keyPEM: keyPEM}, nil
}

func readFile(name string) ([]byte, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("certfile: %w", err)
	}
	defer func() { _ = fh.Close() }() // read only: its close loses nothing
	b, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("certfile: read %s: %w", name, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("certfile: %s is larger than %d bytes", name, maxFileSize)
	}
	return b, nil
}

// Certificate returns the certificate in force; its Leaf is set.
func (f *Files) Certificate() *tls.Certificate { return f.cur.Load().cert }

// GetCertificate is the tls.Config callback: the certificate in force,
// whatever the client asked for.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.Certificate(), nil
}

// Reload reads the files once and, if their content changed and is a
// valid pair, puts it in force. It reports whether the certificate in
// force changed; an error means the files hold something that cannot be
// served, and the certificate in force stays. It logs the outcome: a
// swap, or a failure once until the next success or a different failure.
func (f *Files) Reload() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed, err := f.reload()
	switch {
	case err != nil:
		if msg := err.Error(); msg != f.lastFailure {
			f.lastFailure = msg
			f.cfg.Logger.Error("tls_certificate_reload_failed", "source", f.cfg.CertFile, "error", err)
		}
	case changed:
		f.lastFailure = ""
		leaf := f.Certificate().Leaf
		f.cfg.Logger.Info("tls_certificate_reloaded", "source", f.cfg.CertFile, "host", Name(leaf),
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	default:
		f.lastFailure = ""
	}
	return changed, err
}

func (f *Files) reload() (bool, error) {
	cur := f.cur.Load()
	certPEM, keyPEM, err := f.readPEM()
	if err != nil {
		return false, err
	}
	if bytes.Equal(certPEM, cur.certPEM) && bytes.Equal(keyPEM, cur.keyPEM) {
		return false, nil
	}
	l, err := parse(certPEM, keyPEM, f.cfg.CertFile, f.cfg.KeyFile)
	if err != nil {
		return false, err
	}
	now := f.cfg.Now()
	if l.cert.Leaf.NotAfter.Before(now) && !cur.cert.Leaf.NotAfter.Before(now) {
		return false, fmt.Errorf("certfile: %s expired at %s: the certificate in force (valid until %s) stays",
			f.cfg.CertFile, l.cert.Leaf.NotAfter.UTC().Format(time.RFC3339), cur.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	f.cur.Store(l)
	return true, nil
}

// Watch calls Reload every interval (DefaultWatchInterval when zero or
// less) until ctx ends.
func (f *Files) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _ = f.Reload() // logged by Reload; the certificate in force stays
	}
}

// Name is the name a certificate is known by in metrics and logs: its
// first DNS name, else its subject's common name.
func Name(leaf *x509.Certificate) string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return leaf.Subject.CommonName
}
