package edge

import (
	"errors"
	"net/http"
	"net/http/httputil"
	"strconv"

	"github.com/postern/postern/pkg/accesslog"
	"github.com/postern/postern/pkg/duplex"
	"github.com/postern/postern/pkg/reqid"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// RelayHandler serves requests that another mesh node relays to this one
// through the mesh tunnel. They were authenticated, authorised and
// rewritten at the node the user reached (identity headers, signed
// assertion, forwarding headers, request id), so this node changes nothing
// in them: it only sends each to one of its own connectors of the app's
// group (named by tunnelhttp.HeaderApp), with the same retry rules, and
// streams the connector's answer back untouched. It never relays further,
// so a request crosses at most one relay.
//
// The caller must admit only mesh nodes of the cluster (by the tunnel
// source address, which WireGuard authenticates): a relayed request's
// identity headers are trusted.
func (h *Handler) RelayHandler() http.Handler { return http.HandlerFunc(h.serveRelay) }

func (h *Handler) serveRelay(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Now()
	defer duplex.Serve(w, r)() // see pkg/duplex
	st := statePool.Get().(*reqState)
	*st = reqState{rid: r.Header.Get(tunnelhttp.HeaderRequestID), clientIP: clientIP(r.RemoteAddr), scheme: "http", relayed: true}
	defer statePool.Put(st)
	if !reqid.Valid(st.rid) {
		// A peer node sends its own id; anything else (absent, another
		// format) gets a fresh one rather than reaching the logs as is.
		st.rid = reqid.New()
	}
	rw := accesslog.Wrap(w)
	defer rw.Release()
	app, ok := h.cfg.Catalog().App(r.Header.Get(tunnelhttp.HeaderApp))
	if !ok {
		st.errReason = "relayed request names no app of this node's catalogue"
		relayRefuse(rw, http.StatusServiceUnavailable, tunnelhttp.ErrRelayNoConnector)
		h.logAccess(r, rw, st, start)
		return
	}
	st.app = app
	if h.cfg.Tracer != nil {
		// The first node's trace context: the tunnel peer is a mesh node.
		r = h.startSpan(r, st, "relay", true)
	}
	h.serveProxy(h.relay, rw, r, st, start)
}

func (h *Handler) newRelayProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:      relayRewrite,
		Transport:    &tunnelTransport{router: h.cfg.Local, maxAttempts: h.cfg.MaxAttempts, tracer: h.cfg.Tracer},
		ErrorHandler: h.relayError,
		BufferPool:   bufferPool{},
		ErrorLog:     h.proxy.ErrorLog,
	}
}

// relayRewrite keeps the request as the first node built it. ReverseProxy
// removed the X-Forwarded-* headers from pr.Out; here they are the first
// node's, so they go back in.
func relayRewrite(pr *httputil.ProxyRequest) {
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := pr.In.Header[k]; ok {
			pr.Out.Header[k] = v
		}
	}
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "connector" // replaced per attempt by the transport
	pr.Out.Host = pr.In.Host
	if _, ok := pr.Out.Header["User-Agent"]; !ok {
		pr.Out.Header["User-Agent"] = nil
	}
}

// relayError answers the relaying node with a connector-style error, which
// its own edge turns into the user's error page; relay_no_connector tells
// it that no connector got the request, so it may try another path.
func (h *Handler) relayError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	st.errReason = err.Error()
	if r.Context().Err() != nil {
		return
	}
	switch {
	case errors.Is(err, errNoConnector), errors.Is(err, errNotSent):
		relayRefuse(w, http.StatusServiceUnavailable, tunnelhttp.ErrRelayNoConnector)
	case errors.Is(err, errBackendTimeout):
		relayRefuse(w, http.StatusGatewayTimeout, tunnelhttp.ErrBackendTimeout)
	case errors.Is(err, errLost):
		relayRefuse(w, http.StatusBadGateway, tunnelhttp.ErrConnectorLost)
	default:
		relayRefuse(w, http.StatusBadGateway, tunnelhttp.ErrBackendError)
	}
}

func relayRefuse(w http.ResponseWriter, status int, code string) {
	w.Header().Set(tunnelhttp.HeaderError, code)
	w.Header().Set("Content-Length", strconv.Itoa(0))
	w.WriteHeader(status)
}
