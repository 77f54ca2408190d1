package winsvc

import (
	"context"
	"fmt"
)

// Command implements "<daemon> service install|uninstall|run [run flags]"
// for a daemon's main: install registers cfg as a Windows service whose
// arguments are "service run" and the given run flags; uninstall removes it;
// run calls run with the flags under the service manager (or in the
// foreground elsewhere). cfg.Args is set by Command.
func Command(ctx context.Context, args []string, cfg Config, run func(ctx context.Context, args []string) error) error {
	if len(args) == 0 {
		return fmt.Errorf("service: want install, uninstall or run (then the run flags)")
	}
	switch args[0] {
	case "install":
		cfg.Args = append([]string{"service", "run"}, args[1:]...)
		return Install(cfg)
	case "uninstall":
		return Uninstall(cfg.Name)
	case "run":
		return Run(ctx, cfg.Name, func(ctx context.Context) error { return run(ctx, args[1:]) })
	}
	return fmt.Errorf("service: unknown subcommand %q (want install, uninstall or run)", args[0])
}
