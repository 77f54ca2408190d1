package benchrun

import (
	"os"
	"testing"

	"github.com/postern/postern/pkg/tracing/tracingtest"
)

// TestMain lets the test binary serve as BenchmarkTunnelTracing's OTLP
// sink process (tracingtest.NewProcessSink), then runs the tests.
func TestMain(m *testing.M) {
	tracingtest.SinkMain()
	os.Exit(m.Run())
}
