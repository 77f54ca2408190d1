package main

import (
	"context"

	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/winsvc"
)

const serviceName = "postern-meshd"

// serviceCmd is "meshd service install|uninstall|run [run flags]": install
// registers a Windows service that starts "meshd service run" with the
// given run flags; run serves under the service manager (or in the
// foreground).
func serviceCmd(ctx context.Context, args []string, app *cli.App) error {
	return winsvc.Command(ctx, args, winsvc.Config{Name: serviceName, DisplayName: "Postern mesh node",
		Description: "Postern regional mesh node: HTTPS edge and WireGuard endpoint for connectors."},
		func(ctx context.Context, args []string) error { return app.Invoke(ctx, "run", args) })
}
