package meshnode

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/iplimit"
)

// Defaults of Limits.
const (
	// DefaultConnsPerClient caps the public connections of one client
	// address. A browser holds about 6 HTTP/1.1 connections or 1 HTTP/2
	// connection per host, so this leaves room for a few hundred users
	// behind one NAT address; raise it for larger ones.
	DefaultConnsPerClient = 512
	// DefaultMaxHeaderBytes bounds a request's header block on the public
	// listener.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultIdleTimeout closes keep-alive connections idle this long, on
	// the public and the tunnel listener. It is longer than the connection
	// pools' 90s, so a pooled tunnel connection is closed by its client
	// first.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultReadHeaderTimeout bounds the time a client may take to send a
	// request's header (slow clients hold a connection and its buffers).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultTunnelConnsPerPeer caps the connections a connector holds open
	// to the node's tunnel listener; a connector needs one or two (renewal).
	DefaultTunnelConnsPerPeer = 64
	// DefaultTunnelConnsPerNode caps the connections another mesh node of
	// the cluster holds open to the tunnel listener: one per relayed
	// request in flight.
	DefaultTunnelConnsPerNode = 4096
	// excessGrace is how long a public connection past its client's cap
	// lives to be told 429.
	excessGrace = 5 * time.Second
)

// Limits bounds what one client can cost a node. Every zero value means
// the default named in its comment.
type Limits struct {
	// ConnsPerClient caps the connections one client (an IPv4 address or
	// an IPv6 /64) holds open on the public listener; a connection past it
	// is answered 429 with Retry-After and closed. Zero means
	// DefaultConnsPerClient; negative means no cap.
	ConnsPerClient int
	// Unauth bounds the edge's answers to requests without a verified
	// identity, per client; see edge.Limits.
	Unauth edge.Limits
	// MaxHeaderBytes bounds a request's header on the public listener;
	// zero means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// IdleTimeout closes keep-alive connections idle this long on the
	// public and tunnel listeners; zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds the time to read a request's header on
	// every listener; zero means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// TunnelConnsPerPeer caps the connections one connector (by tunnel
	// address) holds open to the tunnel listener; past it a connection is
	// closed at once. Zero means DefaultTunnelConnsPerPeer; negative means
	// no cap.
	TunnelConnsPerPeer int
	// TunnelConnsPerNode is TunnelConnsPerPeer for the other mesh nodes of
	// the cluster, which relay requests; zero means
	// DefaultTunnelConnsPerNode.
	TunnelConnsPerNode int
}

// withDefaults fills in the zero values.
func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.ConnsPerClient, DefaultConnsPerClient)
	def(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	def(&l.TunnelConnsPerPeer, DefaultTunnelConnsPerPeer)
	def(&l.TunnelConnsPerNode, DefaultTunnelConnsPerNode)
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	return l
}

// aeadSuites are the TLS 1.2 suites the public listener offers: ECDHE
// with AES-GCM or ChaCha20-Poly1305 only (no CBC, no SHA-1, no RSA key
// exchange). TLS 1.3 suites are all AEAD.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// hardenTLS returns a copy of c that speaks TLS 1.2 or later with AEAD
// suites only; suites c names that are not AEAD are dropped.
func hardenTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	c = c.Clone()
	c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
	var kept []uint16
	for _, s := range c.CipherSuites {
		if slices.Contains(aeadSuites, s) {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		kept = slices.Clone(aeadSuites)
	}
	c.CipherSuites = kept
	return c
}

// connMetrics counts connections refused for being past a cap.
type connMetrics struct {
	refused *prometheus.CounterVec
}

func newConnMetrics(reg prometheus.Registerer) *connMetrics {
	m := &connMetrics{refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_mesh_connections_refused_total",
		Help: "Connections refused because their client (public) or tunnel peer already held as many as allowed, by listener.",
	}, []string{"listener"})}
	reg.MustRegister(m.refused)
	return m
}

// limitPublic wraps the public listener with the per-client cap.
func (n *Node) limitPublic(l net.Listener) *iplimit.Listener {
	perClient := n.limits.ConnsPerClient
	refused := n.connMetrics.refused.WithLabelValues("public")
	return iplimit.Listen(l, iplimit.ListenConfig{
		PerClient:   func(netip.Addr) int { return perClient },
		ExcessGrace: excessGrace,
		Refused:     func(netip.Addr) { refused.Inc() },
	})
}

// limitTunnel wraps the tunnel listener with the per-peer cap: mesh nodes
// of the cluster get TunnelConnsPerNode, everyone else (connectors)
// TunnelConnsPerPeer. Connections past it are closed at once.
func (n *Node) limitTunnel(l net.Listener) *iplimit.Listener {
	refused := n.connMetrics.refused.WithLabelValues("tunnel")
	return iplimit.Listen(l, iplimit.ListenConfig{
		Key: iplimit.Exact,
		PerClient: func(a netip.Addr) int {
			if n.mesh != nil {
				if _, ok := n.mesh.isMeshNode(a); ok {
					return n.limits.TunnelConnsPerNode
				}
			}
			return n.limits.TunnelConnsPerPeer
		},
		Refused: func(netip.Addr) { refused.Inc() },
	})
}

// refuseExcess answers a request on a public connection past its client's
// cap: 429, Retry-After, and the connection closes.
func refuseExcess(w http.ResponseWriter, r *http.Request) bool {
	if !iplimit.Excess(r.Context()) {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(iplimit.RetryAfterSeconds(excessGrace)))
	w.Header().Set("Connection", "close")
	if r.TLS != nil {
		w.Header().Set("Strict-Transport-Security", catalog.DefaultHSTS)
	}
	http.Error(w, "429 too many connections from your address; try again later", http.StatusTooManyRequests)
	return true
}
