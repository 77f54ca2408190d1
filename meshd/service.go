package main

import (
	"context"
	"fmt"

	"github.com/postern/postern/pkg/winsvc"
)

const serviceName = "postern-meshd"

// serviceCmd is "meshd service install|uninstall|run [run flags]": install
// registers a Windows service that starts "meshd service run" with the
// given run flags; run serves under the service manager (or in the
// foreground).
func serviceCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("service: want install, uninstall or run (then the flags of \"meshd run\")")
	}
	switch args[0] {
	case "install":
		return winsvc.Install(winsvc.Config{Name: serviceName, DisplayName: "Postern mesh node",
			Description: "Postern regional mesh node: HTTPS edge and WireGuard endpoint for connectors.",
			Args:        append([]string{"service", "run"}, args[1:]...)})
	case "uninstall":
		return winsvc.Uninstall(serviceName)
	case "run":
		return winsvc.Run(ctx, serviceName, func(ctx context.Context) error { return runCmd(ctx, args[1:]) })
	}
	return fmt.Errorf("service: unknown subcommand %q (want install, uninstall or run)", args[0])
}
