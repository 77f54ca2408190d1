package edge

import (
	"log/slog"
	"net/http"

	"github.com/postern/postern/pkg/session"
)

// decision is what the edge decided about one request's access, for the
// audit stream and postern_auth_decisions_total.
type decision struct {
	result string // resultAllow, resultDeny or resultSignIn; "" when no app was reached
	reason string // one of the reason constants: a small, fixed set (a metric label)
	rule   string // the policy rule that decided ("app", "path /admin"), if any
	detail string // the policy's sentence for a denial
	// principal is the kind of the verified caller the policy judged
	// (session.Principal*), also when it denied; "" when none was verified.
	principal string
}

// Audit results.
const (
	resultAllow  = "allow"   // the request went on to the app
	resultDeny   = "deny"    // refused with a page (403, or 400 for a refused path)
	resultSignIn = "sign_in" // sent to sign in (a redirect, or 401 for non-browsers)
)

// Audit reasons.
const (
	reasonPassthrough    = "passthrough"      // the app signs users in itself
	reasonSignedIn       = "signed_in"        // any signed-in user may (the app has no policy)
	reasonPolicy         = "policy"           // the policy decided (see rule)
	reasonBadPath        = "bad_path"         // the path is refused under every policy
	reasonRefusedRequest = "refused_request"  // a request the mesh forwards to no app (an upgrade other than WebSocket, …)
	reasonStepUp         = "step_up"          // an authentication context is missing: sign in again
	reasonNoSession      = "no_session"       // no app cookie
	reasonCookieRefused  = "cookie_refused"   // an app cookie that did not verify
	reasonRevoked        = "revoked"          // the session or user was revoked
	reasonUnconfigured   = "auth_unavailable" // this node has no sign-in configured
	reasonBearerRefused  = "bearer_refused"   // a bearer token (or a TCP stream without one) refused with 401
)

// audit writes the access decision of a request to a known app to the
// audit stream and counts it. Keys are those of the access log (one
// schema): request_id, app, user, client_ip, method, path, status,
// connector, principal and auth (for a verified identity), plus decision,
// reason, rule, detail, node, and trace_id when tracing is on. It covers every way in: app cookies,
// bearer tokens, command-line clients' tokens and TCP streams (whose
// record is written when the stream ends, with the access line).
func (h *Handler) audit(r *http.Request, st *reqState, status int) {
	d := st.decision
	if d.result == "" || st.app == nil {
		return
	}
	h.metrics.decided(st.app.ID, d.result, d.reason)
	if h.cfg.Audit == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", st.rid), slog.String("app", st.app.ID), slog.String("user", st.user),
		slog.String("client_ip", st.clientIP), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("decision", d.result), slog.String("reason", d.reason), slog.String("rule", d.rule),
		slog.Int("status", status), slog.String("connector", st.connector),
	}
	if d.principal != "" {
		attrs = append(attrs, slog.String("principal", d.principal), slog.String("auth", st.via))
	}
	if d.detail != "" && d.result != resultAllow {
		attrs = append(attrs, slog.String("detail", d.detail))
	}
	if h.cfg.NodeID != "" {
		attrs = append(attrs, slog.String("node", h.cfg.NodeID))
	}
	if st.traceID != "" {
		attrs = append(attrs, slog.String("trace_id", st.traceID))
	}
	h.cfg.Audit.LogAttrs(r.Context(), slog.LevelInfo, "access_decision", attrs...)
}

// shownUser is how a 403 page names the user: a user name or e-mail
// address when the provider gave one, else the display name, else the
// principal id.
func shownUser(id *session.Identity) string {
	for _, v := range []string{id.Username, id.Email, id.Name} {
		if v != "" {
			return v
		}
	}
	return id.Subject
}
