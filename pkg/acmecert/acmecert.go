// Package acmecert obtains and renews the mesh node's TLS certificates by
// ACME (RFC 8555) with the TLS-ALPN-01 challenge (RFC 8737), for the
// catalogue's hosts and only those.
//
// It sits on the public listener: meshd's TLS configuration asks
// [Manager.GetCertificate] for each handshake, which answers ACME
// validation handshakes (ALPN "acme-tls/1") with the challenge certificate
// and every other with the host's certificate, obtaining it first if the
// host is allowed and none is held. [Manager.Run] renews in the background
// a certificate that has a third of its lifetime left; until a renewal
// succeeds the old certificate is served. Account key, certificates and
// their keys live in a directory of the node's state (keys 0600).
//
// golang.org/x/crypto/acme/autocert does much the same, but renews on the
// wall clock with no clock to inject and no log or metric of a failed
// renewal; this package uses the same well-kept ACME client
// (golang.org/x/crypto/acme) and owns only the scheduling and storage.
package acmecert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/postern/postern/pkg/wgkey"
)

// ALPNProto is the ALPN protocol of TLS-ALPN-01 validation: add it to the
// TLS configuration's NextProtos.
const ALPNProto = acme.ALPNProto

// Defaults for zero Config fields.
const (
	DefaultCheckInterval = time.Hour
	DefaultRetryAfter    = 10 * time.Minute
	DefaultTimeout       = 2 * time.Minute
)

// ErrHostNotAllowed means a certificate was asked for a host the policy
// does not allow (not a host of the catalogue).
var ErrHostNotAllowed = errors.New("acmecert: host not allowed")

// Config configures a [Manager].
type Config struct {
	// DirectoryURL is the ACME server's directory, such as
	// https://acme-v02.api.letsencrypt.org/directory (required).
	DirectoryURL string
	// Email is the account's contact; empty means none.
	Email string
	// Dir holds the account key and the certificates (required); it is
	// created 0700.
	Dir string
	// Hosts returns the hosts that may have a certificate (the live
	// catalogue's, and the node's own public host); it is called on every
	// handshake without one and on every check, and must be cheap and safe
	// for concurrent use (required).
	Hosts func() []string
	// HTTPClient talks to the ACME server; nil means a client with a
	// 30-second timeout.
	HTTPClient *http.Client
	// CheckInterval is how often Run obtains missing and renews due
	// certificates; zero means DefaultCheckInterval.
	CheckInterval time.Duration
	// RetryAfter is how long a host whose order failed is left alone;
	// zero means DefaultRetryAfter.
	RetryAfter time.Duration
	// Timeout bounds one order; zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives acme_* lines; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager holds and renews certificates. It is safe for concurrent use.
type Manager struct {
	cfg    Config
	client *acme.Client

	regMu      sync.Mutex // serialises account registration
	registered bool

	mu         sync.Mutex // guards the following
	certs      map[string]*tls.Certificate
	challenges map[string]*tls.Certificate
	failed     map[string]time.Time // host → when its last order failed
	inflight   map[string]*order
}

// order is one host's order in flight, shared by every caller.
type order struct {
	done chan struct{}
	err  error
}

// New checks cfg, loads (or creates) the account key and loads the
// certificates held in cfg.Dir. It does no network I/O.
func New(cfg Config) (*Manager, error) {
	if cfg.DirectoryURL == "" || cfg.Dir == "" || cfg.Hosts == nil {
		return nil, errors.New("acmecert: DirectoryURL, Dir and Hosts are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("acmecert: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.Dir, "account.key"))
	if err != nil {
		return nil, fmt.Errorf("acmecert: account key: %w", err)
	}
	m := &Manager{cfg: cfg, client: &acme.Client{Key: key, DirectoryURL: cfg.DirectoryURL, HTTPClient: cfg.HTTPClient, UserAgent: "postern-meshd"},
		certs: map[string]*tls.Certificate{}, challenges: map[string]*tls.Certificate{}, failed: map[string]time.Time{}, inflight: map[string]*order{}}
	if err := m.loadCerts(); err != nil {
		return nil, err
	}
	return m, nil
}

// allowed reports whether host may have a certificate.
func (m *Manager) allowed(host string) bool {
	return host != "" && slices.Contains(m.cfg.Hosts(), host)
}

// GetCertificate is the tls.Config callback: the challenge certificate
// for a TLS-ALPN-01 validation, else the host's certificate, obtained now
// if the host is allowed and none is held.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	host := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		m.mu.Lock()
		c := m.challenges[host]
		m.mu.Unlock()
		if c == nil {
			return nil, fmt.Errorf("acmecert: no challenge in progress for %q", host)
		}
		return c, nil
	}
	if !m.allowed(host) {
		return nil, fmt.Errorf("%w: %q", ErrHostNotAllowed, host)
	}
	if c := m.cert(host); c != nil {
		return c, nil
	}
	ctx := hello.Context()
	if err := m.obtain(ctx, host); err != nil {
		return nil, err
	}
	if c := m.cert(host); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("acmecert: no certificate for %q", host)
}

// Expiries returns the not-after time of every certificate held, by host:
// those loaded from Dir at start and those obtained or renewed since.
func (m *Manager) Expiries() map[string]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]time.Time, len(m.certs))
	for host, c := range m.certs {
		out[host] = c.Leaf.NotAfter
	}
	return out
}

// Certificate returns the certificate held for host, or nil.
func (m *Manager) Certificate(host string) *tls.Certificate { return m.cert(host) }

func (m *Manager) cert(host string) *tls.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.certs[host]
}

// Run obtains missing and renews due certificates every CheckInterval
// until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.CheckInterval)
	defer t.Stop()
	for {
		m.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check does one pass: every allowed host without a certificate, or whose
// certificate has less than a third of its lifetime left, gets a new one;
// a host whose order failed is retried after RetryAfter. On failure the
// old certificate stays in use.
func (m *Manager) Check(ctx context.Context) {
	for _, host := range m.cfg.Hosts() {
		if !m.due(host) {
			continue
		}
		if err := m.obtain(ctx, host); err != nil && ctx.Err() == nil {
			c := m.cert(host)
			attrs := []any{"host", host, "error", err.Error(), "retry_in", m.cfg.RetryAfter, "renewal", c != nil}
			if c != nil {
				attrs = append(attrs, "serving_until", c.Leaf.NotAfter)
			}
			m.cfg.Logger.Warn("acme_order_failed", attrs...)
		}
	}
}

// due reports whether host needs a certificate now.
func (m *Manager) due(host string) bool {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.failed[host]; ok && now.Sub(f) < m.cfg.RetryAfter {
		return false
	}
	c := m.certs[host]
	if c == nil {
		return true
	}
	life := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)
	return c.Leaf.NotAfter.Sub(now) < life/3
}

// obtain runs an order for host, or waits for the one in flight.
func (m *Manager) obtain(ctx context.Context, host string) error {
	m.mu.Lock()
	o, ok := m.inflight[host]
	if !ok {
		o = &order{done: make(chan struct{})}
		m.inflight[host] = o
		go m.run(host, o)
	}
	m.mu.Unlock()
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is one order for host; its context is the order's own timeout, not
// a caller's, so that a handshake that gives up does not abort it.
func (m *Manager) run(host string, o *order) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	c, err := m.order(ctx, host)
	m.mu.Lock()
	delete(m.inflight, host)
	if err != nil {
		m.failed[host] = m.cfg.Now()
	} else {
		delete(m.failed, host)
		m.certs[host] = c
	}
	m.mu.Unlock()
	if err == nil {
		m.cfg.Logger.Info("acme_certificate", "host", host, "not_after", c.Leaf.NotAfter, "serial", c.Leaf.SerialNumber.String())
	}
	o.err = err
	close(o.done)
}

// order obtains a certificate for host from the ACME server and stores
// it.
func (m *Manager) order(ctx context.Context, host string) (*tls.Certificate, error) {
	if err := m.register(ctx); err != nil {
		return nil, err
	}
	o, err := m.client.AuthorizeOrder(ctx, acme.DomainIDs(host))
	if err != nil {
		return nil, fmt.Errorf("acmecert: order %s: %w", host, err)
	}
	for _, u := range o.AuthzURLs {
		if err := m.authorize(ctx, host, u); err != nil {
			return nil, err
		}
	}
	if o, err = m.client.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("acmecert: order %s: %w", host, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}}, key)
	if err != nil {
		return nil, err
	}
	der, _, err := m.client.CreateCertFromOrder(ctx, o, csr, true)
	if err != nil {
		return nil, fmt.Errorf("acmecert: finalize %s: %w", host, err)
	}
	c, err := certificate(der, key, host, m.cfg.Now())
	if err != nil {
		return nil, err
	}
	if err := m.store(host, der, key); err != nil {
		return nil, err
	}
	return c, nil
}

// register creates the account once (an existing one is reused).
func (m *Manager) register(ctx context.Context) error {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if m.registered {
		return nil
	}
	acct := &acme.Account{}
	if m.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + m.cfg.Email}
	}
	if _, err := m.client.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return fmt.Errorf("acmecert: register account: %w", err)
	}
	m.registered = true
	return nil
}

// authorize answers the TLS-ALPN-01 challenge of authorization u.
func (m *Manager) authorize(ctx context.Context, host, u string) error {
	z, err := m.client.GetAuthorization(ctx, u)
	if err != nil {
		return fmt.Errorf("acmecert: authorization %s: %w", host, err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "tls-alpn-01" {
			chal = c
		}
	}
	if chal == nil {
		return fmt.Errorf("acmecert: authorization %s: the server offers no tls-alpn-01 challenge", host)
	}
	cert, err := m.client.TLSALPN01ChallengeCert(chal.Token, host)
	if err != nil {
		return fmt.Errorf("acmecert: challenge %s: %w", host, err)
	}
	m.mu.Lock()
	m.challenges[host] = &cert
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.challenges, host)
		m.mu.Unlock()
	}()
	if _, err := m.client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("acmecert: accept challenge %s: %w", host, err)
	}
	if _, err := m.client.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("acmecert: validation of %s: %w", host, err)
	}
	return nil
}

// certificate builds a tls.Certificate from a chain and key, checking
// that the leaf is for host and valid at now.
func certificate(der [][]byte, key crypto.Signer, host string, now time.Time) (*tls.Certificate, error) {
	if len(der) == 0 {
		return nil, errors.New("acmecert: empty chain")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, fmt.Errorf("acmecert: %w", err)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return nil, fmt.Errorf("acmecert: %w", err)
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("acmecert: the certificate of %s expired at %s", host, leaf.NotAfter)
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// Storage: <Dir>/<host>.crt (the chain, PEM, 0644) and <Dir>/<host>.key
// (PKCS#8 PEM, 0600), each written atomically.

func (m *Manager) store(host string, der [][]byte, key *ecdsa.PrivateKey) error {
	var chain []byte
	for _, d := range der {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := wgkey.WriteFileAtomic(filepath.Join(m.cfg.Dir, host+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), 0o600); err != nil {
		return fmt.Errorf("acmecert: store %s: %w", host, err)
	}
	if err := wgkey.WriteFileAtomic(filepath.Join(m.cfg.Dir, host+".crt"), chain, 0o644); err != nil {
		return fmt.Errorf("acmecert: store %s: %w", host, err)
	}
	return nil
}

// loadCerts loads every stored certificate that is still valid.
func (m *Manager) loadCerts() error {
	files, err := filepath.Glob(filepath.Join(m.cfg.Dir, "*.crt"))
	if err != nil {
		return err
	}
	for _, f := range files {
		host := strings.TrimSuffix(filepath.Base(f), ".crt")
		pair, err := tls.LoadX509KeyPair(f, strings.TrimSuffix(f, ".crt")+".key")
		if err != nil {
			m.cfg.Logger.Warn("acme_stored_certificate_unusable", "host", host, "error", err.Error())
			continue
		}
		key, ok := pair.PrivateKey.(crypto.Signer)
		if !ok {
			continue
		}
		c, err := certificate(pair.Certificate, key, host, m.cfg.Now())
		if err != nil {
			m.cfg.Logger.Warn("acme_stored_certificate_unusable", "host", host, "error", err.Error())
			continue
		}
		m.certs[host] = c
	}
	return nil
}

// loadOrCreateKey reads the PKCS#8 EC key at path, or creates one (0600).
func loadOrCreateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return key, wgkey.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return s, nil
}
