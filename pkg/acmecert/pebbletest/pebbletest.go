// Package pebbletest runs Let's Encrypt's Pebble, a real ACME server for
// tests, on loopback: .ci/run installs it pinned (go install
// github.com/letsencrypt/pebble/v2/cmd/pebble); a test that needs it fails
// without it, naming the command. Pebble validates TLS-ALPN-01 challenges
// by connecting to the host's TLSPort, resolving host names with a DNS
// server of the test's (pkg/dnstest). Nothing in a binary imports it.
package pebbletest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/pkg/devcert"
)

// Options configure a Pebble.
type Options struct {
	// TLSPort is the port Pebble connects to for TLS-ALPN-01 (required).
	TLSPort int
	// DNSServer is the "ip:port" of the DNS server Pebble resolves hosts
	// with (required).
	DNSServer string
	// Validity is the certificates' lifetime; zero means 90 days.
	Validity time.Duration
}

// Pebble is a running Pebble.
type Pebble struct {
	// DirectoryURL is its ACME directory.
	DirectoryURL string
	// Client trusts Pebble's own HTTPS certificate.
	Client *http.Client

	mgmt   string
	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex // guards logs
	logs   []byte
	config string
	env    []string
}

// Binary returns the path of the pebble binary: on PATH, or in
// $(go env GOPATH)/bin.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(string(trimNL(gopath)), "bin", "pebble")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	tb.Fatalf("pebble not found: install it with \"bash .ci/run install-go-tools\" (go install github.com/letsencrypt/pebble/v2/cmd/pebble)")
	return ""
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs Pebble until the test ends.
func Start(tb testing.TB, opts Options) *Pebble {
	tb.Helper()
	bin := Binary(tb)
	dir := tb.TempDir()
	ca, err := devcert.NewCA()
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := ca.Issue("localhost", "127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	if err := ca.WriteFiles(dir, cert); err != nil {
		tb.Fatal(err)
	}
	validity := opts.Validity
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	listen, mgmt := "127.0.0.1:"+strconv.Itoa(freePort(tb)), "127.0.0.1:"+strconv.Itoa(freePort(tb))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": freePort(tb), "tlsPort": opts.TLSPort, "ocspResponderURL": "", "keyAlgorithm": "ecdsa",
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity / time.Second)}},
	}}
	b, _ := json.Marshal(cfg)
	p := &Pebble{DirectoryURL: "https://" + listen + "/dir", mgmt: mgmt, config: filepath.Join(dir, "pebble.json"),
		env: append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")}
	if err := os.WriteFile(p.config, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	p.Client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	tb.Cleanup(p.Stop)
	p.start(tb, bin, opts.DNSServer)
	return p
}

func (p *Pebble) start(tb testing.TB, bin, dnsServer string) {
	tb.Helper()
	p.cmd = exec.Command(bin, "-config", p.config, "-dnsserver", dnsServer)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = (*logWriter)(p), (*logWriter)(p)
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := p.Client.Get(p.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			tb.Fatalf("pebble exited: %s", p.Logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pebble did not answer: %v; %s", err, p.Logs())
		}
	}
}

type logWriter Pebble

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.logs = append(w.logs, b...)
	return len(b), nil
}

// Logs returns Pebble's output so far.
func (p *Pebble) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.logs)
}

// Stop stops Pebble; it is idempotent.
func (p *Pebble) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Roots returns the pool of Pebble's root certificate, which issued the
// certificates: what a client verifies them with.
func (p *Pebble) Roots(ctx context.Context) (*x509.CertPool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+p.mgmt+"/roots/0", nil)
	resp, err := p.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("pebble roots: %d %v", resp.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("pebble roots: no PEM")
	}
	return pool, nil
}
