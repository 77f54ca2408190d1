package edge

import (
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

// cpuMeter measures the CPU time the whole test process spends (every
// goroutine: the handler, the backend, a tracing exporter), which on a
// shared machine says more than the wall time per operation.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{start: testkit.ProcessCPU()} }

// report adds cpu-ns/op to b's results, where the system tells the
// process's CPU time (testkit.ProcessCPU is 0 elsewhere).
func (m cpuMeter) report(b *testing.B) {
	if now := testkit.ProcessCPU(); now > 0 {
		b.ReportMetric(float64(now-m.start)/float64(b.N), "cpu-ns/op")
	}
}
