package edge

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/tracing"
)

// Tracing (Config.Tracer). Each request to an app gets a server span,
// "edge" at the node the user reached and "relay" at a relay node, with
// children for the sign-in or bearer check ("auth"), the policy decision
// ("policy"), each routing choice ("route") and each attempt through the
// tunnel ("tunnel"), whose context goes to the connector in traceparent.
// A client's traceparent is the parent only for an app with
// trust_trace_headers; a relay node always continues the first node's.
// With Tracer nil all of this is skipped behind one nil check, and the
// trace headers are only filtered (filterTraceHeaders).

// startSpan starts the server span of r named name, as a child of the
// trace context in r's headers when trusted, and returns r carrying it.
func (h *Handler) startSpan(r *http.Request, st *reqState, name string, trusted bool) *http.Request {
	ctx := r.Context()
	root := trace.WithNewRoot()
	if trusted {
		ctx, _ = tracing.Extract(ctx, r.Header)
		root = trace.WithSpanKind(trace.SpanKindServer) // already set: a no-op
	}
	// Few attributes, set at start: each costs allocations here and in
	// the exporter. The node is a resource attribute (postern.node), set
	// once per process, not per span.
	ctx, st.span = h.cfg.Tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), root, trace.WithAttributes(
		attribute.String("http.request.method", r.Method), attribute.String("server.address", r.Host),
		attribute.String("url.path", r.URL.Path), attribute.String("postern.request_id", st.rid), attribute.String("postern.app", st.app.ID)))
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
		attrs := [4]attribute.KeyValue{attribute.Int("http.response.status_code", status)}
		n := 1
		if st.connector != "" {
			attrs[n], n = attribute.String("postern.connector", st.connector), n+1
		}
		if st.decision.result != "" {
			attrs[n], attrs[n+1], n = attribute.String("postern.decision", st.decision.result), attribute.String("postern.reason", st.decision.reason), n+2
		}
		st.span.SetAttributes(attrs[:n]...)
		if status >= 500 {
			st.span.SetStatus(codes.Error, st.errReason)
		}
	}
	st.span.End()
}

// tracedAuthenticate runs authenticate inside an "auth" span when tracing
// is on.
func (h *Handler) tracedAuthenticate(w http.ResponseWriter, r *http.Request, app *catalog.App, st *reqState) *session.Identity {
	if h.cfg.Tracer == nil {
		return h.authenticate(w, r, app, st)
	}
	ctx, span := h.cfg.Tracer.Start(r.Context(), "auth")
	defer span.End()
	id := h.authenticate(w, r.WithContext(ctx), app, st)
	if st.via != "" && span.IsRecording() {
		span.SetAttributes(attribute.String("postern.auth", st.via)) // the decision is on the request's span
	}
	return id
}

// policySpan starts the "policy" span of a policy decision, or returns
// nil when tracing is off.
func (h *Handler) policySpan(ctx context.Context) trace.Span {
	if h.cfg.Tracer == nil {
		return nil
	}
	_, span := h.cfg.Tracer.Start(ctx, "policy")
	return span
}

// endPolicySpan ends a policy span with the decision.
func endPolicySpan(span trace.Span, allow bool, rule string) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Bool("postern.allow", allow), attribute.String("postern.rule", rule))
	}
	span.End()
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

// routeSpan records one routing choice: the path picked for an attempt
// (a local connector, or a relay through another node), or none.
func (t *tunnelTransport) routeSpan(ctx context.Context, c Path) {
	if c == nil {
		_, span := t.tracer.Start(ctx, "route")
		span.SetStatus(codes.Error, "no path")
		span.End()
		return
	}
	_, span := t.tracer.Start(ctx, "route", trace.WithAttributes(attribute.String("postern.path", c.String())))
	span.End()
}

// attemptSpan starts the "tunnel" span of one attempt (the route span
// before it names the path) and returns out carrying it, in its context
// and in traceparent. The first attempt sets the header in place; a retry
// sets it in a copy, as an earlier attempt's transport may still read the
// headers it was given.
func (t *tunnelTransport) attemptSpan(out *http.Request) (*http.Request, trace.Span) {
	ctx, span := t.tracer.Start(out.Context(), "tunnel", trace.WithSpanKind(trace.SpanKindClient))
	out = out.WithContext(ctx)
	if stateOf(ctx).attempts > 1 {
		out.Header = out.Header.Clone()
	}
	tracing.Inject(ctx, out.Header)
	return out, span
}
