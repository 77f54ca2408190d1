// Command demo runs the whole Postern system on this machine (pkg/demo):
// two mesh nodes in simulated regions, connectors, the sample app, the
// development identity provider and the auth functions, over real TLS and
// real WireGuard on 127.0.0.1. "task demo" runs it; Ctrl-C stops it.
//
//	go run ./meshd/demo [--sign-in=false] [--listen 127.0.0.1:8443] ...
//
// It is a command of its own so that meshd links none of this.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/demo"
	"github.com/postern/postern/pkg/simnet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := &cli.App{Name: "demo", Summary: "run the whole Postern system on this machine (development only)", Default: "run",
		Commands: []cli.Command{{Name: "run", Summary: "start the demo and print its URLs; Ctrl-C stops it", Flags: runCmd}}}
	code := app.Exit(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func runCmd(fs *flag.FlagSet) func(context.Context) error {
	listen := fs.String("listen", "127.0.0.1:8443", "public address of the first mesh node (port 0: a free port)")
	regions := fs.String("regions", "us-east-1,eu-west-1", "one mesh node per region, comma-separated, from the simulated RTT matrix")
	matrixPath := fs.String("matrix", "", "RTT matrix file for the simulated regions (default: the built-in one, see pkg/simnet)")
	connRegion := fs.String("connector-region", "us-east-1", "region the connectors run in")
	conns := fs.Int("connectors", 2, "connectors")
	attachK := fs.Int("attach-k", 1, "mesh nodes each connector attaches to (1 shows the relay between regions; production default is 2)")
	admin := fs.String("admin", "127.0.0.1:7701", "first mesh node's loopback admin address, the others follow on the next ports (port 0: free ports)")
	signIn := fs.Bool("sign-in", true, "pre-authenticate the sample app with the development identity provider")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	return func(ctx context.Context) error {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
			return cli.Usagef("--log-level %q: %v", *logLevel, err)
		}
		log := demo.NewQuietWriter(os.Stderr, nil)
		logger := slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: lvl}))
		// Libraries that log through the default logger (the development
		// provider's OIDC library) write JSON too, warnings only unless
		// debugging.
		libLevel := max(lvl, slog.LevelWarn)
		slog.SetDefault(slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: libLevel})).With("service", "devidp"))
		matrix := simnet.DefaultMatrix()
		if *matrixPath != "" {
			var err error
			if matrix, err = simnet.LoadMatrix(*matrixPath); err != nil {
				return err
			}
		}
		return demo.Run(ctx, demo.Config{Listen: *listen, Regions: cli.List(*regions), Matrix: matrix,
			ConnectorRegion: *connRegion, Connectors: *conns, AttachK: *attachK, Admin: *admin,
			SignIn: *signIn, Logger: logger, Log: log})
	}
}
