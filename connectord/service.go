package main

import (
	"context"
	"fmt"

	"github.com/postern/postern/pkg/winsvc"
)

const serviceName = "postern-connectord"

// serviceCmd is "connectord service install|uninstall|run [run flags]".
// install registers a Windows service that starts "connectord service run"
// with the given run flags; run serves under the service manager (or in
// the foreground).
func serviceCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("service: want install, uninstall or run (then the flags of \"connectord run\")")
	}
	switch args[0] {
	case "install":
		return winsvc.Install(winsvc.Config{Name: serviceName, DisplayName: "Postern connector",
			Description: "Dials out to the Postern mesh and forwards its requests to internal apps.",
			Args:        append([]string{"service", "run"}, args[1:]...)})
	case "uninstall":
		return winsvc.Uninstall(serviceName)
	case "run":
		return winsvc.Run(ctx, serviceName, func(ctx context.Context) error { return runCmd(ctx, args[1:]) })
	}
	return fmt.Errorf("service: unknown subcommand %q (want install, uninstall or run)", args[0])
}
