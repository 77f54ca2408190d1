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
	h, err := harness.Start(ctx, harness.Options{Dir: dir, Meshes: *meshes, Connectors: *conns, PublicAddr: *listen, Logger: logger})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	defer h.Close()
	caPath := dir + "/ca.pem"
	if err := os.WriteFile(caPath, h.CA.CertPEM(), 0o644); err != nil {
		return err
	}
	fmt.Printf(`
Postern demo is running (Ctrl-C to stop).

  app (through mesh node 1):  %s
  try:                        curl --cacert %s %s
  catalogue (live reload):    %s
  state:                      %s

`, h.AppURL(0, "/"), caPath, h.AppURL(0, "/headers"), h.CatalogPath, dir)
	<-ctx.Done()
	return nil
}
