// Package egress is the connector's side of the request path: it takes the
// HTTP requests that a mesh node sends through the tunnel and forwards each to
// the internal URL the mesh names, subject to the operator's allow-list, then
// streams the backend's response back.
//
// It runs on the internal host, inside connectord, behind a listener on the
// connector's tunnel address; it never listens on the host network.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern/postern/pkg/accesslog"
	"github.com/postern/postern/pkg/duplex"
	"github.com/postern/postern/pkg/splice"
	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/upgrade"
)

// Config configures a Handler.
type Config struct {
	// AllowList restricts the internal destinations; the zero value allows
	// every destination but the special ones (loopback, link-local, cloud
	// metadata), which only an explicit IP rule opens.
	AllowList AllowList
	// RootCAs verifies HTTPS internal apps; nil means the system roots.
	RootCAs *x509.CertPool
	// Resolver resolves internal names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// DialTimeout bounds one TCP connect to the internal app; zero means 10s.
	DialTimeout time.Duration
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// Registerer receives the connector's request metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
	// Tracer records a "connector" server span per request, continuing
	// the mesh's trace context, and a "backend" client span per backend
	// round trip whose context the backend gets in traceparent; nil
	// means tracing is off: no span, and the mesh's trace headers reach
	// the backend unchanged.
	Tracer trace.Tracer
}

// Handler forwards tunnel requests to internal apps. It is safe for
// concurrent use.
type Handler struct {
	cfg     Config
	logger  *slog.Logger
	verify  *http.Transport
	skip    *http.Transport
	proxy   *httputil.ReverseProxy
	metrics *metrics
	dialer  *dialer
	streams splice.Set // TCP streams being carried now

	identities *identityStore // identity blocks held for references

	inFlight atomic.Int64 // requests being served now
}

type targetKey struct{}

type target struct {
	url  *url.URL
	skip bool
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	h := &Handler{cfg: cfg, logger: cfg.Logger, identities: newIdentityStore(identityBytes, identityIdle, time.Now)}
	h.metrics = newMetrics(cfg.Registerer, h.identities)
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	d := &dialer{allow: cfg.AllowList, resolver: cfg.Resolver, d: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}}
	h.dialer = d
	h.verify = newTransport(d, &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12})
	h.skip = newTransport(d, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	h.proxy = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      roundTripper{h},
		ModifyResponse: modifyResponse,
		ErrorHandler:   h.proxyError,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn),
	}
	return h
}

func newTransport(d *dialer, tc *tls.Config) *http.Transport {
	return &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
}

// InFlight returns how many requests the handler is serving now, counting
// a streaming response until its body ends (or the mesh goes away).
func (h *Handler) InFlight() int64 { return h.inFlight.Load() }

// Close closes idle backend connections and every TCP stream.
func (h *Handler) Close() {
	h.verify.CloseIdleConnections()
	h.skip.CloseIdleConnections()
	h.streams.CloseAll()
}

type roundTripper struct{ h *Handler }

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	t, _ := r.Context().Value(targetKey{}).(*target)
	tr := rt.h.verify
	if t != nil && t.skip {
		tr = rt.h.skip
	}
	var span trace.Span
	if rt.h.cfg.Tracer != nil {
		r, span = rt.h.backendSpan(r)
	}
	resp, err := tr.RoundTrip(r)
	if span != nil {
		tracing.EndRoundTrip(span, resp, err, attribute.String("server.address", r.URL.Host))
	}
	if rec, ok := r.Context().Value(cutKey{}).(*cutRecorder); ok && err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = accesslog.RecordCut(resp.Body, &rec.err) // an upgrade's body must stay writable
	}
	return resp, err
}

// modifyResponse drops the backend's Postern- headers, which only the
// connector may set, and checks a 101 (the mesh checks the same; the
// connector does not rely on it).
func modifyResponse(resp *http.Response) error {
	tunnelhttp.StripInternal(resp.Header)
	return upgrade.GuardResponse(resp)
}

func rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(*target)
	host := pr.In.Host
	pr.SetURL(t.url)
	pr.Out.Host = host // the mesh chose the Host header (internal or external)
	// The mesh already set the forwarding headers; keep them as they are.
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
		if v, ok := pr.In.Header[k]; ok {
			pr.Out.Header[k] = v
		}
	}
	tunnelhttp.StripInternal(pr.Out.Header)
	upgrade.StripH2C(pr.Out.Header)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	// The proxy forwards the request body while it copies the response
	// back: full duplex, with no read of the body outliving the handler
	// (pkg/duplex).
	defer duplex.Serve(w, r)()
	start := time.Now()
	rid := r.Header.Get(tunnelhttp.HeaderRequestID)
	if h.cfg.Tracer != nil && !isTCP(r.Header) {
		var span trace.Span
		r, span = h.startServerSpan(r)
		defer span.End()
	}
	if isTCP(r.Header) {
		h.serveTCP(w, r, rid, start)
		return
	}
	rw := accesslog.Wrap(w)
	defer rw.Release()
	if err := upgrade.CheckRequest(r); err != nil {
		writeError(rw, http.StatusBadRequest, tunnelhttp.ErrUpgradeRefused)
		h.noteStatus(r, rid, rw.Status())
		h.logger.Warn("upgrade_refused", "request_id", rid, "error", err)
		h.observe(rw, start, "")
		return
	}
	t, err := parseTarget(r.Header)
	if err != nil {
		writeError(rw, http.StatusBadRequest, tunnelhttp.ErrBadTarget)
		h.noteStatus(r, rid, rw.Status())
		h.logger.Warn("bad_target", "request_id", rid, "error", err)
		h.observe(rw, start, "")
		return
	}
	switch res, err := h.takeIdentity(rw, r); res {
	case identityUnknown:
		// Routine after a restart or an eviction: the mesh node sends
		// the request again in full, the backend never saw this one.
		writeError(rw, http.StatusPreconditionFailed, tunnelhttp.ErrIdentityUnknown)
		h.noteStatus(r, rid, rw.Status())
		h.logger.Debug("identity_unknown", "request_id", rid)
		h.countIdentity(res)
		return
	case identityRefused:
		h.logger.Warn("identity_refused", "request_id", rid, "error", err)
		h.countIdentity(res)
	default:
		h.countIdentity(res)
	}
	h.serveProxy(rw, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)), t, rid, start)
}

// serveProxy forwards r and writes the request's log line, also when the
// response is cut mid-body: ReverseProxy then panics with
// http.ErrAbortHandler, which is raised again after the line is written,
// so the server cuts the tunnel connection and the mesh sees the cut.
func (h *Handler) serveProxy(rw *accesslog.Writer, r *http.Request, t *target, rid string, start time.Time) {
	cut := &cutRecorder{}
	defer func() {
		v := recover()
		var buf [12]slog.Attr
		attrs := append(buf[:0], slog.String("request_id", rid), slog.String("method", r.Method), slog.String("target_host", t.url.Host),
			slog.Int("status", rw.Status()), slog.Int64("bytes", rw.Bytes()), slog.Float64("duration_ms", msSince(start)))
		side := ""
		if v == http.ErrAbortHandler {
			side = "mesh"
			if r.Context().Err() == nil && cut.err != nil {
				side = "backend"
			}
		}
		attrs = append(attrs, slog.Bool("truncated", side != ""))
		if tid := h.noteStatus(r, rid, rw.Status()); tid != "" {
			attrs = append(attrs, slog.String("trace_id", tid))
		}
		if side != "" {
			attrs = append(attrs, slog.String("truncated_by", side), slog.String("error", cut.reason(side)))
		}
		h.observe(rw, start, side)
		accesslog.Line(r.Context(), h.logger, "request", attrs...)
		if v != nil {
			panic(v)
		}
	}()
	h.proxy.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), cutKey{}, cut)))
}

// cutKey carries a request's *cutRecorder to the transport.
type cutKey struct{}

// cutRecorder keeps the error that ended a backend response body early.
type cutRecorder struct{ err error }

func (c *cutRecorder) reason(side string) string {
	if side == "backend" {
		return "response cut: " + c.err.Error()
	}
	return "response cut: the mesh went away"
}

// observe counts one request; truncated names the side that cut its
// response mid-body ("backend" or "mesh"), or is empty.
func (h *Handler) observe(rw *accesslog.Writer, start time.Time, truncated string) {
	if h.metrics == nil {
		return
	}
	code := strconv.Itoa(rw.Status())
	h.metrics.requests.WithLabelValues(code).Inc()
	h.metrics.duration.Observe(time.Since(start).Seconds())
	h.metrics.bytes.Add(float64(rw.Bytes()))
	if truncated != "" {
		h.metrics.cut.WithLabelValues(truncated).Inc()
	}
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

func parseTarget(h http.Header) (*target, error) {
	raw := h.Get(tunnelhttp.HeaderTarget)
	if raw == "" {
		return nil, errors.New("no target")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, errors.New("target must be an http or https URL with a host")
	}
	return &target{url: u, skip: h.Get(tunnelhttp.HeaderTLSSkipVerify) == "1" && u.Scheme == "https"}, nil
}

func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rid := r.Header.Get(tunnelhttp.HeaderRequestID)
	if r.Context().Err() != nil {
		// The mesh gave up (client gone or backend timeout at the mesh).
		h.logger.Info("request_cancelled", "request_id", rid, "error", err)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	code := classify(err)
	h.logger.Warn("backend_failed", "request_id", rid, "code", code, "error", err)
	writeError(w, http.StatusBadGateway, code)
}

func classify(err error) string {
	var (
		opErr   *net.OpError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
	)
	switch {
	case errors.Is(err, ErrNotAllowed):
		return tunnelhttp.ErrNotAllowed
	case errors.Is(err, upgrade.ErrRefused):
		return tunnelhttp.ErrUpgradeRefused
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alert),
		errors.As(err, &unkAuth), errors.As(err, &hostErr):
		return tunnelhttp.ErrBackendTLS
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return tunnelhttp.ErrBackendRefused
	default:
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return tunnelhttp.ErrBackendRefused
		}
		return tunnelhttp.ErrBackendError
	}
}

func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set(tunnelhttp.HeaderError, code)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, code)
}

type dialer struct {
	allow    AllowList
	resolver *net.Resolver
	d        net.Dialer
}

// DialContext dials addr only where the allow-list permits. A literal IP
// must be allowed by AllowsAddr. A name is resolved first and only its
// allowed addresses are dialled (the address, not the name, so that the
// answer checked is the answer used): an address is allowed when a name
// rule allows the name and the address is not special, or when an IP rule
// allows the address.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("egress: dial %s: %w", addr, err)
	}
	port64, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("egress: dial %s: bad port", addr)
	}
	port := uint16(port64)
	if ip, err := netip.ParseAddr(host); err == nil {
		if !d.allow.AllowsAddr(netip.AddrPortFrom(ip, port)) {
			return nil, fmt.Errorf("egress: dial %s: %w", addr, ErrNotAllowed)
		}
		return d.d.DialContext(ctx, network, addr)
	}
	byName := d.allow.AllowsName(host, port)
	ips, err := d.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("egress: dial %s: %w", addr, err)
	}
	var lastErr error = fmt.Errorf("egress: dial %s: %w", addr, ErrNotAllowed)
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), port)
		if !(byName && !IsSpecial(ap.Addr())) && !d.allow.AllowsAddr(ap) {
			continue
		}
		c, err := d.d.DialContext(ctx, network, ap.String())
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

type metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	bytes    prometheus.Counter
	cut      *prometheus.CounterVec
	identity *prometheus.CounterVec
}

// countIdentity counts what became of a request's identity block.
func (h *Handler) countIdentity(res identityResult) {
	if h.metrics == nil || res == identityNone {
		return
	}
	h.metrics.identity.WithLabelValues([...]string{"", "held", "refused", "expanded", "unknown"}[res]).Inc()
}

func newMetrics(reg prometheus.Registerer, ids *identityStore) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_connector_requests_total", Help: "Requests forwarded to internal apps, by status code.",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "postern_connector_request_duration_seconds", Help: "Time from a tunnel request's arrival to the end of its response.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postern_connector_response_bytes_total", Help: "Response body bytes sent back through the tunnel.",
		}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_connector_responses_truncated_total",
			Help: "Responses cut mid-body after their status was sent, by the side that cut them (backend, or mesh: the mesh node went away).",
		}, []string{"side"}),
	}
	m.identity = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_connector_identity_blocks_total",
		Help: "Identity blocks of tunnel requests, by what became of them: held (sent in full and kept), refused (sent in full, malformed, not kept), expanded (a reference answered from the blocks held), unknown (a reference to a block not held: the mesh sends it again in full).",
	}, []string{"result"})
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "postern_connector_identity_blocks_held_bytes", Help: "Size of the identity blocks held for references (bounded at 8 MiB).",
	}, func() float64 { _, n := ids.stats(); return float64(n) })
	reg.MustRegister(m.requests, m.duration, m.bytes, m.cut, m.identity, held)
	return m
}
