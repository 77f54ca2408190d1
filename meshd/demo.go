package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/simnet"
)

func demoCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshd demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8443", "public address of the first mesh node")
	regions := fs.String("regions", "us-east-1,eu-west-1", "one mesh node per region, comma-separated, from the simulated RTT matrix")
	matrixPath := fs.String("matrix", "", "RTT matrix file for the simulated regions (default: the built-in one, see pkg/simnet)")
	connRegion := fs.String("connector-region", "us-east-1", "region the connectors run in")
	conns := fs.Int("connectors", 2, "connectors")
	attachK := fs.Int("attach-k", 1, "mesh nodes each connector attaches to (1 shows the relay between regions; production default is 2)")
	adminBase := fs.Int("admin-port", 9100, "first mesh node's loopback admin port; the others follow")
	signIn := fs.Bool("sign-in", true, "pre-authenticate the sample app with the development identity provider")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	matrix := simnet.DefaultMatrix()
	if *matrixPath != "" {
		if matrix, err = simnet.LoadMatrix(*matrixPath); err != nil {
			return err
		}
	}
	top := &harness.Topology{Net: simnet.NewNetwork(matrix, uint64(time.Now().UnixNano())), AttachK: *attachK}
	var admins []string
	for i, r := range splitList(*regions) {
		if !matrix.Has(r) {
			return fmt.Errorf("--regions: %q is not in the matrix (it has %s)", r, strings.Join(matrix.Regions(), ", "))
		}
		top.Nodes = append(top.Nodes, harness.NodeSpec{ID: "mesh-" + r, Region: r})
		admins = append(admins, fmt.Sprintf("127.0.0.1:%d", *adminBase+i))
	}
	if !matrix.Has(*connRegion) {
		return fmt.Errorf("--connector-region: %q is not in the matrix", *connRegion)
	}
	for range *conns {
		top.Connectors = append(top.Connectors, harness.ConnectorSpec{Group: "hq", Region: *connRegion})
	}
	dir, err := os.MkdirTemp("", "postern-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var extra string
	if *signIn { // a TCP app too: an echo service, reached with connectord access
		echo, err := harness.StartTCPTarget(harness.TargetEcho)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer echo.Close()
		extra = harness.TCPApp("echo", echo.Addr())
	}
	h, err := harness.Start(ctx, harness.Options{Dir: dir, Topology: top, PublicAddr: *listen, Auth: *signIn,
		AdminAddrs: admins, Logger: logger, ExtraCatalog: extra})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer h.Close()
	if err := h.WaitConverged(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	caPath := dir + "/ca.pem"
	if err := os.WriteFile(caPath, h.CA.CertPEM(), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nPostern demo is running (Ctrl-C to stop): %d mesh nodes in simulated regions, %d connectors in %s.\n\n",
		len(top.Nodes), *conns, *connRegion)
	for i, m := range h.Meshes() {
		fmt.Printf("  %-22s %-16s admin %s\n", m.ID, m.Region, admins[i])
		if *signIn {
			fmt.Printf("      app (sign in, Entra mode):  %s\n      passthrough copy:           %s\n", h.AppURL(i, "/"), h.OpenAppURL(i, "/"))
		} else {
			fmt.Printf("      app:                        %s\n", h.AppURL(i, "/"))
		}
	}
	if *signIn {
		fmt.Printf(`
  sign in as alice (support group: the app, not /admin) or bob (admin: everything);
  your browser must trust the demo CA %s (or accept the warning on each host)
  auth functions:  %s
  development IdP: %s
`, caPath, h.AuthURL(), h.IdPURL())
		if err := demoBearer(ctx, h, dir, caPath); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	curlURL := h.AppURL(len(h.Meshes())-1, "/headers")
	if *signIn {
		curlURL = h.OpenAppURL(len(h.Meshes())-1, "/headers")
	}
	fmt.Printf(`  try:             curl --cacert %s %s
  catalogue:       %s (live reload)
  state:           %s

`, caPath, curlURL, h.CatalogPath, dir)
	last := h.Meshes()[len(h.Meshes())-1]
	if ex, err := last.Node.Explain("smartmoney"); err == nil {
		fmt.Printf("How %s routes the app (meshd route explain --admin %s --app smartmoney):\n\n", last.ID, admins[len(admins)-1])
		meshnode.WriteExplain(os.Stdout, ex)
		fmt.Println()
	}
	<-ctx.Done()
	return nil
}

// demoBearer writes a daemon's access token for the records API and prints
// how to call the API with it and how to reach the TCP echo app.
func demoBearer(ctx context.Context, h *harness.Harness, dir, caPath string) error {
	tok, err := h.ClientCredentials(ctx, harness.DaemonClientID, harness.DaemonSecret, harness.APIIdentifier+"/.default")
	if err != nil {
		return err
	}
	tokPath := dir + "/daemon.token"
	if err := os.WriteFile(tokPath, []byte(tok), 0o600); err != nil {
		return err
	}
	_, port, _ := strings.Cut(h.Meshes()[0].Addr, ":")
	fmt.Printf(`  records API (bearer tokens, a daemon's Entra-shaped token valid 1 h in %s):
                   curl --cacert %s -H "Authorization: Bearer $(cat %s)" %s
  TCP app (echo):  connectord access tcp --app https://echo.localhost:%s --mesh-addr 127.0.0.1:%s --mesh-ca %s --listen 127.0.0.1:2222
                   (a browser sign-in as bob; then: nc 127.0.0.1 2222)
`, tokPath, caPath, tokPath, h.APIURL(0, "/headers"), port, port, caPath)
	return nil
}
