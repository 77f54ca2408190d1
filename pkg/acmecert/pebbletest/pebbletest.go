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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/testkit"
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
	logs   testkit.SyncBuffer
	config string
	env    []string
}

// Start runs Pebble until the test ends.
func Start(tb testing.TB, opts Options) *Pebble {
	tb.Helper()
	bin := testkit.Tool(tb, "pebble")
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
	listen, mgmt := "127.0.0.1:"+strconv.Itoa(testkit.FreePort(tb)), "127.0.0.1:"+strconv.Itoa(testkit.FreePort(tb))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": testkit.FreePort(tb), "tlsPort": opts.TLSPort, "ocspResponderURL": "", "keyAlgorithm": "ecdsa",
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
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		_ = p.cmd.Wait() // an early exit shows in answered below, with Pebble's log
		close(p.done)
	}()
	var lastErr error
	answered := func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		resp, err := p.Client.Get(p.DirectoryURL)
		if lastErr = err; err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	// A deadline for a hang, far above a start on a loaded machine.
	if err := testkit.Poll(tb.Context(), 50*time.Millisecond, 2*time.Minute, answered); err != nil {
		tb.Fatalf("pebble did not answer: %v; %s", lastErr, p.Logs())
	}
	select {
	case <-p.done:
		tb.Fatalf("pebble exited: %s", p.Logs())
	default:
	}
}

// Logs returns Pebble's output so far.
func (p *Pebble) Logs() string { return p.logs.String() }

// Stop stops Pebble; it is idempotent.
func (p *Pebble) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill() // fails only when Pebble has exited: done closes either way
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
