package edge

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tracing/tracingtest"
)

// BenchmarkServeTracing is BenchmarkServeAuthenticated with tracing off
// and on (every request sampled: the edge, auth, policy, route and tunnel
// spans, batched and exported over OTLP/HTTP by the real exporter to a
// sink on loopback), in one run so that the two can be compared.
func BenchmarkServeTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchServe(b, func(c Config) Config { return c }) })
	b.Run("on", func(b *testing.B) {
		tr, err := tracing.New(b.Context(), "meshd", tracing.Config{Endpoint: tracingtest.NewSink(b), Sampler: sdktrace.AlwaysSample()})
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Shutdown(b.Context())
		benchServe(b, func(c Config) Config { c.Tracer = tr.Tracer(); return c })
	})
}
