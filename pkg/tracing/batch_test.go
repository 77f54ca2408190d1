package tracing_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tracing/tracingtest"
)

// TestBatchFromEnv reads the batch processor's OTEL_BSP_* variables and
// refuses values that are not positive whole numbers, naming the
// variable.
func TestBatchFromEnv(t *testing.T) {
	const ep = "http://c:4318"
	cfg, err := tracing.FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep,
		"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_BSP_EXPORT_TIMEOUT": "7000",
		"OTEL_BSP_MAX_QUEUE_SIZE": "4096", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": " 1024 "}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BatchTimeout != 250*time.Millisecond || cfg.BatchExportTimeout != 7*time.Second ||
		cfg.MaxQueueSize != 4096 || cfg.MaxExportBatchSize != 1024 {
		t.Errorf("got %v, %v, %d, %d", cfg.BatchTimeout, cfg.BatchExportTimeout, cfg.MaxQueueSize, cfg.MaxExportBatchSize)
	}
	for _, k := range []string{"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"} {
		for _, v := range []string{"0", "-1", "5s", "1e3", "99999999999"} {
			_, err := tracing.FromEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, k: v}))
			if err == nil || !strings.Contains(err.Error(), k) || !strings.HasPrefix(err.Error(), "tracing: ") {
				t.Errorf("%s=%s: got %v, want an error naming it", k, v, err)
			}
		}
	}
}

// TestBatchSize: MaxExportBatchSize bounds the spans of one export (7
// spans, batches of 3: exports of 3, 3 and 1, the last flushed by
// Shutdown), with gzip on, so the compressor reused across exports is
// checked too: the receiver decodes every body.
func TestBatchSize(t *testing.T) {
	recv := tracingtest.NewReceiver(t)
	tr, err := tracing.New(t.Context(), "meshd", tracing.Config{Endpoint: recv.URL, Sampler: sdktrace.AlwaysSample(),
		MaxExportBatchSize: 3, Compression: "gzip", BatchTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		_, span := tr.Tracer().Start(t.Context(), fmt.Sprintf("s%d", i))
		span.End()
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if bad := recv.Refused(); len(bad) > 0 {
		t.Fatalf("refused: %v", bad)
	}
	var sizes []int
	for _, req := range recv.Requests() {
		n := 0
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
		sizes = append(sizes, n)
	}
	if fmt.Sprint(sizes) != "[3 3 1]" {
		t.Errorf("got exports of %v spans, want [3 3 1]", sizes)
	}
	for _, h := range recv.Headers() {
		if h.Get("Content-Encoding") != "gzip" {
			t.Errorf("an export without gzip: %v", h)
		}
	}
}

// TestAttrsCopied: the attributes set through a pooled Attrs are the
// span's own: the buffer reused at once for another span with other
// values leaves the first span's as they were, and more than MaxAttrs are
// dropped, not written past the buffer.
func TestAttrsCopied(t *testing.T) {
	recv := tracingtest.NewReceiver(t)
	tr, err := tracing.New(t.Context(), "meshd", tracing.Config{Endpoint: recv.URL, Sampler: sdktrace.AlwaysSample()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, span := tr.Tracer().Start(t.Context(), fmt.Sprintf("s%d", i))
		a := tracing.NewAttrs()
		for j := range tracing.MaxAttrs + 3 {
			a.Add(attribute.String(fmt.Sprintf("k%d", j), fmt.Sprintf("span %d", i)))
		}
		a.SetOn(span)
		span.End()
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans := recv.Spans()
	if len(spans) != 2 {
		t.Fatalf("got %d spans", len(spans))
	}
	for _, s := range spans {
		want := "span " + strings.TrimPrefix(s.Name, "s")
		if len(s.Attrs) != tracing.MaxAttrs {
			t.Errorf("%s: %d attributes, want %d", s.Name, len(s.Attrs), tracing.MaxAttrs)
		}
		for k, v := range s.Attrs {
			if v != want {
				t.Errorf("%s: %s = %q, want %q", s.Name, k, v, want)
			}
		}
	}
}

// TestInjectCanonical: Inject writes the trace headers under their
// canonical names only, replacing any spelling already there, and Extract
// reads back the same context.
func TestInjectCanonical(t *testing.T) {
	recv := tracingtest.NewReceiver(t)
	tr, err := tracing.New(t.Context(), "meshd", tracing.Config{Endpoint: recv.URL, Sampler: sdktrace.AlwaysSample()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(t.Context())
	ctx, span := tr.Tracer().Start(t.Context(), "edge")
	defer span.End()
	h := http.Header{"traceparent": {"00-" + validTrace + "-" + validSpan + "-01"}, "Traceparent": {"junk"}, "Tracestate": {"a=b"}}
	tracing.Inject(ctx, h)
	if len(h) != 1 || len(h[tracing.HeaderTraceparent]) != 1 {
		t.Fatalf("got %v, want one canonical traceparent (no tracestate: the span has none)", h)
	}
	got, ok := tracing.Extract(t.Context(), h)
	if !ok {
		t.Fatalf("Extract of %q failed", h.Get("Traceparent"))
	}
	if sc := span.SpanContext(); !sc.Equal(traceSpanContext(got)) {
		t.Errorf("round trip: got %v, want %v", traceSpanContext(got), sc)
	}
}

func traceSpanContext(ctx context.Context) trace.SpanContext {
	return trace.SpanContextFromContext(ctx).WithRemote(false)
}
