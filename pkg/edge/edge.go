// Package edge is the mesh node's HTTP front: it maps the Host of each
// request to an app of the catalogue, rewrites the request's forwarding
// headers, and proxies it through the WireGuard tunnel to a live connector of
// the app's group, retrying on another connector when the first provably
// never got it. It answers failures with error pages and writes one access-log
// line per request.
//
// Before a request enters the tunnel the edge refuses every protocol
// upgrade but WebSocket (pkg/upgrade), strips the client's copies of the
// headers backends trust from Postern and from other proxies (headers.go),
// and enforces the app's policy; it answers unauthenticated clients within a
// per-address budget (Limits) and sends Strict-Transport-Security on every
// HTTPS answer.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/accesslog"
	"github.com/postern/postern/pkg/bearer"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/duplex"
	"github.com/postern/postern/pkg/errpage"
	"github.com/postern/postern/pkg/iplimit"
	"github.com/postern/postern/pkg/policy"
	"github.com/postern/postern/pkg/reqid"
	"github.com/postern/postern/pkg/session"
	"github.com/postern/postern/pkg/splice"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/upgrade"
)

// Config configures a Handler.
type Config struct {
	// Catalog returns the current catalogue. Required.
	Catalog func() *catalog.Catalog
	// Router chooses each request's path: a connector attached to this
	// node, or, for a node in a cluster, a relay through another mesh
	// node. Required.
	Router Router
	// Local chooses among the connectors attached to this node only: the
	// path of the requests other mesh nodes relay here, which never go
	// further. Nil means Router (a lone node's, which knows no relays).
	Local Router
	// MaxAttempts bounds how many connectors one request may be tried on;
	// zero means 3.
	MaxAttempts int
	// Logger receives the access log; nil discards.
	Logger *slog.Logger
	// Registerer receives request metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Auth enables pre-authenticated apps; nil means such apps are refused
	// with 503 and only passthrough apps are served.
	Auth *AuthConfig
	// Limits bounds the answers one client may get without a verified
	// identity; the zero value means the defaults of Limits.
	Limits Limits
	// Bearer verifies the Entra access tokens and trusted issuers' tokens
	// that apps accept (the catalogue's bearer sections); nil refuses
	// them with 401.
	Bearer *bearer.Verifier
	// Denied refuses revoked identities, however they were verified (app
	// cookie, command-line app token, bearer token), with or without Auth;
	// nil refuses none.
	Denied DenyList
	// Audit receives one "access_decision" record per request to a known
	// app (see audit.go), apart from the access log; nil writes none.
	Audit *slog.Logger
	// NodeID names this node in audit records; empty leaves it out.
	NodeID string
	// Tracer records the spans of each request (see trace.go) and puts
	// its trace context in the traceparent sent to the connector; nil
	// means tracing is off: no span and no allocation for it, and only
	// the client's trace headers are filtered (kept for an app with
	// trust_trace_headers when valid, removed otherwise).
	Tracer trace.Tracer
}

// Handler is the edge proxy. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	logger  *slog.Logger
	proxy   *httputil.ReverseProxy
	relay   *httputil.ReverseProxy
	metrics *metrics
	auth    *auth
	unauth  *iplimit.Limiter
	streams splice.Set // TCP streams being carried
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, logger: cfg.Logger, metrics: newMetrics(cfg.Registerer), auth: newAuth(cfg.Auth, cfg.Now),
		unauth: cfg.Limits.limiter()}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Local == nil {
		cfg.Local = cfg.Router
		h.cfg.Local = cfg.Router
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      &tunnelTransport{router: cfg.Router, maxAttempts: cfg.MaxAttempts, tracer: cfg.Tracer, ids: newIdentityMemo(cfg.Now)},
		ModifyResponse: modifyResponse,
		ErrorHandler:   h.proxyError,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(h.logger.Handler(), slog.LevelDebug),
	}
	h.relay = h.newRelayProxy()
	return h
}

// reqState travels with one request through the proxy.
type reqState struct {
	app       *catalog.App
	rid       string
	clientIP  string
	scheme    string
	connector string // id of the connector that answered
	attempts  int
	errReason string
	cutErr    error             // the error that cut the upstream response body, if any
	truncated string            // who cut a response mid-body: "upstream" or "client"; "" if not cut
	user      string            // subject of the caller, for the log
	cat       *catalog.Catalog  // the catalogue app was found in
	id        *session.Identity // verified identity of a pre-authenticated request
	ident     identityBlock     // the identity headers set from id
	token     string            // the app cookie or bearer token that carried id
	via       string            // how id was verified: cookie, bearer or cli
	decision  decision          // what the edge decided about access, for the audit stream
	auth      *auth
	relayed   bool       // served for another mesh node (RelayHandler)
	stripAuth bool       // remove the Authorization header: it carried a bearer token
	bytesUp   int64      // a TCP stream's bytes from the client
	bytesDown int64      // a TCP stream's bytes to the client
	tcp       bool       // a TCP stream: log bytes_up and bytes_down
	span      trace.Span // the request's server span; nil when tracing is off
	traceID   string     // span's trace id (hex), for the logs; "" when tracing is off
	// The request's method, host and path as it arrived, for span's
	// attributes (set when it ends).
	spanMethod, spanHost, spanPath string
}

type stateKey struct{}

func stateOf(ctx context.Context) *reqState { return ctx.Value(stateKey{}).(*reqState) }

var statePool = sync.Pool{New: func() any { return new(reqState) }}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Now()
	defer duplex.Serve(w, r)()
	st := statePool.Get().(*reqState)
	*st = reqState{rid: reqid.New(), clientIP: clientIP(r.RemoteAddr), scheme: "http"}
	defer statePool.Put(st)
	if r.TLS != nil {
		st.scheme = "https"
	}
	rw := accesslog.Wrap(w)
	defer rw.Release()
	cat := h.cfg.Catalog()
	app, ok := cat.AppByHost(r.Host)
	if r.TLS != nil {
		setHSTS(rw.Header(), app)
	}
	if !ok {
		h.writeUnauth(rw, r, st, errpage.Page{Status: http.StatusNotFound, Title: "Unknown application",
			Reason: fmt.Sprintf("No application is published at %s.", errpage.Shown(r.Host)), RequestID: st.rid})
		h.logAccess(r, rw, st, start)
		return
	}
	st.app, st.cat = app, cat
	if h.cfg.Tracer != nil {
		r = h.startSpan(r, st, "edge", app.TrustTraceHeaders)
	}
	if reason := refusedRequest(r); reason != "" {
		st.errReason = reason
		st.decision = decision{result: resultDeny, reason: reasonRefusedRequest, detail: reason}
		h.writeUnauth(rw, r, st, errpage.Page{Status: http.StatusBadRequest, Title: "Request refused",
			Reason: "The request is not one the mesh forwards: " + reason + ".", RequestID: st.rid})
		h.logAccess(r, rw, st, start)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/.postern/") {
		h.servePostern(rw, r, app, st)
		h.logAccess(r, rw, st, start)
		return
	}
	if app.Kind == catalog.KindTCP {
		st.decision = decision{result: resultDeny, reason: reasonRefusedRequest, detail: "an HTTP request to a TCP app"}
		h.writeUnauth(rw, r, st, errpage.Page{Status: http.StatusNotFound, Title: "TCP service",
			Reason: "This address publishes a TCP service: connect to it with \"connectord access tcp\".", RequestID: st.rid})
		h.logAccess(r, rw, st, start)
		return
	}
	if app.PreAuth == catalog.PreAuthPassthrough {
		st.decision = decision{result: resultAllow, reason: reasonPassthrough}
	} else {
		if st.id = h.authenticate(rw, r, app, st); st.id == nil {
			h.logAccess(r, rw, st, start)
			return
		}
	}
	h.serveProxy(h.proxy, rw, r, st, start)
}

// serveProxy runs p and writes the access line, also when the response
// is cut mid-body. ReverseProxy then panics with http.ErrAbortHandler;
// the panic is raised again after the line is written, so the server cuts
// the connection (HTTP/1) or resets the stream (HTTP/2) and the client
// sees that the response is incomplete.
func (h *Handler) serveProxy(p *httputil.ReverseProxy, rw *accesslog.Writer, r *http.Request, st *reqState, start time.Time) {
	defer func() {
		v := recover()
		if v != nil {
			st.noteAbort(r, v)
		}
		h.logAccess(r, rw, st, start)
		if v != nil {
			panic(v)
		}
	}()
	p.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
}

// noteAbort records why the handler was aborted by v: a response cut
// mid-body by the connector side ("upstream") or by the client going away
// ("client").
func (st *reqState) noteAbort(r *http.Request, v any) {
	if v != http.ErrAbortHandler {
		st.errReason = fmt.Sprint("panic: ", v)
		return
	}
	switch {
	case r.Context().Err() == nil && st.cutErr != nil:
		st.truncated, st.errReason = "upstream", "response cut: "+st.cutErr.Error()
	default:
		st.truncated, st.errReason = "client", "response cut: the client went away"
	}
}

// refusedRequest returns why r may not enter the tunnel for any app, or
// "": a protocol upgrade other than WebSocket (h2c would carry any number
// of requests past the policy), CONNECT, or an encoded control character
// in the path.
func refusedRequest(r *http.Request) string {
	if r.Method == http.MethodConnect || upgrade.Requested(r.Header) {
		if err := upgrade.CheckRequest(r); err != nil {
			return strings.TrimPrefix(err.Error(), upgrade.ErrRefused.Error()+": ")
		}
	}
	if policy.HasEncodedControl(r.RequestURI) {
		return "an encoded control character in the path"
	}
	return ""
}

// setHSTS sets the Strict-Transport-Security header of an HTTPS answer:
// the app's, or the default for a host that is no app.
func setHSTS(h http.Header, app *catalog.App) {
	v := catalog.DefaultHSTS
	if app != nil {
		v = app.HSTS
	}
	if v != "" {
		h["Strict-Transport-Security"] = []string{v}
	}
}

func (h *Handler) logAccess(r *http.Request, rw *accesslog.Writer, st *reqState, start time.Time) {
	d := h.cfg.Now().Sub(start)
	appID := "-"
	if st.app != nil {
		appID = st.app.ID
	}
	status := rw.Status()
	if status == 0 {
		status = 499 // the client went away before anything was sent
	}
	var buf [20]slog.Attr
	attrs := append(buf[:0],
		slog.String("request_id", st.rid), slog.String("app", appID), slog.String("method", r.Method),
		slog.String("host", r.Host), slog.String("path", r.URL.Path), slog.Int("status", status),
		slog.Int64("bytes", rw.Bytes()), slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("connector", st.connector), slog.Bool("relayed", st.relayed), slog.String("user", st.user), slog.Int("attempts", st.attempts), slog.String("client_ip", st.clientIP),
		slog.Bool("truncated", st.truncated != ""),
	)
	if st.truncated != "" {
		attrs = append(attrs, slog.String("truncated_by", st.truncated))
	}
	if st.traceID != "" {
		attrs = append(attrs, slog.String("trace_id", st.traceID))
	}
	if st.id != nil {
		attrs = append(attrs, slog.String("principal", st.id.PrincipalType()), slog.String("auth", st.via))
	}
	if st.tcp {
		attrs = append(attrs, slog.Int64("bytes_up", st.bytesUp), slog.Int64("bytes_down", st.bytesDown))
	}
	if st.errReason != "" {
		attrs = append(attrs, slog.String("error", st.errReason))
	}
	accesslog.Line(r.Context(), h.logger, "access", attrs...)
	h.metrics.observe(appID, status, d, rw.Bytes(), st.truncated)
	h.audit(r, st, status)
	st.endSpan(status)
}

// rewrite builds the request sent through the tunnel. By the time it runs,
// ReverseProxy has removed hop-by-hop and client-supplied X-Forwarded-*
// headers from pr.Out.
func rewrite(pr *httputil.ProxyRequest) {
	st := stateOf(pr.In.Context())
	out := pr.Out
	h := out.Header
	tunnelhttp.StripInternal(h)
	stripClientHeaders(h, st.app)
	stripPosternCookies(h)
	filterTraceHeaders(pr.In.Context(), pr.In.Header, h, st)
	if st.stripAuth {
		delete(h, "Authorization")
	}
	if st.id != nil {
		takeIdentity(st) // added per attempt by the transport
	}
	out.URL.Scheme = "http"
	out.URL.Host = "connector" // replaced per attempt by the transport
	h.Set(tunnelhttp.HeaderTarget, st.app.InternalURL.String())
	h.Set(tunnelhttp.HeaderApp, st.app.ID)
	if st.app.TLSSkipVerify {
		h.Set(tunnelhttp.HeaderTLSSkipVerify, "1")
	}
	h.Set(tunnelhttp.HeaderRequestID, st.rid)
	h.Set("X-Forwarded-For", st.clientIP)
	h.Set("X-Forwarded-Proto", st.scheme)
	h.Set("X-Forwarded-Host", pr.In.Host)
	h.Set("Forwarded", forwarded(st.clientIP, pr.In.Host, st.scheme))
	if st.app.HostHeader == catalog.HostHeaderExternal {
		out.Host = pr.In.Host
	} else {
		out.Host = st.app.InternalURL.Host
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = nil // do not let Go add its own
	}
}

func forwarded(ip, host, proto string) string {
	forVal := ip
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
		forVal = `"[` + ip + `]"`
	}
	return "for=" + forVal + ";host=" + quoteIfNeeded(host) + ";proto=" + proto
}

func quoteIfNeeded(s string) string {
	if strings.ContainsAny(s, ":;,\" ") {
		return strconv.Quote(s)
	}
	return s
}

func clientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// modifyResponse turns a connector's own error answer into an error the
// ErrorHandler renders. The backend's responses pass untouched, except
// that the app's Strict-Transport-Security replaces the backend's, and a
// 101 must be the backend's answer to this WebSocket handshake, after
// which only WebSocket frames reach the backend (upgrade.Guard).
func modifyResponse(resp *http.Response) error {
	if code := resp.Header.Get(tunnelhttp.HeaderError); code != "" {
		return &connectorError{code: code}
	}
	tunnelhttp.StripInternal(resp.Header)
	st := stateOf(resp.Request.Context())
	if st.scheme == "https" && st.app.HSTS != "" {
		delete(resp.Header, "Strict-Transport-Security")
	}
	return upgrade.GuardResponse(resp)
}

func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	st.errReason = err.Error()
	if r.Context().Err() != nil {
		return // the client went away; nothing to answer
	}
	p := errpage.Page{Status: http.StatusBadGateway, Title: "Bad gateway", RequestID: st.rid}
	var ce *connectorError
	switch {
	case errors.Is(err, errNoConnector), errors.Is(err, errRelayNoConnector), errors.Is(err, errPathClosed):
		// The connector group is an internal name: it goes to the log
		// (errReason), not to the user's page.
		st.errReason = fmt.Sprintf("%v (connector group %s)", err, st.app.ConnectorGroup)
		p.Status, p.Title = http.StatusServiceUnavailable, "Application unreachable"
		p.Reason = fmt.Sprintf("%s cannot be reached right now: no connector to its network is online. Try again in a minute; if it persists, tell your administrator.", st.app.Title())
	case errors.Is(err, errBackendTimeout):
		p.Status, p.Title = http.StatusGatewayTimeout, "Backend timeout"
		p.Reason = fmt.Sprintf("%s did not answer within %s.", st.app.Title(), st.app.BackendTimeout)
	case errors.Is(err, errLost):
		p.Reason = "The connector was lost before the application answered."
	case errors.As(err, &ce):
		p.Title, p.Reason = connectorReason(ce.code)
	case errors.Is(err, upgrade.ErrRefused):
		p.Reason = "The application answered the WebSocket handshake with another protocol."
	default:
		p.Reason = "The connector could not be reached through the tunnel."
	}
	errpage.Write(w, r, p)
}

func connectorReason(code string) (title, reason string) {
	switch code {
	case tunnelhttp.ErrBackendRefused:
		return "Backend refused", "The application refused the connection from its connector."
	case tunnelhttp.ErrBackendTLS:
		return "Backend TLS failed", "The connector could not establish a trusted TLS connection to the application."
	case tunnelhttp.ErrNotAllowed:
		return "Destination not allowed", "The connector's allow-list does not include this application's internal address."
	case tunnelhttp.ErrBackendTimeout:
		return "Backend timeout", "The application did not answer in time."
	case tunnelhttp.ErrConnectorLost:
		return "Bad gateway", "The connector was lost before the application answered."
	case tunnelhttp.ErrUpgradeRefused:
		return "Protocol upgrade refused", "Only WebSocket upgrades pass, and the application answered with another protocol."
	default:
		return "Bad gateway", "The application broke off the exchange."
	}
}

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
