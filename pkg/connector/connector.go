// Package connector is the runtime of connectord, the daemon that runs on an
// internal host next to the apps. It dials out to the mesh, attaches as a
// WireGuard peer with its credential, keeps the attachment alive, renews the
// credential through the tunnel, and serves the mesh's requests on its tunnel
// address only, forwarding them through package egress.
//
// It never listens on the host network, except for an optional loopback
// health and metrics endpoint.
package connector

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/backoff"
	"github.com/postern/postern/pkg/egress"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/lifecycle"
	"github.com/postern/postern/pkg/loopback"
	"github.com/postern/postern/pkg/streambind"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/wgkey"
	"github.com/postern/postern/pkg/wgnet"
)

// Config configures a Connector.
type Config struct {
	// StateDir holds the key and the state written by Enroll. Required.
	StateDir string
	// HTTPClient talks to the mesh nodes' HTTPS API; nil means
	// http.DefaultClient (system roots, and HTTPS_PROXY/NO_PROXY honoured).
	// The stream carrier dials through a clone of its *http.Transport, so
	// it uses the same roots and the same proxy.
	HTTPClient *http.Client
	// AllowList restricts the internal destinations. An empty list is
	// refused unless AllowAny is set. Loopback, link-local and cloud
	// metadata addresses are reached only when an IP rule names them.
	AllowList egress.AllowList
	// AllowAny lets an empty AllowList allow every destination (but the
	// special ones above); false means New refuses an empty list.
	AllowAny bool
	// BackendRootCAs verifies HTTPS internal apps; nil means system roots.
	BackendRootCAs *x509.CertPool
	// Bind carries WireGuard over UDP; nil means a connected-socket bind
	// that opens no listening socket. The connector wraps it in a
	// streambind.ClientBind, which adds the stream carrier.
	Bind conn.Bind
	// Carrier forces the carrier to every mesh node: CarrierUDP or
	// CarrierStream. The zero value means CarrierAuto: UDP first, the
	// stream when no handshake completes within UDPTimeout, and back to
	// UDP when a probe every ProbeInterval finds that it works again.
	Carrier streambind.Carrier
	// UDPTimeout bounds the wait for a first handshake over UDP in auto
	// mode; zero means 2s.
	UDPTimeout time.Duration
	// ProbeInterval is the time between UDP probes while on the stream in
	// auto mode; zero means 30s.
	ProbeInterval time.Duration
	// HealthAddr, if set, serves /healthz (live), /readyz (attached and
	// not draining) and /metrics there; it must be a loopback address.
	HealthAddr string
	// Keepalive is the WireGuard persistent keepalive; zero means 5s.
	Keepalive time.Duration
	// PingInterval is the time between liveness checks of each mesh node
	// through the tunnel; zero means 1s. After PingFailures failures in a
	// row (zero means 3) the connector attaches again.
	PingInterval time.Duration
	PingFailures int
	// Attach is how many mesh nodes, the nearest by measured RTT, the
	// connector attaches to at once; zero means 2.
	Attach int
	// Reevaluate is the time between measurements of the RTT to every
	// known mesh node (jittered by ±10%), after which the connector moves
	// to a node that is clearly nearer (by more than 20% and 5 ms); zero
	// means 5 minutes.
	Reevaluate time.Duration
	// MeasureCount is how many pings, after one warm-up request, measure
	// one node's RTT (the fastest counts); zero means 3.
	MeasureCount int
	// DrainWait bounds the wait for requests in flight when the connector
	// gives up a mesh node for a nearer one; zero means 30s.
	DrainWait time.Duration
	// BackoffMin and BackoffMax bound the jittered retry delay; zero means
	// 200ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives metrics and is served on HealthAddr; nil means a
	// new registry.
	Registry *prometheus.Registry
	// Now is the clock of every decision by the time of day (credential
	// renewal, re-evaluation, recent losses, handshake age); nil means
	// time.Now. Timers and measured round trips use the runtime's clock
	// (tests run them under testing/synctest).
	Now func() time.Time
	// Reenroll, if set, gets the connector a fresh credential for its own
	// key without the tunnel, and returns it with its expiry: a connector
	// enrolled by workload identity enrols again with its current
	// ServiceAccount token. The renewal falls back to it when renewing
	// through the tunnel fails in the last sixth of the credential's life
	// or after it expired (the mesh out of reach for longer than the short
	// credential lives). Nil means renewal through the tunnel only.
	Reenroll func(ctx context.Context) (credential string, expires time.Time, err error)
	// Tracer records a span per request and per backend round trip and
	// sends the trace context to the backend (pkg/egress); nil means
	// tracing is off and the mesh's trace headers pass unchanged.
	Tracer trace.Tracer
}

// Connector is a running connector.
type Connector struct {
	cfg    Config
	logger *slog.Logger
	key    wgkey.Private
	node   *wgnet.Node
	bind   *streambind.ClientBind
	egress *egress.Handler

	mu    sync.Mutex // guards the following
	state *State

	attached  sync.Map // mesh URL -> *meshLink
	nAttached atomic.Int32

	tun   tunnel
	conns connTracker   // the in-tunnel server's connections
	kick  chan struct{} // wakes the manager; capacity 1
	loops sync.WaitGroup

	mmu        sync.Mutex // guards the following
	runs       map[string]*run
	rtts       map[string]time.Duration // by mesh URL, from the last measurement
	measuredAt time.Time
	down       map[string]bool   // mesh URLs lost or failing since the last reevaluation
	alias      map[string]string // mesh URL -> the node id its attach answered
	draining   bool

	tunnelL net.Listener      // the in-tunnel server's, bound by New
	healthL net.Listener      // nil without HealthAddr
	own     lifecycle.Closers // what New acquired, released by Close

	// life ends when Close is called (cause ErrClosed); it ends Run.
	life *lifecycle.Life
}

type meshLink struct {
	url     string
	nodeID  string
	pub     wgkey.Public
	tunAddr netip.Addr
	ep      netip.AddrPort // the node's UDP endpoint: its route in the bind
	auto    bool           // the carrier is chosen automatically: probe UDP
	carrier atomic.Value   // streambind.Carrier now in use
}

func (l *meshLink) carrierNow() streambind.Carrier {
	c, _ := l.carrier.Load().(streambind.Carrier)
	return c
}

// New loads the key and state from cfg.StateDir, starts the WireGuard
// node and binds the in-tunnel and health listeners; Run attaches to the
// mesh. On an error New releases all it acquired; otherwise Close does.
func New(cfg Config) (*Connector, error) {
	c, err := build(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.open(); err != nil {
		_ = c.life.Close(c.own.Close, nil)
		return nil, err
	}
	c.registerMetrics()
	return c, nil
}

// build checks cfg, fills in its defaults, and loads the key and state; it
// starts nothing (the attachment manager's tests run it under
// testing/synctest without a WireGuard node).
func build(cfg Config) (*Connector, error) {
	if cfg.Keepalive == 0 {
		cfg.Keepalive = 5 * time.Second
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.PingFailures == 0 {
		cfg.PingFailures = 3
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = 200 * time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UDPTimeout == 0 {
		cfg.UDPTimeout = 2 * time.Second
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 30 * time.Second
	}
	if cfg.Attach == 0 {
		cfg.Attach = 2
	}
	if cfg.Reevaluate == 0 {
		cfg.Reevaluate = 5 * time.Minute
	}
	if cfg.MeasureCount == 0 {
		cfg.MeasureCount = 3
	}
	if cfg.DrainWait == 0 {
		cfg.DrainWait = 30 * time.Second
	}
	if cfg.Attach < 0 || cfg.Reevaluate < 0 || cfg.MeasureCount < 0 || cfg.DrainWait < 0 {
		return nil, fmt.Errorf("connector: Attach, Reevaluate, MeasureCount and DrainWait must not be negative")
	}
	carrier, err := streambind.ParseCarrier(string(cfg.Carrier))
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	cfg.Carrier = carrier
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := loopback.CheckAddr(cfg.HealthAddr); err != nil {
		return nil, fmt.Errorf("connector: health address %w: the connector never listens on the host network", err)
	}
	if cfg.AllowList.Empty() && !cfg.AllowAny {
		return nil, errors.New("connector: no allow-list: name the internal destinations the mesh may reach (--allow '10.1.0.0/16:443,intranet.corp'), or pass --allow-any to allow every destination but loopback, link-local and cloud metadata")
	}
	state, err := LoadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	key, err := wgkey.Load(filepath.Join(cfg.StateDir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	c := &Connector{cfg: cfg, key: key, state: state,
		kick: make(chan struct{}, 1), runs: map[string]*run{}, down: map[string]bool{}, alias: map[string]string{}}
	c.logger = logger.With("connector", state.ConnectorID)
	c.tun = wgTunnel{c}
	c.life = lifecycle.NewLife(ErrClosed)
	c.egress = egress.New(egress.Config{AllowList: cfg.AllowList, RootCAs: cfg.BackendRootCAs,
		Logger: c.logger, Registerer: cfg.Registry, Tracer: cfg.Tracer})
	c.own.AddFunc(c.egress.Close)
	return c, nil
}

// open starts the WireGuard node and binds the in-tunnel and health
// listeners, adding each to c.own.
func (c *Connector) open() error {
	udp := c.cfg.Bind
	if udp == nil {
		udp = defaultBind()
	}
	c.bind = streambind.NewClientBind(streambind.ClientConfig{UDP: udp, BackoffMin: c.cfg.BackoffMin,
		BackoffMax: c.cfg.BackoffMax, Logger: c.logger.With("component", "streambind")})
	c.own.Add(c.bind.Close)
	var err error
	if c.node, err = wgnet.New(wgnet.Config{PrivateKey: c.key, Bind: c.bind, Logger: c.logger}); err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	c.own.Add(c.node.Close)
	if c.tunnelL, err = c.node.Listen(tunnelhttp.Port); err != nil {
		return fmt.Errorf("connector: tunnel listener: %w", err)
	}
	c.own.Add(c.tunnelL.Close)
	if c.cfg.HealthAddr != "" {
		if c.healthL, err = net.Listen("tcp", c.cfg.HealthAddr); err != nil {
			return fmt.Errorf("connector: health listener: %w", err)
		}
		c.own.Add(c.healthL.Close)
	}
	return nil
}

// ID returns the connector id.
func (c *Connector) ID() string { return c.State().ConnectorID }

// State returns a copy of the current state.
func (c *Connector) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.state
}

// Node returns the WireGuard node, for status and tests.
func (c *Connector) Node() *wgnet.Node { return c.node }

// Attached reports how many mesh nodes the connector is attached to.
func (c *Connector) Attached() int { return int(c.nAttached.Load()) }

// Run serves the tunnel, attaches to the Attach nearest mesh nodes, keeps
// the attachments alive and moves them as RTTs change, until ctx ends (it
// returns nil) or Close (ErrClosed) or a server fails (that failure, after
// it stopped everything else). Run may be called once.
func (c *Connector) Run(ctx context.Context) error {
	ctx, end, err := c.life.Begin(ctx)
	if errors.Is(err, ErrClosed) {
		return err
	} else if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	defer end()
	srv := &http.Server{Handler: c.egress, ReadHeaderTimeout: 30 * time.Second, ConnState: c.conns.track,
		ErrorLog: slog.NewLogLogger(c.logger.Handler(), slog.LevelDebug)}
	servers := []lifecycle.Server{{HTTP: srv, Listener: c.tunnelL}}
	if c.healthL != nil {
		health := &http.Server{Handler: c.healthHandler(), ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, lifecycle.Server{HTTP: health, Listener: c.healthL})
	}
	loops, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	var bg sync.WaitGroup
	bg.Go(func() { c.manage(loops) })
	bg.Go(func() { c.renewLoop(loops, c.renew) })
	c.logger.Info("connector_started", "tunnel_addr", c.node.Addr(), "mesh_urls", c.State().MeshURLs,
		"mesh_nodes", len(c.State().Nodes), "attach_k", c.cfg.Attach)
	err = lifecycle.Serve(ctx, servers, func(failed bool) {
		stopLoops()
		if failed || c.life.Closed() {
			return // lifecycle.Serve closes the servers
		}
		sctx, cancel := context.WithTimeout(c.life.Context(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	stopLoops()
	bg.Wait()
	c.loops.Wait()
	c.egress.Close()
	switch {
	case c.life.Closed():
		return ErrClosed
	case err != nil:
		return fmt.Errorf("connector: %w", err)
	}
	return nil
}

// Close stops the connector as when its host dies: the WireGuard node
// goes first (nothing more leaves the host), then a Run in progress ends
// and Close waits for it, then it releases everything New acquired. It is
// idempotent; a concurrent call waits for the first.
func (c *Connector) Close() error {
	return c.life.Close(c.node.Close, c.own.Close)
}

// wgTunnel is the connector's real tunnel: WireGuard through the bind.
type wgTunnel struct{ c *Connector }

var _ tunnel = wgTunnel{}

func (t wgTunnel) connect(ctx context.Context, meshURL string, resp enroll.AttachResponse, prev *meshLink) (*meshLink, error) {
	c := t.c
	mode := c.cfg.Carrier
	ep, err := resolveEndpoint(ctx, resp.Endpoint, meshURL)
	if err != nil {
		if mode == streambind.CarrierUDP {
			return nil, fmt.Errorf("attach: mesh endpoint: %w", err)
		}
		// Behind a proxy the host may not resolve here at all; the
		// stream needs no address of ours, only a route key.
		c.logger.Info("udp_endpoint_unresolved", "mesh_url", meshURL, "error", err)
		ep, mode = placeholderEndpoint(meshURL), streambind.CarrierStream
	}
	if prev != nil {
		// Re-attaching means the mesh node lost us (restart, or our
		// packets stopped getting through): drop the old WireGuard session
		// so the next packet starts a fresh handshake at once.
		_ = c.node.RemovePeer(prev.pub)
		if prev.ep != ep {
			c.bind.RemoveTarget(prev.ep)
		}
	}
	nodeKey := resp.PublicKey
	proof := func(cred string) string {
		p, err := enroll.Proof(c.key, nodeKey, streambind.Path, c.cfg.Now(), cred, "")
		if err != nil {
			c.logger.Warn("stream_proof_failed", "mesh_url", meshURL, "error", err)
		}
		return p
	}
	c.bind.SetTarget(ep, streambind.Target{URL: meshURL, Credential: c.credential, Proof: proof, Transport: c.cfg.HTTPClient.Transport})
	link := &meshLink{url: meshURL, nodeID: resp.NodeID, pub: resp.PublicKey, tunAddr: resp.PublicKey.Addr(), ep: ep,
		auto: mode == streambind.CarrierAuto}
	carrier, err := c.connect(ctx, link, mode)
	if err != nil {
		return nil, err
	}
	link.carrier.Store(carrier)
	return link, nil
}

func (t wgTunnel) watch(ctx context.Context, link *meshLink) { t.c.watch(ctx, link) }

func (t wgTunnel) unlink(link *meshLink) {
	_ = t.c.node.RemovePeer(link.pub)
	t.c.bind.RemoveTarget(link.ep)
}

// resolveEndpoint turns the mesh's advertised UDP endpoint into an address;
// an empty or unspecified host means the host of the mesh URL.
func resolveEndpoint(ctx context.Context, endpoint, meshURL string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		u, err := url.Parse(meshURL)
		if err != nil {
			return netip.AddrPort{}, err
		}
		host = u.Hostname()
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	p, err := net.LookupPort("udp", port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(p)), nil
}

// watch pings the mesh node through the tunnel until PingFailures pings in
// a row fail or ctx ends. In auto mode, while on the stream, it probes UDP
// every ProbeInterval and moves back to it when it works.
func (c *Connector) watch(ctx context.Context, link *meshLink) {
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	failures := 0
	nextProbe := c.cfg.Now().Add(c.cfg.ProbeInterval)
	for {
		if link.auto && link.carrierNow() == streambind.CarrierStream && c.cfg.Now().After(nextProbe) {
			c.probeUDP(ctx, link)
			nextProbe = c.cfg.Now().Add(c.cfg.ProbeInterval)
		}
		pctx, cancel := context.WithTimeout(ctx, c.cfg.PingInterval)
		_, err := c.node.Ping(pctx, link.pub)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
		} else if failures++; failures >= c.cfg.PingFailures {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// renewLoop renews the credential with renew (c.renew: through the tunnel)
// once two thirds of its lifetime have passed, retrying with backoff.
func (c *Connector) renewLoop(ctx context.Context, renew func(context.Context) error) {
	bo := backoff.New(c.cfg.BackoffMin, c.cfg.BackoffMax)
	for {
		s := c.State()
		life := s.CredentialExpires.Sub(s.CredentialIssued)
		due := s.CredentialIssued.Add(life * 2 / 3)
		wait := due.Sub(c.cfg.Now())
		if wait > 0 && !backoff.Sleep(ctx, min(wait, time.Hour)) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if wait > time.Hour {
			continue
		}
		if err := renew(ctx); err != nil {
			c.logger.Warn("credential_renew_failed", "error", err, "credential_expires", s.CredentialExpires, "retry_in_ms", bo.Delay().Milliseconds())
			if !bo.Wait(ctx) {
				return
			}
			continue
		}
		bo.Reset()
	}
}

// tunnelClient returns a client of an attached node's API over the
// tunnel, and a func that closes its connections.
func (c *Connector) tunnelClient(op string) (*enroll.Client, func(), error) {
	var link *meshLink
	c.attached.Range(func(_, v any) bool { link = v.(*meshLink); return false })
	if link == nil {
		return nil, nil, fmt.Errorf("%s: not attached to any mesh node", op)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: c.node.DialContext}, Timeout: 15 * time.Second}
	return &enroll.Client{BaseURL: "http://" + netip.AddrPortFrom(link.tunAddr, tunnelhttp.Port).String(), HTTPClient: hc}, hc.CloseIdleConnections, nil
}

// UpdateSlot asks an attached mesh node for the group's current update
// slot (see enroll.UpdateSlotPath); alone asks for it even when no other
// connector of the group serves.
func (c *Connector) UpdateSlot(ctx context.Context, version string, alone bool) (enroll.UpdateSlotResponse, error) {
	cl, done, err := c.tunnelClient("update slot")
	if err != nil {
		return enroll.UpdateSlotResponse{}, err
	}
	defer done()
	return cl.UpdateSlot(ctx, c.State().Credential, version, alone)
}

// renew renews the credential through the tunnel, falling back to
// Config.Reenroll late in the credential's life.
func (c *Connector) renew(ctx context.Context) error {
	err := c.renewThroughTunnel(ctx)
	if err == nil || c.cfg.Reenroll == nil {
		return err
	}
	s := c.State()
	if c.cfg.Now().Before(s.CredentialExpires.Add(-s.CredentialExpires.Sub(s.CredentialIssued) / 6)) {
		return err
	}
	cred, expires, rerr := c.cfg.Reenroll(ctx)
	if rerr != nil {
		return errors.Join(err, fmt.Errorf("re-enrol: %w", rerr))
	}
	if err := c.setCredential(cred, expires); err != nil {
		return err
	}
	c.logger.Info("credential_reenrolled", "credential_expires", expires, "tunnel_renew_error", err.Error())
	return nil
}

func (c *Connector) renewThroughTunnel(ctx context.Context) error {
	cl, done, err := c.tunnelClient("renew")
	if err != nil {
		return err
	}
	defer done()
	resp, err := cl.Renew(ctx, c.State().Credential)
	if err != nil {
		return err
	}
	if err := c.setCredential(resp.Credential, resp.Expires); err != nil {
		return err
	}
	c.logger.Info("credential_renewed", "credential_expires", resp.Expires)
	return nil
}

// setCredential stores a fresh credential, in memory and on disk.
func (c *Connector) setCredential(cred string, expires time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := *c.state
	next.Credential, next.CredentialIssued, next.CredentialExpires = cred, c.cfg.Now(), expires
	if err := next.Save(c.cfg.StateDir); err != nil {
		return err
	}
	c.state = &next
	return nil
}

// Readiness is what the health endpoint's /readyz answers.
type Readiness struct {
	Ready bool `json:"ready"`
	// NotReady says why not, empty when Ready.
	NotReady []string `json:"not_ready,omitempty"`
}

// Readiness reports whether the connector serves: attached to at least
// one mesh node and not draining.
func (c *Connector) Readiness() Readiness {
	var why []string
	if c.isDraining() {
		why = append(why, "draining: shutting down")
	}
	if c.Attached() == 0 {
		why = append(why, "not attached to any mesh node")
	}
	return Readiness{Ready: len(why) == 0, NotReady: why}
}

// healthHandler serves /healthz (liveness: the process runs; the JSON
// lists the attachments), /readyz (readiness, see Readiness) and /metrics.
func (c *Connector) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		type link struct {
			MeshURL  string  `json:"mesh_url"`
			MeshNode string  `json:"mesh_node"`
			Carrier  string  `json:"carrier"`
			RTTms    float64 `json:"rtt_ms"` // -1: not measured or unreachable
		}
		rtts := c.rttSnapshot()
		var links []link
		c.attached.Range(func(_, v any) bool {
			l := v.(*meshLink)
			d, ok := rtts[l.url]
			if !ok {
				d = unreachable
			}
			links = append(links, link{l.url, l.nodeID, string(l.carrierNow()), rttMillis(d)})
			return true
		})
		writeJSON(w, http.StatusOK, map[string]any{"connector": c.ID(), "attached": links, "tunnel_addr": c.node.Addr()})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := c.Readiness()
		status := http.StatusOK
		if !rd.Ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, rd)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.cfg.Registry, promhttp.HandlerOpts{}))
	return mux
}
