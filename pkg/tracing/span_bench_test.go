package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tracing/tracingtest"
)

// BenchmarkSpan measures what one sampled span costs through the
// OpenTelemetry SDK and Postern's exporter: start, the edge span's 11
// attributes set at the end through a pooled Attrs, end, and its share of
// the batch export (protobuf, POST to a sink process on loopback, whose CPU is not counted). It is the
// floor of tracing's per-span price as long as the SDK records the spans.
func BenchmarkSpan(b *testing.B) {
	tr, err := tracing.New(b.Context(), "meshd", tracing.Config{Endpoint: tracingtest.NewProcessSink(b), Sampler: sdktrace.AlwaysSample()})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(b.Context())
	tracer := tr.Tracer()
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		_, span := tracer.Start(ctx, "edge", opts...)
		a := tracing.NewAttrs()
		a.Add(attribute.String("http.request.method", "GET"))
		a.Add(attribute.String("server.address", "app.example.com"))
		a.Add(attribute.String("url.path", "/home/page"))
		a.Add(attribute.String("postern.request_id", "abcdefghijklmnop"))
		a.Add(attribute.String("postern.app", "app"))
		a.Add(attribute.Int("http.response.status_code", 200))
		a.Add(attribute.String("postern.connector", "c1"))
		a.Add(attribute.String("postern.auth", "cookie"))
		a.Add(attribute.String("postern.decision", "allow"))
		a.Add(attribute.String("postern.reason", "policy"))
		a.Add(attribute.String("postern.rule", "staff"))
		a.SetOn(span)
		span.End()
	}
}

// discard is a span exporter that drops every batch.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkProcessor compares the hand-off of ended spans to the export
// goroutine: the SDK's batch processor (a channel send per span, which
// wakes its goroutine) against Postern's (an append under a mutex, a
// wake-up per batch), spans ended from parallel goroutines, exported to
// nothing. Its cpu-ns/op is the process's CPU per span, both sides of
// the hand-off.
func BenchmarkProcessor(b *testing.B) {
	for _, c := range []struct {
		name string
		sp   func() sdktrace.SpanProcessor
	}{
		{"sdk", func() sdktrace.SpanProcessor { return sdktrace.NewBatchSpanProcessor(discard{}) }},
		{"postern", func() sdktrace.SpanProcessor { return tracing.NewBatcher(discard{}, tracing.Config{}) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			sp := c.sp()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
			defer tp.Shutdown(context.Background())
			tracer := tp.Tracer("bench")
			b.ReportAllocs()
			cpu := testkit.ProcessCPU()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					_, span := tracer.Start(ctx, "edge")
					span.End()
				}
			})
			b.ReportMetric(float64(testkit.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
