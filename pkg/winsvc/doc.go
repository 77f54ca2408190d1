// Package winsvc runs Postern's daemons (meshd and connectord) as Windows
// services, and installs and removes them through the Windows service
// control manager. It sits outside the request path: a main calls Run
// around its serve loop, so the loop gets a context that the service
// manager's Stop and Shutdown requests cancel.
//
// On Windows, Run detects whether the service manager started the process;
// if not, it runs the loop in the foreground. On other systems Run always
// runs in the foreground, and Install and Uninstall return
// [ErrUnsupported]: systemd units and packages (infra/packaging) serve
// those systems.
package winsvc

import "time"

// Config describes a service for [Install].
type Config struct {
	// Name is the service's key name (for example "postern-connectord").
	// Required.
	Name string
	// DisplayName is shown in the Services console; empty means Name.
	DisplayName string
	// Description is shown in the Services console; empty means none.
	Description string
	// Exe is the absolute path of the executable; empty means the running
	// executable (os.Executable).
	Exe string
	// Args are passed to the executable when the service manager starts
	// it, for example {"service", "run", "--state-dir", `C:\ProgramData\Postern`}.
	Args []string
	// Account is the account the service runs as, such as
	// `NT AUTHORITY\LocalService`; empty means LocalSystem.
	Account string
	// Password is Account's password; empty for built-in and virtual
	// accounts.
	Password string
	// RestartDelay is how long the service manager waits before restarting
	// the service after it fails; zero means 5s, negative disables restart.
	RestartDelay time.Duration
}

// restartDelay returns the effective delay of c (zero or less when
// restarts are disabled).
func (c Config) restartDelay() time.Duration {
	if c.RestartDelay == 0 {
		return 5 * time.Second
	}
	return c.RestartDelay
}
