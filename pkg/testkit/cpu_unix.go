//go:build unix

package testkit

import (
	"syscall"
	"time"
)

// ProcessCPU returns the user and system CPU time this process has used
// (every goroutine; child processes not included), or 0 if it cannot be
// read: benchmarks report it per operation (cpu-ns/op), which on a shared
// machine says more than wall time.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
