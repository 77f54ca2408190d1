package main

import (
	"context"

	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/winsvc"
)

const serviceName = "postern-connectord"

// serviceCmd is "connectord service install|uninstall|run [run flags]".
// install registers a Windows service that starts "connectord service run"
// with the given run flags; run serves under the service manager (or in
// the foreground).
func serviceCmd(ctx context.Context, args []string, app *cli.App) error {
	return winsvc.Command(ctx, args, winsvc.Config{Name: serviceName, DisplayName: "Postern connector",
		Description: "Dials out to the Postern mesh and forwards its requests to internal apps."},
		func(ctx context.Context, args []string) error { return app.Invoke(ctx, "run", args) })
}
