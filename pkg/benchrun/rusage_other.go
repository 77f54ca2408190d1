//go:build !unix

package benchrun

import "time"

// processCPU returns 0: the process's CPU time is not read on this system.
func processCPU() time.Duration { return 0 }

// peakRSS returns 0: the peak resident set size is not read on this system.
func peakRSS() int64 { return 0 }
