//go:build !unix

package benchrun

import (
	"time"

	"github.com/postern/postern/pkg/testkit"
)

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration { return testkit.ProcessCPU() }

// peakRSS returns 0: the peak resident set size is not read on this system.
func peakRSS() int64 { return 0 }
