package egress

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/tracing"
)

// serverSpan starts the "connector" span of a request from the mesh, as a
// child of the trace context the mesh node sent (the tunnel peer is a
// mesh node, so it is trusted), and returns r carrying it.
func (h *Handler) serverSpan(r *http.Request, rid string) (*http.Request, trace.Span) {
	ctx, _ := tracing.Extract(r.Context(), r.Header)
	ctx, span := h.cfg.Tracer.Start(ctx, "connector", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("postern.request_id", rid)))
	return r.WithContext(ctx), span
}

// backendSpan starts the "backend" span of one round trip to the internal
// app and returns r carrying it, with its own copy of the headers whose
// traceparent names the span.
func (h *Handler) backendSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx, span := h.cfg.Tracer.Start(r.Context(), "backend", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("server.address", r.URL.Host)))
	r = r.WithContext(ctx)
	r.Header = r.Header.Clone()
	tracing.Inject(ctx, r.Header)
	return r, span
}

// noteStatus records the status sent to the mesh on the request's span
// and returns its trace id for the log line, when tracing is on.
func (h *Handler) noteStatus(r *http.Request, status int) string {
	if h.cfg.Tracer == nil {
		return ""
	}
	span := trace.SpanFromContext(r.Context())
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	return span.SpanContext().TraceID().String()
}
