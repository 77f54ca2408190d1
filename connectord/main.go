// Command connectord is the Postern connector: it runs on an internal host,
// dials out to the mesh, and forwards the mesh's requests to internal apps.
//
//	POSTERN_ENROLL_TOKEN=... connectord enroll --mesh https://mesh.example.com
//	connectord enroll --mesh https://mesh.example.com --token-file FILE   (or - for stdin)
//	connectord run --allow '10.1.0.0/16:443,intranet.corp'
//	connectord service install|uninstall|run [run flags]   (Windows service)
//
// Enrolment, attach and the stream carrier honour HTTPS_PROXY and NO_PROXY
// (an HTTP CONNECT proxy; user:password in the proxy URL is sent as basic
// authentication).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/postern/postern/pkg/connector"
	"github.com/postern/postern/pkg/egress"
	"github.com/postern/postern/pkg/streambind"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "connectord:", err)
		os.Exit(1)
	}
}

const usage = `usage: connectord <command> [flags]

commands:
  enroll   exchange a one-time enrolment token for this connector's credential
  probe    ask the loopback health listener (URL); exit 0 when it answers 200 (a container's exec probe)
  run      attach to the mesh and serve its requests
  service  install|uninstall|run as a Windows service (run flags follow)
`

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "enroll":
		return enrollCmd(ctx, args[1:])
	case "probe":
		if len(args) != 2 {
			return fmt.Errorf("usage: connectord probe http://127.0.0.1:PORT/healthz")
		}
		return connector.Probe(ctx, args[1])
	case "run":
		return runCmd(ctx, args[1:])
	case "service":
		return serviceCmd(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func enrollCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("connectord enroll", flag.ContinueOnError)
	mesh := fs.String("mesh", "", "HTTPS URL of any mesh node (required)")
	token := fs.String("token", "", "one-time enrolment token; visible to every user in the process list, so prefer POSTERN_ENROLL_TOKEN or --token-file")
	tokenFile := fs.String("token-file", "", "read the one-time enrolment token from this file (\"-\": standard input)")
	name := fs.String("name", "", "connector name (default: host name)")
	stateDir := fs.String("state-dir", "/var/lib/postern-connector", "where the key and credential are kept")
	meshCA := fs.String("mesh-ca", "", "extra CA file (PEM) that signs the mesh's certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := connector.ReadToken(*token, *tokenFile, os.Getenv("POSTERN_ENROLL_TOKEN"), os.Stdin)
	if err != nil {
		return err
	}
	if *token != "" {
		fmt.Fprintln(os.Stderr, "connectord: warning: --token puts the token in the process list, where every user of this host can read it; use POSTERN_ENROLL_TOKEN or --token-file next time")
	}
	*token = tok
	hc, err := meshClient(*meshCA)
	if err != nil {
		return err
	}
	st, err := connector.Enroll(ctx, connector.EnrollConfig{StateDir: *stateDir, MeshURL: *mesh, Token: *token, Name: *name, HTTPClient: hc})
	if err != nil {
		return err
	}
	fmt.Printf("enrolled as %s in group %s; credential valid until %s\nstart it with: connectord run --state-dir %s\n",
		st.ConnectorID, st.Group, st.CredentialExpires.Format(time.RFC3339), *stateDir)
	return nil
}

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("connectord run", flag.ContinueOnError)
	stateDir := fs.String("state-dir", "/var/lib/postern-connector", "where enroll left the key and credential")
	meshCA := fs.String("mesh-ca", "", "extra CA file (PEM) that signs the mesh's certificate")
	backendCA := fs.String("backend-ca", "", "extra CA file (PEM) for HTTPS internal apps (added to the system roots)")
	allow := fs.String("allow", "", "comma-separated allow-list of internal destinations: host, *.domain, IP, CIDR, each optionally :port (required unless --allow-any); loopback, link-local and cloud metadata addresses are reached only when an IP or CIDR entry names them")
	allowAny := fs.Bool("allow-any", false, "without --allow, allow every destination but loopback, link-local and cloud metadata (not recommended)")
	health := fs.String("health-listen", "127.0.0.1:9101", "loopback address for /healthz and /metrics (empty: off)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	carrierFlag := fs.String("carrier", "auto", "WireGuard carrier: auto (UDP, falling back to an HTTPS stream), udp or stream")
	udpTimeout := fs.Duration("udp-timeout", 0, "auto carrier: wait this long for a WireGuard handshake over UDP before using the stream (0: 2s)")
	probeInterval := fs.Duration("probe-interval", 0, "auto carrier: while on the stream, probe UDP this often and move back when it works (0: 30s)")
	attachK := fs.Int("attach-k", 2, "attach to this many mesh nodes at once, the nearest by measured round-trip time (2 or more for high availability)")
	reevaluate := fs.Duration("reevaluate", 5*time.Minute, "measure the round-trip time to every known mesh node this often and move to one that is clearly nearer (by more than 20% and 5ms)")
	drainTimeout := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM or SIGINT, stop taking new requests and wait up to this long for those in flight before detaching and exiting")
	enrollMesh := fs.String("mesh", "", "with --enroll-token-file: the mesh node to enrol at")
	updateURL := fs.String("update-url", "", "opt in to self-update: the signed release manifest to follow, e.g. https://dl.example.com/postern/stable/connectord.json (Linux)")
	updateKey := fs.String("update-key", "", "with --update-url: the pinned Ed25519 release key(s), base64 (comma-separated during a rotation) or file:/path")
	updateEvery := fs.Duration("update-every", 6*time.Hour, "with --update-url: check this often (plus up to half of it at random)")
	updateTrial := fs.Duration("update-trial-timeout", 2*time.Minute, "with --update-url: a new version must attach within this, or the next start rolls it back")
	updateMargin := fs.Duration("update-margin", 30*time.Second, "with --update-url: restart only while the group's update slot has the drain, the trial and this left")
	enrollTokenFile := fs.String("enroll-token-file", "", "enrol first if the state directory holds no enrolment yet, with the one-time token in this file (a container's first start; the file is not read once enrolled)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	carrier, err := streambind.ParseCarrier(*carrierFlag)
	if err != nil {
		return fmt.Errorf("--carrier: %w", err)
	}
	if *udpTimeout < 0 || *probeInterval < 0 {
		return fmt.Errorf("--udp-timeout and --probe-interval: must not be negative")
	}
	if *attachK < 1 {
		return fmt.Errorf("--attach-k: must be at least 1, got %d", *attachK)
	}
	if *reevaluate <= 0 || *drainTimeout < 0 {
		return fmt.Errorf("--reevaluate must be positive and --drain-timeout must not be negative")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if *updateURL != "" {
		if *updateKey == "" {
			return fmt.Errorf("--update-url needs --update-key, the pinned release key")
		}
		if err := launch(*stateDir, logger); err != nil {
			return fmt.Errorf("self-update: %w", err)
		}
	}
	var entries []string
	if *allow != "" {
		entries = strings.Split(*allow, ",")
	}
	al, err := egress.ParseAllowList(entries)
	if err != nil {
		return err
	}
	hc, err := meshClient(*meshCA)
	if err != nil {
		return err
	}
	if *enrollTokenFile != "" {
		st, enrolled, err := connector.EnrollOnce(ctx, connector.EnrollConfig{StateDir: *stateDir, MeshURL: *enrollMesh, HTTPClient: hc},
			func() (string, error) { return connector.ReadToken("", *enrollTokenFile, "", nil) })
		if err != nil {
			return err
		}
		if enrolled {
			logger.Info("connector_enrolled", "connector_id", st.ConnectorID, "group", st.Group, "credential_expires", st.CredentialExpires)
		}
	}
	var roots *x509.CertPool
	if *backendCA != "" {
		if roots, err = loadPool(*backendCA, true); err != nil {
			return err
		}
	}
	c, err := connector.New(connector.Config{StateDir: *stateDir, HTTPClient: hc, AllowList: al, AllowAny: *allowAny, BackendRootCAs: roots,
		HealthAddr: *health, Carrier: carrier, UDPTimeout: *udpTimeout, ProbeInterval: *probeInterval, Logger: logger,
		Attach: *attachK, Reevaluate: *reevaluate})
	if err != nil {
		return err
	}
	defer c.Close()
	if *updateURL != "" {
		uctx, stop := context.WithCancel(ctx)
		defer stop()
		errc := make(chan error, 1)
		go func() {
			errc <- autoUpdate(uctx, c, *stateDir, *updateURL, *updateKey, connector.AutoUpdateConfig{
				Every: *updateEvery, TrialTimeout: *updateTrial, DrainTimeout: *drainTimeout, Margin: *updateMargin}, logger)
		}()
		go func() {
			if err := <-errc; err != nil {
				logger.Error("self_update_failed", "error", err)
				os.Exit(1) // a trial that did not attach: the next start rolls it back
			}
		}()
	}
	return runDraining(ctx, c, *drainTimeout, logger)
}

// runDraining runs c until ctx ends (the signal), then drains it for at
// most timeout before stopping it.
func runDraining(ctx context.Context, c *connector.Connector, timeout time.Duration, logger *slog.Logger) error {
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	dctx, cancel := context.WithTimeout(runCtx, timeout)
	if err := c.Drain(dctx); err != nil {
		logger.Warn("drain_incomplete", "error", err)
	}
	cancel()
	stop()
	return <-done
}

func meshClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{Timeout: 30 * time.Second}, nil
	}
	pool, err := loadPool(caFile, false)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t, Timeout: 30 * time.Second}, nil
}

func loadPool(path string, withSystem bool) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if withSystem {
		if sys, err := x509.SystemCertPool(); err == nil {
			pool = sys
		}
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate found", path)
	}
	return pool, nil
}
