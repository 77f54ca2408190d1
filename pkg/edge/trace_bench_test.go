package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/postern/postern/pkg/tracing"
)

// BenchmarkServeTracing is BenchmarkServeAuthenticated with tracing off
// and on (every request sampled: the edge, auth, policy, route and tunnel
// spans, batched and exported over OTLP/HTTP by the real exporter to a
// sink on loopback), in one run so that the two can be compared.
func BenchmarkServeTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchServe(b, func(c Config) Config { return c }) })
	b.Run("on", func(b *testing.B) {
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-protobuf")
		}))
		defer sink.Close()
		tr, err := tracing.New(b.Context(), "meshd", tracing.Config{Endpoint: sink.URL + "/v1/traces", Sampler: sdktrace.AlwaysSample()})
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Shutdown(b.Context())
		benchServe(b, func(c Config) Config { c.Tracer = tr.Tracer(); return c })
	})
}
