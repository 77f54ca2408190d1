package edge

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/tracing"
)

// Tracing (Config.Tracer). Each request to an app gets a server span,
// "edge" at the node the user reached and "relay" at a relay node, whose
// context goes through the tunnel in traceparent to the connector (or
// the relay node). An attempt through the tunnel is not a span of its
// own (it would cost a quarter of tracing's per-request price): the path
// that answered is postern.connector, and each failed attempt an
// "attempt_failed" event with its path and error. The sign-in check, the policy decision
// and each routing choice are attributes, not spans: they take
// microseconds, do no I/O, and a span each cost more than half of
// tracing's whole per-request price (BenchmarkServeTracing). The request's
// span carries postern.auth (cookie, bearer, cli), postern.decision,
// postern.reason and postern.rule; a request no path was left for gets a
// "no_path" event.
// A client's traceparent is the parent only for an app with
// trust_trace_headers; a relay node always continues the first node's.
// With Tracer nil all of this is skipped behind one nil check, and the
// trace headers are only filtered (filterTraceHeaders).

// The start options of the spans, built once: a variadic call through the
// trace.Tracer interface would allocate their slice per span. Read only.
var (
	serverRoot  = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot()}
	serverChild = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
)

// startSpan starts the server span of r named name, as a child of the
// trace context in r's headers when trusted, and returns r carrying it.
func (h *Handler) startSpan(r *http.Request, st *reqState, name string, trusted bool) *http.Request {
	ctx := r.Context()
	opts := serverRoot
	if trusted {
		ctx, _ = tracing.Extract(ctx, r.Header)
		opts = serverChild
	}
	// No attributes at start: they are all set in one call at the end
	// (endSpan), which costs the SDK one allocation instead of three. The
	// node is a resource attribute (postern.node), set once per process,
	// not per span.
	ctx, st.span = h.cfg.Tracer.Start(ctx, name, opts...)
	st.spanMethod, st.spanHost, st.spanPath = r.Method, r.Host, r.URL.Path
	if sc := st.span.SpanContext(); sc.IsValid() {
		st.traceID = sc.TraceID().String()
	}
	return r.WithContext(ctx)
}

// endSpan ends the request's server span, if any, with its status.
func (st *reqState) endSpan(status int) {
	if st.span == nil {
		return
	}
	if st.span.IsRecording() {
		a := tracing.NewAttrs()
		a.Add(attribute.String("http.request.method", st.spanMethod))
		a.Add(attribute.String("server.address", st.spanHost))
		a.Add(attribute.String("url.path", st.spanPath))
		a.Add(attribute.String("postern.request_id", st.rid))
		a.Add(attribute.String("postern.app", st.app.ID))
		a.Add(attribute.Int("http.response.status_code", status))
		if st.connector != "" {
			a.Add(attribute.String("postern.connector", st.connector))
		}
		if st.via != "" {
			a.Add(attribute.String("postern.auth", st.via))
		}
		if st.decision.result != "" {
			a.Add(attribute.String("postern.decision", st.decision.result))
			a.Add(attribute.String("postern.reason", st.decision.reason))
			if st.decision.rule != "" {
				a.Add(attribute.String("postern.rule", st.decision.rule))
			}
		}
		a.SetOn(st.span)
		if status >= 500 {
			st.span.SetStatus(codes.Error, st.errReason)
		}
	}
	st.span.End()
}

// filterTraceHeaders decides the trace headers of a request sent into the
// tunnel while tracing is off at this node: a trusted client's valid
// context passes (rewritten in canonical form), anything else is removed.
// With tracing on they are removed here and each attempt sets its own
// (tunnelTransport.attempt).
func filterTraceHeaders(ctx context.Context, in, out http.Header, st *reqState) {
	if st.span != nil || !st.app.TrustTraceHeaders {
		tracing.Strip(out)
		return
	}
	if _, ok := in[tracing.HeaderTraceparent]; !ok {
		tracing.Strip(out)
		return
	}
	pctx, _ := tracing.Extract(ctx, in)
	tracing.Inject(pctx, out)
}

// noPath records on the request's span that no path was left for an
// attempt.
func noPath(ctx context.Context) {
	trace.SpanFromContext(ctx).AddEvent("no_path")
}

// attemptFailed records on the request's span (in ctx) an attempt
// through the tunnel that failed: an "attempt_failed" event naming the
// path (postern.path) and the error. An attempt has no span of its own: a
// span costs about a quarter of tracing's per-request price, and the
// path that answered is the request span's postern.connector.
func attemptFailed(ctx context.Context, c Path, err error) {
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		span.AddEvent("attempt_failed", trace.WithAttributes(attribute.String("postern.path", c.String()), attribute.String("error.message", err.Error())))
	}
}

// injectAttempt sets traceparent of out, the first attempt's request, to
// the request's span in its context, in place; a retry carries the same
// headers (the request's span is the parent of every attempt).
func injectAttempt(out *http.Request) {
	if stateOf(out.Context()).attempts == 1 {
		tracing.Inject(out.Context(), out.Header)
	}
}
