package benchrun

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/tracing"
)

// BenchmarkTunnelTracing is bench run's tunnel scenario (GET /hello
// through a mesh node, the WireGuard tunnel and a connector, 32 workers on
// keep-alive connections) with tracing off and on (every request sampled:
// the mesh node's and the connector's spans, exported by the real
// exporter to a sink on loopback), one system each, started before
// either is measured. It reports the process's CPU per request
// (cpu-ns/op), which the budget is about: tracing on may cost at
// most 10% more. Run both halves in one invocation, with -count, and
// compare the medians.
func BenchmarkTunnelTracing(b *testing.B) {
	const workers = 32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
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
		"on":  start(&tracing.Config{Endpoint: sink.URL + "/v1/traces", Sampler: sdktrace.AlwaysSample()}),
	}
	// The order alternates with POSTERN_BENCH_ORDER=on,off, so that a
	// series of runs can cancel what being first or second costs.
	modes := []string{"off", "on"}
	if os.Getenv("POSTERN_BENCH_ORDER") == "on,off" {
		modes = []string{"on", "off"}
	}
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			h := systems[mode]
			tr := h.MeshTransport(0)
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			url := h.AppURL(0, "/hello")
			get := func() error {
				resp, err := c.Get(url)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("GET /hello: %s", resp.Status)
				}
				return nil
			}
			// Warm up as measured: 32 workers, so that every keep-alive
			// connection (and its TLS handshake) exists before the timer.
			var warm sync.WaitGroup
			for range workers {
				warm.Go(func() {
					for range 8 {
						if err := get(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			warm.Wait()
			b.SetParallelism(max(1, workers/runtime.GOMAXPROCS(0))) // 32 workers, as the tunnel scenario's c=32
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := get(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
