package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/postern/postern/pkg/harness"
)

func demoCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshd demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8443", "public address of the first mesh node")
	meshes := fs.Int("meshes", 2, "mesh nodes")
	conns := fs.Int("connectors", 2, "connectors")
	signIn := fs.Bool("sign-in", true, "pre-authenticate the sample app with the development identity provider")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "postern-demo-")
	if err != nil {
		return err
	}
	h, err := harness.Start(ctx, harness.Options{Dir: dir, Meshes: *meshes, Connectors: *conns, PublicAddr: *listen, Auth: *signIn, Logger: logger})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	defer h.Close()
	caPath := dir + "/ca.pem"
	if err := os.WriteFile(caPath, h.CA.CertPEM(), 0o644); err != nil {
		return err
	}
	curlURL := h.AppURL(0, "/headers")
	if *signIn {
		curlURL = h.OpenAppURL(0, "/headers")
	}
	fmt.Printf("\nPostern demo is running (Ctrl-C to stop).\n\n")
	if *signIn {
		fmt.Printf(`  app (sign in, Entra mode):  %s
      sign in as alice (support group: the app, not /admin) or bob (admin: everything);
      your browser must trust the demo CA %s (or accept the warning on each host)
  passthrough copy:           %s
  auth functions:             %s
  development IdP:            %s
`, h.AppURL(0, "/"), caPath, h.OpenAppURL(0, "/"), h.AuthURL(), h.IdPURL())
	} else {
		fmt.Printf("  app (through mesh node 1):  %s\n", h.AppURL(0, "/"))
	}
	fmt.Printf(`  try:                        curl --cacert %s %s
  catalogue (live reload):    %s
  state:                      %s

`, caPath, curlURL, h.CatalogPath, dir)
	<-ctx.Done()
	return nil
}
