// Package demo runs the whole Postern system on one machine for a person to
// try: mesh nodes in simulated regions, connectors, the sample app and, with
// sign-in, the development identity provider and the auth functions (all
// through pkg/harness), then prints the URLs to open. It is the body of the
// meshd/demo command (task demo); the production binaries never link it.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/simnet"
)

// Config configures Run.
type Config struct {
	// Listen is the first mesh node's public address; empty means
	// 127.0.0.1:8443. Port 0 picks a free port. The other nodes listen on
	// free ports.
	Listen string
	// Regions places one mesh node per region of Matrix; empty means
	// us-east-1 and eu-west-1.
	Regions []string
	// Matrix is the simulated network's RTT matrix; nil means
	// simnet.DefaultMatrix.
	Matrix *simnet.Matrix
	// ConnectorRegion is where the connectors run; empty means the first
	// region.
	ConnectorRegion string
	// Connectors is the number of connectors; zero means 2.
	Connectors int
	// AttachK is the number of nodes each connector attaches to; zero
	// means 1 (which shows the relay between regions).
	AttachK int
	// Admin is the first node's loopback admin address; the others follow
	// on the next ports. Empty or port 0 means free ports.
	Admin string
	// SignIn pre-authenticates the sample app with the development identity
	// provider; false publishes it without sign-in.
	SignIn bool
	// Logger receives the system's JSON log; nil discards it.
	Logger *slog.Logger
	// Log, if set, is the writer under Logger: the banner waits until it
	// has been quiet for a moment (at most 5s), so the URLs do not scroll
	// away under the start-up lines. Nil means no wait.
	Log *QuietWriter
	// Out receives the banner; nil means os.Stdout.
	Out io.Writer
	// Ready, if set, is called with the banner's facts once it is printed
	// (tests use it).
	Ready func(Info)
}

// Info is what the banner tells.
type Info struct {
	// AppURLs and OpenURLs are the sample app and its passthrough copy,
	// through each mesh node.
	AppURLs, OpenURLs []string
	// Admins are the nodes' loopback admin addresses.
	Admins []string
	// CAPath is the demo CA's certificate file.
	CAPath string
	// AuthURL and IdPURL are empty without sign-in.
	AuthURL, IdPURL string
	// APIURL is the records API (bearer tokens) through the first node,
	// and TokenPath a file holding a daemon's access token for it (valid
	// 1 h); EchoURL is the TCP echo app (connectord access). All empty
	// without sign-in.
	APIURL, TokenPath, EchoURL string
	// Dir holds the demo's state, removed when Run returns.
	Dir string
}

// settleQuiet and settleMax bound the banner's wait for a quiet log.
const (
	settleQuiet = 700 * time.Millisecond
	settleMax   = 5 * time.Second
)

// Run starts the demo, prints the banner and serves until ctx ends; it
// returns nil then (Ctrl-C is the normal way to stop it).
func Run(ctx context.Context, cfg Config) error {
	cfg = withDefaults(cfg)
	top, admins, err := topology(cfg)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "postern-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var extra string
	if cfg.SignIn { // a TCP app too: an echo service, reached with connectord access
		echo, err := harness.StartTCPTarget(harness.TargetEcho)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer echo.Close()
		extra = harness.TCPApp("echo", echo.Addr())
	}
	h, err := harness.Start(ctx, harness.Options{Dir: dir, Topology: top, PublicAddr: cfg.Listen, Auth: cfg.SignIn,
		AdminAddrs: admins, Logger: cfg.Logger, ExtraCatalog: extra})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("demo: %w", err)
	}
	defer func() { _ = h.Close() }()
	if err := h.WaitConverged(ctx, 2*time.Minute); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("demo: %w", err)
	}
	info := Info{Admins: admins, CAPath: filepath.Join(dir, "ca.pem"), AuthURL: h.AuthURL(), IdPURL: h.IdPURL(), Dir: dir}
	if err := os.WriteFile(info.CAPath, h.CA.CertPEM(), 0o644); err != nil {
		return err
	}
	for i := range h.Meshes() {
		info.AppURLs = append(info.AppURLs, h.AppURL(i, "/"))
		info.OpenURLs = append(info.OpenURLs, h.OpenAppURL(i, "/"))
	}
	if cfg.SignIn {
		if err := daemonToken(ctx, h, &info); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("demo: %w", err)
		}
	}
	if cfg.Log != nil {
		cfg.Log.WaitQuiet(ctx, settleQuiet, settleMax)
	}
	var b bytes.Buffer
	writeBanner(&b, cfg, h, info)
	if _, err := cfg.Out.Write(b.Bytes()); err != nil { // one write: no log line lands inside the banner
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(info)
	}
	<-ctx.Done()
	return nil
}

func withDefaults(cfg Config) Config {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8443"
	}
	if len(cfg.Regions) == 0 {
		cfg.Regions = []string{"us-east-1", "eu-west-1"}
	}
	if cfg.Matrix == nil {
		cfg.Matrix = simnet.DefaultMatrix()
	}
	if cfg.ConnectorRegion == "" {
		cfg.ConnectorRegion = cfg.Regions[0]
	}
	if cfg.Connectors == 0 {
		cfg.Connectors = 2
	}
	if cfg.AttachK == 0 {
		cfg.AttachK = 1
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	return cfg
}

// daemonToken writes a daemon's access token for the records API (the
// client-credentials grant at the development provider) and fills in the
// banner's bearer and TCP facts.
func daemonToken(ctx context.Context, h *harness.Harness, info *Info) error {
	tok, err := h.ClientCredentials(ctx, harness.DaemonClientID, harness.DaemonSecret, harness.APIIdentifier+"/.default")
	if err != nil {
		return err
	}
	info.TokenPath = filepath.Join(info.Dir, "daemon.token")
	if err := os.WriteFile(info.TokenPath, []byte(tok), 0o600); err != nil {
		return err
	}
	info.APIURL, info.EchoURL = h.APIURL(0, "/"), h.URLFor(0, "echo.localhost")
	return nil
}

// topology builds the harness topology and the nodes' admin addresses.
func topology(cfg Config) (*harness.Topology, []string, error) {
	m := cfg.Matrix
	top := &harness.Topology{Net: simnet.NewNetwork(m, uint64(time.Now().UnixNano())), AttachK: cfg.AttachK}
	var admins []string
	for i, r := range cfg.Regions {
		if !m.Has(r) {
			return nil, nil, fmt.Errorf("demo: region %q is not in the matrix (it has %s)", r, strings.Join(m.Regions(), ", "))
		}
		top.Nodes = append(top.Nodes, harness.NodeSpec{ID: "mesh-" + r, Region: r})
		addr, err := adminAddr(cfg.Admin, i)
		if err != nil {
			return nil, nil, err
		}
		admins = append(admins, addr)
	}
	if !m.Has(cfg.ConnectorRegion) {
		return nil, nil, fmt.Errorf("demo: connector region %q is not in the matrix (it has %s)", cfg.ConnectorRegion, strings.Join(m.Regions(), ", "))
	}
	if cfg.Connectors < 0 {
		return nil, nil, fmt.Errorf("demo: connectors: got %d, want at least 1", cfg.Connectors)
	}
	for range cfg.Connectors {
		top.Connectors = append(top.Connectors, harness.ConnectorSpec{Group: "hq", Region: cfg.ConnectorRegion})
	}
	return top, admins, nil
}

// adminAddr returns node i's admin address: first's port plus i, or a
// free port when first is empty or has port 0.
func adminAddr(first string, i int) (string, error) {
	host := "127.0.0.1"
	if first != "" {
		ap, err := netip.ParseAddrPort(first)
		if err != nil || !ap.Addr().IsLoopback() {
			return "", fmt.Errorf("demo: admin address %q: want a loopback ip:port", first)
		}
		if ap.Port() != 0 {
			if int(ap.Port())+i > 65535 {
				return "", fmt.Errorf("demo: admin address %q: no port for node %d", first, i+1)
			}
			return netip.AddrPortFrom(ap.Addr(), ap.Port()+uint16(i)).String(), nil
		}
		host = ap.Addr().String()
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("demo: find a free admin port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func writeBanner(w io.Writer, cfg Config, h *harness.Harness, info Info) {
	fmt.Fprintf(w, "\nPostern demo is running (Ctrl-C to stop): %d mesh nodes in simulated regions, %d connectors in %s.\n\n",
		len(h.Meshes()), cfg.Connectors, cfg.ConnectorRegion)
	appLabel := "app (sign in, Entra mode):"
	if !cfg.SignIn {
		appLabel = "app (no sign-in):"
	}
	for i, m := range h.Meshes() {
		fmt.Fprintf(w, "  %-22s %-16s admin %s\n", m.ID, m.Region, info.Admins[i])
		fmt.Fprintf(w, "      %-27s %s\n      %-27s %s\n", appLabel, info.AppURLs[i], "passthrough copy:", info.OpenURLs[i])
	}
	fmt.Fprintln(w)
	if cfg.SignIn {
		fmt.Fprintf(w, "  sign in as alice (support group: the app, not /admin) or bob (admin: everything)\n")
	}
	fmt.Fprintf(w, "  your browser must trust the demo CA %s (or accept the warning on each host)\n", info.CAPath)
	if cfg.SignIn {
		fmt.Fprintf(w, "  auth functions:  %s\n  development IdP: %s\n", info.AuthURL, info.IdPURL)
		fmt.Fprintf(w, "  records API:     a daemon's bearer token (Entra-shaped, valid 1 h) is in %s:\n", info.TokenPath)
		fmt.Fprintf(w, "                   curl --cacert %s -H \"Authorization: Bearer $(cat %s)\" %sheaders\n", info.CAPath, info.TokenPath, info.APIURL)
		_, port, _ := net.SplitHostPort(h.Meshes()[0].Addr)
		fmt.Fprintf(w, "  TCP app (echo):  go run ./connectord access tcp --app %s --mesh-addr 127.0.0.1:%s --mesh-ca %s --listen 127.0.0.1:2222\n",
			info.EchoURL, port, info.CAPath)
		fmt.Fprintf(w, "                   (sign in as bob in the browser it opens; then: nc 127.0.0.1 2222)\n")
	}
	last := len(h.Meshes()) - 1
	fmt.Fprintf(w, "  try:             curl --cacert %s %s\n", info.CAPath, h.OpenAppURL(last, "/headers"))
	fmt.Fprintf(w, "  node status:     go run ./meshd status --admin %s\n", info.Admins[0])
	fmt.Fprintf(w, "  catalogue:       %s (live reload)\n  state:           %s\n\n", h.CatalogPath, info.Dir)
	node := h.Meshes()[last]
	if ex, err := node.Node.Explain("smartmoney"); err == nil {
		fmt.Fprintf(w, "How %s routes the app (go run ./meshd route explain --admin %s --app smartmoney):\n\n", node.ID, info.Admins[last])
		_ = meshnode.WriteExplain(w, ex)
		fmt.Fprintln(w)
	}
}
