// Command connectord is the Postern connector: it runs on an internal host,
// dials out to the mesh, and forwards the mesh's requests to internal apps.
//
//	POSTERN_ENROLL_TOKEN=... connectord enroll --mesh https://mesh.example.com [--mesh-ca FILE]
//	connectord enroll --mesh https://mesh.example.com --token-file FILE   (or - for stdin)
//	connectord run --allow '10.1.0.0/16:443,intranet.corp'
//	connectord service install|uninstall|run [run flags]   (Windows service)
//	connectord access tcp --app https://ssh.apps.example.com --listen 127.0.0.1:2222
//	ssh -o ProxyCommand='connectord access ssh --app https://ssh.apps.example.com' host
//	connectord version
//
// "connectord --help" lists the commands, "connectord run --help" the
// flags of one.
//
// Enrolment, attach and the stream carrier honour HTTPS_PROXY and NO_PROXY
// (an HTTP CONNECT proxy; user:password in the proxy URL is sent as basic
// authentication).
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/connector"
	"github.com/postern/postern/pkg/egress"
	"github.com/postern/postern/pkg/streambind"
	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/update"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newApp().Exit(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// defaultStateDir is where enroll and run keep the key, credential and
// mesh CA unless --state-dir says otherwise.
const defaultStateDir = "/var/lib/postern-connector"

// defaultAdmin is the loopback admin address (/healthz, /readyz, /metrics).
const defaultAdmin = "127.0.0.1:7801"

func newApp() *cli.App {
	app := &cli.App{Name: "connectord", Summary: "the Postern connector: dials out to the mesh and forwards its requests to internal apps"}
	app.Commands = []cli.Command{
		{Name: "enroll", Summary: "exchange a one-time enrolment token for this connector's credential", Flags: enrollCmd},
		{Name: "probe", Args: "URL", Summary: "ask the loopback admin listener (e.g. http://127.0.0.1:7801/healthz); exit 0 when it answers 200 (a container's exec probe)", Flags: probeCmd},
		{Name: "run", Summary: "attach to the mesh and serve its requests", Flags: runCmd, Config: true},
		cli.ConfigCheck(app, "run", nil),
		{Name: "service", Args: "install|uninstall|run [run flags]", Summary: "install, uninstall or run as a Windows service (the run flags follow)",
			Raw: func(ctx context.Context, args []string) error { return serviceCmd(ctx, args, app) }},
	}
	app.Commands = append(app.Commands, accessCommands()...)
	return app
}

func enrollCmd(fs *flag.FlagSet) func(context.Context) error {
	mesh := fs.String("mesh", "", "HTTPS URL of any mesh node (required)")
	token := fs.String("token", "", "one-time enrolment token; visible to every user in the process list, so prefer POSTERN_ENROLL_TOKEN or --token-file")
	tokenFile := fs.String("token-file", "", "read the one-time enrolment token from this file (\"-\": standard input)")
	name := fs.String("name", "", "connector name (default: host name)")
	stateDir := fs.String("state-dir", defaultStateDir, "where the key, credential and mesh CA are kept")
	meshCA := fs.String("mesh-ca", "", "extra CA file (PEM) that signs the mesh's certificate; kept in the state directory for run")
	allow := fs.String("allow", "", "the allow-list run will need (see connectord run --help): checked now and written into the printed run command")
	return func(ctx context.Context) error {
		if *mesh == "" {
			return cli.Usagef("enroll: --mesh is required")
		}
		if *allow != "" {
			if _, err := egress.ParseAllowList(strings.Split(*allow, ",")); err != nil {
				return cli.Usagef("--allow: %v", err)
			}
		}
		tok, err := connector.ReadToken(*token, *tokenFile, os.Getenv("POSTERN_ENROLL_TOKEN"), os.Stdin)
		if err != nil {
			return err
		}
		if *token != "" {
			fmt.Fprintln(os.Stderr, "connectord: warning: --token puts the token in the process list, where every user of this host can read it; use POSTERN_ENROLL_TOKEN or --token-file next time")
		}
		var caPEM []byte
		if *meshCA != "" {
			if caPEM, err = os.ReadFile(*meshCA); err != nil {
				return fmt.Errorf("--mesh-ca: %w", err)
			}
		}
		hc, err := meshClient(caPEM, *meshCA)
		if err != nil {
			return err
		}
		st, err := connector.Enroll(ctx, connector.EnrollConfig{StateDir: *stateDir, MeshURL: *mesh, Token: tok, Name: *name, HTTPClient: hc})
		if err != nil {
			return err
		}
		if caPEM != nil {
			if err := connector.SaveMeshCA(*stateDir, caPEM); err != nil {
				return err
			}
		}
		runLine := "connectord run"
		if *stateDir != defaultStateDir {
			runLine += " --state-dir " + shellQuote(*stateDir)
		}
		if *allow != "" {
			runLine += " --allow " + shellQuote(*allow)
		} else {
			runLine += " --allow DESTINATIONS   (the internal destinations it may reach, e.g. 10.1.0.0/16:443,intranet.corp)"
		}
		fmt.Printf("enrolled as %s in group %s; credential valid until %s\nstart it with: %s\n",
			st.ConnectorID, st.Group, st.CredentialExpires.Format(time.RFC3339), runLine)
		if caPEM != nil {
			fmt.Printf("(the mesh CA from --mesh-ca is kept in %s; run trusts it)\n", filepath.Join(*stateDir, connector.MeshCAFile))
		}
		return nil
	}
}

func runCmd(fs *flag.FlagSet) func(context.Context) error {
	stateDir := fs.String("state-dir", defaultStateDir, "where enroll left the key, credential and mesh CA")
	meshCA := fs.String("mesh-ca", "", "extra CA file (PEM) that signs the mesh's certificate (default: the one enroll kept, if any)")
	backendCA := fs.String("backend-ca", "", "extra CA file (PEM) for HTTPS internal apps (added to the system roots)")
	allow := fs.String("allow", "", "comma-separated allow-list of internal destinations: host, *.domain, IP, CIDR, each optionally :port (required unless --allow-any); loopback, link-local and cloud metadata addresses are reached only when an IP or CIDR entry names them")
	allowAny := fs.Bool("allow-any", false, "without --allow, allow every destination but loopback, link-local and cloud metadata (not recommended)")
	admin := fs.String("admin", defaultAdmin, "loopback admin address for /healthz (live), /readyz (attached, not draining) and /metrics (empty: off)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	carrierFlag := fs.String("carrier", "auto", "WireGuard carrier: auto (UDP, falling back to an HTTPS stream), udp or stream")
	udpTimeout := fs.Duration("udp-timeout", 0, "auto carrier: wait this long for a WireGuard handshake over UDP before using the stream (0: 2s)")
	probeInterval := fs.Duration("probe-interval", 0, "auto carrier: while on the stream, probe UDP this often and move back when it works (0: 30s)")
	attachK := fs.Int("attach-k", 2, "attach to this many mesh nodes at once, the nearest by measured round-trip time (2 or more for high availability)")
	reevaluate := fs.Duration("reevaluate", 5*time.Minute, "measure the round-trip time to every known mesh node this often and move to one that is clearly nearer (by more than 20% and 5ms)")
	drainTimeout := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM or SIGINT, stop taking new requests and wait up to this long for those in flight before detaching and exiting")
	enrollMesh := fs.String("mesh", "", "with --enroll-token-file or --enroll-oidc-token-file: the mesh node to enrol at")
	enrollTokenFile := fs.String("enroll-token-file", "", "enrol first if the state directory holds no enrolment yet, with the one-time token in this file (a container's first start; the file is not read once enrolled)")
	enrollOIDC := fs.String("enroll-oidc-token-file", "", "enrol by workload identity: with this projected ServiceAccount token (re-read at each use, as the kubelet rotates it), in --enroll-group, when the state directory holds no enrolment or only an expired credential; the credential is short-lived (the group's credential_ttl) and the connector leaves (revokes it) after the drain on SIGTERM")
	enrollGroup := fs.String("enroll-group", "", "with --enroll-oidc-token-file: the connector group to enrol in (its workload_enrollment must accept the token)")
	keepIdentity := fs.Bool("keep-identity", false, "with --enroll-oidc-token-file: do not revoke the credential on exit (it still expires)")
	updateURL := fs.String("update-url", "", "opt in to self-update: the signed release manifest to follow, e.g. https://dl.example.com/postern/stable/connectord.json (Linux)")
	updateKey := fs.String("update-key", "", "with --update-url: the pinned Ed25519 release key(s), base64 (comma-separated during a rotation) or file:/path")
	updateEvery := fs.Duration("update-every", 6*time.Hour, "with --update-url: check this often (plus up to half of it at random)")
	updateTrial := fs.Duration("update-trial-timeout", 2*time.Minute, "with --update-url: a new version must attach within this, or the next start rolls it back")
	updateMargin := fs.Duration("update-margin", 30*time.Second, "with --update-url: restart only while the group's update slot has the drain, the trial and this left")
	updateAlone := fs.Bool("update-alone", false, "with --update-url: update even when no other connector of the group serves (the group has no connector while this one restarts); without it the update waits for another connector of the group")
	return func(ctx context.Context) error {
		supervised := os.Getenv(update.EnvSupervised) == "1"
		if supervised {
			// Started by the self-update supervisor (a Windows service):
			// the end of standard input is its stop request.
			var cancel context.CancelFunc
			ctx, cancel = update.StopOnEOF(ctx, os.Stdin)
			defer cancel()
		}
		err := run(ctx, runFlags{stateDir: *stateDir, meshCA: *meshCA, backendCA: *backendCA, allow: *allow, allowAny: *allowAny, admin: *admin,
			logLevel: *logLevel, carrier: *carrierFlag, udpTimeout: *udpTimeout, probeInterval: *probeInterval,
			attachK: *attachK, reevaluate: *reevaluate, drainTimeout: *drainTimeout,
			enrollMesh: *enrollMesh, enrollTokenFile: *enrollTokenFile, enrollOIDC: *enrollOIDC, enrollGroup: *enrollGroup, keepIdentity: *keepIdentity, updateURL: *updateURL, updateKey: *updateKey,
			updateEvery: *updateEvery, updateTrial: *updateTrial, updateMargin: *updateMargin, updateAlone: *updateAlone})
		if supervised && errors.Is(err, update.ErrRestart) {
			os.Exit(update.RestartExitCode) // drained: the supervisor starts the staged version
		}
		return err
	}
}

func probeCmd(fs *flag.FlagSet) func(context.Context) error {
	return func(ctx context.Context) error {
		if fs.NArg() != 1 {
			return cli.Usagef("probe takes one URL, e.g. http://127.0.0.1:7801/healthz")
		}
		return connector.Probe(ctx, fs.Arg(0))
	}
}

// runFlags are the parsed flags of "connectord run".
type runFlags struct {
	stateDir, meshCA, backendCA, allow, admin, logLevel, carrier string
	udpTimeout, probeInterval, reevaluate, drainTimeout          time.Duration
	attachK                                                      int
	allowAny                                                     bool
	enrollMesh, enrollTokenFile, updateURL, updateKey            string
	enrollOIDC, enrollGroup                                      string
	updateEvery, updateTrial, updateMargin                       time.Duration
	updateAlone, keepIdentity                                    bool
	// inSupervisor: run by update.Supervise in its own process (Launch
	// already decided), so neither supervise nor launch again.
	inSupervisor bool
}

func run(ctx context.Context, f runFlags) (err error) {
	carrier, err := streambind.ParseCarrier(f.carrier)
	if err != nil {
		return cli.Usagef("--carrier: %v", err)
	}
	if f.udpTimeout < 0 || f.probeInterval < 0 {
		return cli.Usagef("--udp-timeout and --probe-interval: must not be negative")
	}
	if f.attachK < 1 {
		return cli.Usagef("--attach-k: must be at least 1, got %d", f.attachK)
	}
	if f.reevaluate <= 0 || f.drainTimeout < 0 {
		return cli.Usagef("--reevaluate must be positive and --drain-timeout must not be negative")
	}
	if err := checkEnrollFlags(f); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return cli.Usagef("--log-level: %v", err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if f.updateURL != "" && superviseUpdates && !f.inSupervisor && os.Getenv(update.EnvLaunched) == "" {
		if err := checkUpdateFlags(f); err != nil {
			return err
		}
		// No exec here: this process stays and runs the staged version
		// as a child (or itself), starting over after a restart.
		inner := f
		inner.inSupervisor = true
		return update.Supervise(ctx, update.SuperviseConfig{Dir: updateDir(f.stateDir), Env: os.Environ(), Logger: logger,
			Runner: update.ExecRunner{Run: func(ctx context.Context) error { return run(ctx, inner) },
				Args: childArgs(os.Args[1:]), StopTimeout: f.drainTimeout + 15*time.Second}})
	}
	tr, err := tracing.Start(ctx, "connectord", os.Getenv, logger)
	if err != nil {
		return err
	}
	defer tr.Close(logger)
	if f.updateURL != "" {
		if err := checkUpdateFlags(f); err != nil {
			return err
		}
		if !f.inSupervisor {
			if err := launch(f.stateDir, logger); err != nil {
				return fmt.Errorf("self-update: %w", err)
			}
		}
	}
	var entries []string
	if f.allow != "" {
		entries = strings.Split(f.allow, ",")
	}
	al, err := egress.ParseAllowList(entries)
	if err != nil {
		return err
	}
	caPEM, caName := []byte(nil), f.meshCA
	if f.meshCA != "" {
		if caPEM, err = os.ReadFile(f.meshCA); err != nil {
			return fmt.Errorf("--mesh-ca: %w", err)
		}
	} else {
		if caPEM, err = connector.LoadMeshCA(f.stateDir); err != nil {
			return err
		}
		caName = filepath.Join(f.stateDir, connector.MeshCAFile)
	}
	hc, err := meshClient(caPEM, caName)
	if err != nil {
		return err
	}
	enrollCfg := connector.EnrollConfig{StateDir: f.stateDir, MeshURL: f.enrollMesh, HTTPClient: hc, Group: f.enrollGroup}
	readToken := func() (string, error) {
		return connector.ReadToken("", cmp.Or(f.enrollTokenFile, f.enrollOIDC), "", nil)
	}
	var reenroll func(context.Context) (string, time.Time, error)
	if f.enrollOIDC != "" {
		// The ServiceAccount token file, read afresh at each use.
		reenroll = func(ctx context.Context) (string, time.Time, error) {
			cfg := enrollCfg
			var err error
			if cfg.Token, err = readToken(); err != nil {
				return "", time.Time{}, err
			}
			st, err := connector.Enroll(ctx, cfg)
			if err != nil {
				return "", time.Time{}, err
			}
			return st.Credential, st.CredentialExpires, nil
		}
	}
	if f.enrollTokenFile != "" || f.enrollOIDC != "" {
		st, enrolled, err := connector.EnrollOnce(ctx, enrollCfg, readToken)
		if err != nil {
			return err
		}
		if enrolled {
			logger.Info("connector_enrolled", "connector", st.ConnectorID, "group", st.Group, "credential_expires", st.CredentialExpires)
		}
	}
	var roots *x509.CertPool
	if f.backendCA != "" {
		if roots, err = loadPool(f.backendCA, true); err != nil {
			return err
		}
	}
	c, err := connector.New(connector.Config{StateDir: f.stateDir, HTTPClient: hc, AllowList: al, AllowAny: f.allowAny, BackendRootCAs: roots,
		HealthAddr: f.admin, Carrier: carrier, UDPTimeout: f.udpTimeout, ProbeInterval: f.probeInterval, Logger: logger,
		Attach: f.attachK, Reevaluate: f.reevaluate, Registry: cli.NewRegistry("connectord"),
		Tracer: tr.Tracer(), Reenroll: reenroll})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	if f.updateURL != "" {
		uctx, stop := context.WithCancel(ctx)
		defer stop()
		errc := make(chan error, 1)
		go func() {
			errc <- autoUpdate(uctx, c, f.stateDir, f.updateURL, f.updateKey, connector.AutoUpdateConfig{
				Every: f.updateEvery, TrialTimeout: f.updateTrial, DrainTimeout: f.drainTimeout, Margin: f.updateMargin, Alone: f.updateAlone}, logger)
		}()
		rctx, restart := context.WithCancelCause(ctx)
		defer restart(nil)
		go func() {
			err := <-errc
			switch {
			case errors.Is(err, update.ErrRestart):
				restart(err) // drained already: end the run for the supervisor
			case err != nil:
				logger.Error("self_update_failed", "error", err)
				os.Exit(1) // a trial that did not attach: the next start rolls it back
			}
		}()
		err := runDraining(rctx, c, f.drainTimeout, logger)
		if cause := context.Cause(rctx); errors.Is(cause, update.ErrRestart) {
			return cause // a restart into a new version keeps the identity
		}
		return errors.Join(err, leave(ctx, c, f, logger))
	}
	err = runDraining(ctx, c, f.drainTimeout, logger)
	return errors.Join(err, leave(ctx, c, f, logger))
}

// leaveTimeout bounds the leave after the drain; the chart's
// terminationGracePeriodSeconds leaves it room.
const leaveTimeout = 10 * time.Second

// leave ends the connector's identity after a drain that a signal (ctx)
// started, when it was enrolled by workload identity and not told to keep
// it. A failed leave is logged, not returned: the credential dies on its
// own within its short lifetime.
func leave(ctx context.Context, c *connector.Connector, f runFlags, logger *slog.Logger) error {
	if f.enrollOIDC == "" || f.keepIdentity || ctx.Err() == nil {
		return nil
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	if err := c.Leave(lctx); err != nil {
		logger.Warn("leave_failed", "error", err)
	}
	return nil
}

// checkEnrollFlags checks the enrol-at-start flags of run.
func checkEnrollFlags(f runFlags) error {
	switch {
	case f.enrollTokenFile != "" && f.enrollOIDC != "":
		return cli.Usagef("--enroll-token-file and --enroll-oidc-token-file: give one")
	case (f.enrollTokenFile != "" || f.enrollOIDC != "") && f.enrollMesh == "":
		return cli.Usagef("--enroll-token-file and --enroll-oidc-token-file need --mesh, the mesh node to enrol at")
	case f.enrollOIDC != "" && f.enrollGroup == "":
		return cli.Usagef("--enroll-oidc-token-file needs --enroll-group, the connector group to enrol in")
	case f.enrollOIDC == "" && (f.enrollGroup != "" || f.keepIdentity):
		return cli.Usagef("--enroll-group and --keep-identity are only for --enroll-oidc-token-file")
	}
	return nil
}

// checkUpdateFlags checks the self-update flags and that this build has a
// release version.
func checkUpdateFlags(f runFlags) error {
	if f.updateKey == "" {
		return cli.Usagef("--update-url needs --update-key, the pinned release key")
	}
	if v := cli.ReadBuildInfo().Version; !update.ValidVersion(v) {
		return fmt.Errorf("--update-url: this build's version %q is no release version, so no release can be told newer (build with task package or -ldflags \"-X github.com/postern/postern/pkg/cli.version=X.Y.Z\")", v)
	}
	return nil
}

// childArgs are the arguments of a staged version that the supervisor
// runs: the running ones, with "service run" (the service manager's
// command line) as plain "run".
func childArgs(args []string) []string {
	if len(args) >= 2 && args[0] == "service" && args[1] == "run" {
		return append([]string{"run"}, args[2:]...)
	}
	return slices.Clone(args)
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

// meshClient returns the HTTP client for the mesh's API: the system roots,
// plus the certificates in caPEM (read from caName) if any.
func meshClient(caPEM []byte, caName string) (*http.Client, error) {
	if caPEM == nil {
		return &http.Client{Timeout: 30 * time.Second}, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate found", caName)
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

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:,@%+=.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,@%+=", r))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
