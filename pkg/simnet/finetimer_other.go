//go:build !linux

package simnet

// newFineTimer returns a time.Timer-based fineTimer: this platform has no
// precise one here, so delays round up to the runtime's timer resolution.
func newFineTimer() fineTimer { return newCoarseTimer() }
