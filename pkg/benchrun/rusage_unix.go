//go:build unix

package benchrun

import (
	"runtime"
	"syscall"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration { return testkit.ProcessCPU() }

// peakRSS returns the process's peak resident set size in bytes, or 0.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss) // bytes there
	}
	return int64(ru.Maxrss) * 1024 // KiB elsewhere
}
