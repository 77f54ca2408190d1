package benchrun

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tracing/tracingtest"
)

// BenchmarkTunnelTracing is bench run's tunnel scenario (GET /hello
// through a mesh node, the WireGuard tunnel and a connector, 32 workers on
// keep-alive connections) with tracing off and on (every request sampled:
// the mesh node's and the connector's spans, exported by the real
// exporter to a sink on loopback), one system each, started before
// either is measured. It reports the process's CPU per request
// (cpu-ns/op), which the budget is about: tracing on may cost at
// most 10% more. The sink is a process of its own (the test binary
// again, tracingtest.NewProcessSink): a collector's CPU, reading the
// exports, is not Postern's, and the process's CPU leaves it out. The
// mesh node, the connector, the sample app and the load share this
// process, as in bench run's tunnel scenario. Run both halves in one
// invocation, with -count, and compare the medians (docs/tracing.md has
// the command).
func BenchmarkTunnelTracing(b *testing.B) {
	const workers = 32
	sink := tracingtest.NewProcessSink(b)
	start := func(tc *tracing.Config) *harness.Harness {
		h, err := harness.Start(context.Background(), harness.Options{Connectors: 1, Tracing: tc})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	systems := map[string]*harness.Harness{
		"off": start(nil),
		"on":  start(&tracing.Config{Endpoint: sink, Sampler: sdktrace.AlwaysSample()}),
	}
	// Both systems settle (connections, TLS sessions, pools, the first
	// exports) before either is measured: a system started a moment ago
	// still does work of its own that the first measured would pay.
	loads := map[string]*load{}
	for mode, h := range systems {
		loads[mode] = newLoad(b, h)
		defer loads[mode].close()
		loads[mode].warm(b, workers, 32)
	}
	runtime.GC()
	// The order alternates with POSTERN_BENCH_ORDER=on,off, so that a
	// series of runs can cancel what being first or second costs.
	modes := []string{"off", "on"}
	if os.Getenv("POSTERN_BENCH_ORDER") == "on,off" {
		modes = []string{"on", "off"}
	}
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			l := loads[mode]
			l.warm(b, workers, 4)
			b.SetParallelism(max(1, workers/runtime.GOMAXPROCS(0))) // 32 workers, as the tunnel scenario's c=32
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.get(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// load GETs /hello through a harness's first mesh node on keep-alive
// connections of its own.
type load struct {
	tr  *http.Transport
	c   *http.Client
	url string
}

func newLoad(b *testing.B, h *harness.Harness) *load {
	tr := h.MeshTransport(0)
	return &load{tr: tr, c: &http.Client{Transport: tr}, url: h.AppURL(0, "/hello")}
}

func (l *load) close() { l.tr.CloseIdleConnections() }

// get sends one request; an answer other than 200 is an error.
func (l *load) get() error {
	resp, err := l.c.Get(l.url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /hello: %s", resp.Status)
	}
	return nil
}

// warm sends n requests from each of workers goroutines, so that every
// keep-alive connection (and its TLS handshake) exists before the timer.
func (l *load) warm(b *testing.B, workers, n int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range n {
				if err := l.get(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
