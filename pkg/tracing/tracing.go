// Package tracing is the one home of OpenTelemetry tracing in Postern: it
// reads the standard OTEL_* environment variables (FromEnv), builds the
// tracer provider with its batch span processor and OTLP/HTTP exporter
// (New; both are Postern's own: batch.go wakes its export goroutine once
// per batch, not per span, and otlp.go links no gRPC), and carries W3C trace
// context (traceparent, tracestate) in and out of HTTP headers (Extract,
// Inject, Strip).
//
// meshd and connectord call it once at start. Tracing is off unless the
// environment names an OTLP endpoint (or OTEL_TRACES_EXPORTER=otlp); off,
// there is no exporter and Tracer returns nil, which the request path
// (pkg/edge, pkg/egress) takes to mean "start no span": tracing off costs
// a nil check per request and nothing else.
//
// Trust: a request's trace context is taken from its headers only where
// the sender is trusted: between Postern's own hops (mesh node to relay
// node to connector, all over WireGuard), and from a client only for an
// app whose catalogue entry sets trust_trace_headers. Extract refuses
// malformed, repeated or oversized headers, so what it returns is safe to
// forward.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config configures New. The zero value is tracing off.
type Config struct {
	// Endpoint is the full OTLP/HTTP traces URL, such as
	// "http://collector:4318/v1/traces" (http or https); empty means
	// tracing is off.
	Endpoint string
	// Sampler decides which traces are recorded; nil means
	// parentbased_always_on (the OpenTelemetry default).
	Sampler sdktrace.Sampler
	// ServiceName is the service.name resource attribute; empty means
	// the name given to New.
	ServiceName string
	// Attributes are further resource attributes (OTEL_RESOURCE_ATTRIBUTES);
	// nil means none.
	Attributes []attribute.KeyValue
	// ExportTimeout bounds one export, its retries included; zero means
	// 10s (OTEL_EXPORTER_OTLP_TIMEOUT).
	ExportTimeout time.Duration
	// Headers are sent with every export, such as a collector's API key
	// (OTEL_EXPORTER_OTLP_HEADERS); nil means none. They never appear in
	// an error or a log line.
	Headers map[string]string
	// Compression is "gzip" or "none"; empty means none
	// (OTEL_EXPORTER_OTLP_COMPRESSION).
	Compression string
	// CAFile is a PEM file of the certificate authorities trusted for an
	// https endpoint; empty means the system's roots
	// (OTEL_EXPORTER_OTLP_CERTIFICATE).
	CAFile string
	// ClientCertFile and ClientKeyFile are the PEM client certificate and
	// key presented to the collector; empty means none
	// (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _CLIENT_KEY; both or
	// neither).
	ClientCertFile, ClientKeyFile string
	// BatchTimeout is the longest a finished span waits before it is
	// exported; zero means 5s (OTEL_BSP_SCHEDULE_DELAY).
	BatchTimeout time.Duration
	// MaxQueueSize is how many finished spans wait for export at most,
	// more are dropped; zero means 2048 (OTEL_BSP_MAX_QUEUE_SIZE).
	MaxQueueSize int
	// MaxExportBatchSize is the most spans sent in one export (capped at
	// MaxQueueSize); zero means 512 (OTEL_BSP_MAX_EXPORT_BATCH_SIZE).
	MaxExportBatchSize int
	// BatchExportTimeout bounds one export as the batch processor waits
	// for it, besides ExportTimeout; zero means 30s
	// (OTEL_BSP_EXPORT_TIMEOUT).
	BatchExportTimeout time.Duration
}

// Enabled reports whether cfg turns tracing on.
func (cfg Config) Enabled() bool { return cfg.Endpoint != "" }

// Tracing is the process's tracer provider. Its methods are safe for
// concurrent use.
type Tracing struct {
	provider *sdktrace.TracerProvider // nil when off
	tracer   trace.Tracer             // nil when off
	batcher  *batcher                 // nil when off
}

// New builds the tracer provider of service (the default service.name,
// "meshd" or "connectord") from cfg, exporting over OTLP/HTTP with
// Postern's own exporter (otlp.go). With tracing off it opens nothing; on,
// it reads the certificate files cfg names and opens no connection until
// the first export. Call Shutdown to flush and stop it.
func New(ctx context.Context, service string, cfg Config) (*Tracing, error) {
	if !cfg.Enabled() {
		return &Tracing{}, nil
	}
	exp, err := newExporter(cfg)
	if err != nil {
		return nil, err
	}
	name := cfg.ServiceName
	if name == "" {
		name = service
	}
	attrs := append([]attribute.KeyValue{attribute.String("service.name", name)}, cfg.Attributes...)
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	sampler := cfg.Sampler
	if sampler == nil {
		sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	// The batch processor is Postern's own (batch.go), with the settings
	// of cfg: the SDK's would also read the OTEL_BSP_* variables from the
	// process environment itself, behind FromEnv's getenv and its checks.
	b := newBatcher(exp, cfg)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithResource(res), sdktrace.WithSampler(sampler))
	return &Tracing{provider: tp, tracer: tp.Tracer("github.com/postern/postern"), batcher: b}, nil
}

// Defaults of the batch span processor (the OpenTelemetry
// specification's).
const (
	defaultBatchTimeout       = 5 * time.Second
	defaultMaxQueueSize       = 2048
	defaultMaxExportBatchSize = 512
	defaultBatchExportTimeout = 30 * time.Second
)

// orDefault is v, or def when v is zero or negative.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Enabled reports whether tracing is on.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Tracer returns the tracer of Postern's spans, or nil when tracing is
// off: callers skip all span work on nil (a no-op tracer would still
// allocate a context per span).
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// TracerProvider returns the provider: the SDK's when tracing is on, a
// no-op one when it is off.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if !t.Enabled() {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// Shutdown exports the spans still buffered and stops the exporter,
// within ctx. It is idempotent and does nothing when tracing is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Dropped returns how many finished spans were dropped because the
// export queue was full (OTEL_BSP_MAX_QUEUE_SIZE): the collector is
// slower than the spans come, or unreachable. Zero when tracing is off.
func (t *Tracing) Dropped() uint64 {
	if !t.Enabled() {
		return 0
	}
	return t.batcher.Dropped()
}

// CloseTimeout bounds Close's export of the spans still buffered.
const CloseTimeout = 5 * time.Second

// Close is Shutdown within CloseTimeout, for a main's defer: a failure is
// logged to logger (nil discards), the process is exiting anyway.
func (t *Tracing) Close(logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil && logger != nil {
		logger.Warn("tracing_shutdown_failed", "error", err)
	}
	if n := t.Dropped(); n > 0 && logger != nil {
		logger.Warn("tracing_spans_dropped", "spans_dropped", n)
	}
}

// EndRoundTrip ends span, a client span of one HTTP round trip (nil:
// tracing is off), with its outcome: err as an error status, or the
// response's status code; and with up to 3 extra attributes (such as the
// path the attempt took; more are dropped). The attributes are set in one
// call at the end, from a pooled buffer (Attrs): the SDK allocates once
// for them, and the call none.
func EndRoundTrip(span trace.Span, resp *http.Response, err error, extra ...attribute.KeyValue) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		a := NewAttrs()
		for _, kv := range extra[:min(len(extra), 3)] {
			a.Add(kv)
		}
		if err == nil && resp != nil {
			a.Add(attribute.Int("http.response.status_code", resp.StatusCode))
		}
		a.SetOn(span)
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// MaxAttrs is the most attributes an Attrs holds.
const MaxAttrs = 16

// Attrs is a reusable buffer of up to MaxAttrs span attributes, set on a
// span in one call (SetOn). Passing a slice through the trace.Span
// interface makes its array escape, one allocation per call; the SDK
// copies what it is given (TestAttrsCopied), so a pooled buffer costs
// none. Get one with NewAttrs, fill it with Add, hand it back with SetOn.
type Attrs struct {
	kv [MaxAttrs]attribute.KeyValue
	n  int
}

// attrsPool holds the idle Attrs; a sync.Pool is safe for concurrent use
// and keeps no state a caller can see.
var attrsPool = sync.Pool{New: func() any { return new(Attrs) }}

// NewAttrs returns an empty Attrs from the pool.
func NewAttrs() *Attrs { return attrsPool.Get().(*Attrs) }

// Add appends kv; past MaxAttrs it is dropped.
func (a *Attrs) Add(kv attribute.KeyValue) {
	if a.n < len(a.kv) {
		a.kv[a.n] = kv
		a.n++
	}
}

// SetOn sets a's attributes on span in one call and returns a to the
// pool: a must not be used after.
func (a *Attrs) SetOn(span trace.Span) {
	if a.n > 0 {
		span.SetAttributes(a.kv[:a.n]...)
	}
	clear(a.kv[:a.n]) // no strings kept alive by the pool
	a.n = 0
	attrsPool.Put(a)
}

// Header names of W3C Trace Context, in canonical form.
const (
	HeaderTraceparent = "Traceparent"
	HeaderTracestate  = "Tracestate"
)

// Bounds on accepted trace headers. A version-00 traceparent is exactly
// 55 characters; later versions may append fields, which Postern does not
// read, so 128 leaves room without carrying a client's payload. The W3C
// recommends propagating at least 512 characters of tracestate; more is
// dropped whole, never cut.
const (
	maxTraceparent = 128
	maxTracestate  = 512
)

// propagator is stateless: the one value serves every request.
var propagator propagation.TraceContext

// Extract returns ctx carrying the remote span context of h's traceparent
// and tracestate, and whether there was a valid one. A header that is
// repeated, longer than the bounds above, or malformed (bad version,
// length, hex, all-zero ids) is ignored: ctx comes back unchanged. A
// tracestate that is oversized or malformed is dropped alone.
func Extract(ctx context.Context, h http.Header) (context.Context, bool) {
	tp := h[HeaderTraceparent]
	if len(tp) != 1 || len(tp[0]) > maxTraceparent {
		return ctx, false
	}
	c := carrier{tp: tp[0]}
	if ts := h[HeaderTracestate]; len(ts) == 1 && len(ts[0]) <= maxTracestate {
		c.ts = ts[0]
	}
	sc := trace.SpanContextFromContext(propagator.Extract(context.Background(), c))
	if !sc.IsValid() {
		return ctx, false
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc), true
}

// Inject replaces h's trace headers by the span context of ctx (the
// current span's, or a remote one from Extract); with no valid span
// context it only removes them.
func Inject(ctx context.Context, h http.Header) {
	Strip(h)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	propagator.Inject(ctx, setter(h))
}

// setter is the propagation.TextMapCarrier Inject writes through: it sets
// the two keys the propagator writes in canonical form directly
// (propagation.HeaderCarrier canonicalises each key, an allocation per
// header, as these names are not among Go's common headers).
type setter http.Header

func (h setter) Get(string) string { return "" }

func (h setter) Set(key, value string) {
	switch key {
	case "traceparent":
		h[HeaderTraceparent] = []string{value}
	case "tracestate":
		h[HeaderTracestate] = []string{value}
	default:
		http.Header(h).Set(key, value)
	}
}

func (setter) Keys() []string { return nil }

// Strip removes the trace headers from h (every spelling Go's header map
// can hold: the canonical one, and the lower-case one of HTTP/2 clients
// that reach a handler through a non-canonicalising path).
func Strip(h http.Header) {
	delete(h, HeaderTraceparent)
	delete(h, HeaderTracestate)
	delete(h, "traceparent")
	delete(h, "tracestate")
}

// carrier is a read-only propagation.TextMapCarrier over the two values
// Extract already checked.
type carrier struct{ tp, ts string }

func (c carrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.tp
	case "tracestate":
		return c.ts
	}
	return ""
}

func (carrier) Set(string, string) {}

func (carrier) Keys() []string { return []string{"traceparent", "tracestate"} }
