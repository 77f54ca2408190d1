package edge

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/pool"
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
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	if trusted {
		ctx, _ = tracing.Extract(ctx, r.Header)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	ctx, st.span = h.cfg.Tracer.Start(ctx, name, opts...)
	if sc := st.span.SpanContext(); sc.IsValid() {
		st.traceID = sc.TraceID().String()
	}
	if st.span.IsRecording() {
		st.span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("server.address", r.Host),
			attribute.String("url.path", r.URL.Path), attribute.String("postern.request_id", st.rid), attribute.String("postern.app", st.app.ID))
		if h.cfg.NodeID != "" {
			st.span.SetAttributes(attribute.String("postern.node", h.cfg.NodeID))
		}
	}
	return r.WithContext(ctx)
}

// endSpan ends the request's server span, if any, with its status.
func (st *reqState) endSpan(status int) {
	if st.span == nil {
		return
	}
	if st.span.IsRecording() {
		st.span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.Int("postern.attempts", st.attempts))
		if st.connector != "" {
			st.span.SetAttributes(attribute.String("postern.connector", st.connector))
		}
		if st.decision.result != "" {
			st.span.SetAttributes(attribute.String("postern.decision", st.decision.result), attribute.String("postern.reason", st.decision.reason))
		}
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
	if span.IsRecording() {
		span.SetAttributes(attribute.String("postern.decision", st.decision.result), attribute.String("postern.reason", st.decision.reason))
		if st.via != "" {
			span.SetAttributes(attribute.String("postern.auth", st.via))
		}
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
func (t *tunnelTransport) routeSpan(ctx context.Context, group string, c *pool.Connector, tried int) {
	_, span := t.tracer.Start(ctx, "route")
	if span.IsRecording() {
		span.SetAttributes(attribute.String("postern.group", group), attribute.Int("postern.excluded", tried))
		if c != nil {
			span.SetAttributes(attribute.String("postern.path", c.ID))
		} else {
			span.SetStatus(codes.Error, "no path")
		}
	}
	span.End()
}

// attemptSpan starts the "tunnel" span of one attempt on c and returns
// out with its context and its own copy of the headers carrying it.
func (t *tunnelTransport) attemptSpan(out *http.Request, c *pool.Connector) (*http.Request, trace.Span) {
	ctx, span := t.tracer.Start(out.Context(), "tunnel", trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("postern.path", c.ID), attribute.Int("postern.attempt", stateOf(out.Context()).attempts))
	}
	out = out.WithContext(ctx)
	out.Header = out.Header.Clone()
	tracing.Inject(ctx, out.Header)
	return out, span
}
