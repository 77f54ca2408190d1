//go:build !windows

package main

import (
	"os"
	"syscall"
)

// superviseUpdates is false: the installed binary execs the staged
// version (systemd keeps watching the same process).
const superviseUpdates = false

// execBinary replaces this process with path, same arguments.
func execBinary(path string, env []string) error {
	return syscall.Exec(path, append([]string{path}, os.Args[1:]...), env)
}
