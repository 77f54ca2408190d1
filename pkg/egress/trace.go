package egress

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/tracing"
)

// The start options of the spans, built once: a variadic call through the
// trace.Tracer interface would allocate their slice per span. Read only.
var (
	serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// startServerSpan starts the "connector" span of a request from the mesh,
// as a child of the trace context the mesh node sent (the tunnel peer is a
// mesh node, so it is trusted), and returns r carrying it. Its attributes
// are set when it ends (noteStatus), in one call.
func (h *Handler) startServerSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx, _ := tracing.Extract(r.Context(), r.Header)
	ctx, span := h.cfg.Tracer.Start(ctx, "connector", serverSpan...)
	return r.WithContext(ctx), span
}

// backendSpan starts the "backend" span of one round trip to the internal
// app and returns r carrying it, its traceparent naming the span. r is the
// reverse proxy's own copy of the request, made for this one round trip
// (httputil.ReverseProxy clones the inbound request and its headers): its
// headers are set in place, not copied again.
func (h *Handler) backendSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx, span := h.cfg.Tracer.Start(r.Context(), "backend", clientSpan...)
	r = r.WithContext(ctx)
	tracing.Inject(ctx, r.Header)
	return r, span
}

// noteStatus records the request id and the status sent to the mesh on
// the request's span and returns its trace id for the log line, when
// tracing is on.
func (h *Handler) noteStatus(r *http.Request, rid string, status int) string {
	if h.cfg.Tracer == nil {
		return ""
	}
	span := trace.SpanFromContext(r.Context())
	if span.IsRecording() {
		a := tracing.NewAttrs()
		a.Add(attribute.String("postern.request_id", rid))
		a.Add(attribute.Int("http.response.status_code", status))
		a.SetOn(span)
	}
	return span.SpanContext().TraceID().String()
}
