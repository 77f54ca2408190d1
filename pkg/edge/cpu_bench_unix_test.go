//go:build unix

package edge

import (
	"syscall"
	"testing"
	"time"
)

// cpuMeter measures the CPU time the whole test process spends (every
// goroutine: the handler, the backend, a tracing exporter), which on a
// shared machine says more than the wall time per operation.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{start: processCPU()} }

// report adds cpu-ns/op to b's results.
func (m cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
