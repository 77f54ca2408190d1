package benchrun

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd's process receive SIGKILL when the bench
// process ends, even by a crash or SIGKILL, so that no meshd, connectord
// or backend outlives a run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
