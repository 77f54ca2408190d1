// Package meshnode is the runtime of meshd, the regional mesh node. It wires
// the public HTTPS listener (edge proxy and enrolment API), the userspace
// WireGuard node that connectors attach to, the connector pool with its
// probes, the catalogue with live reload, and the loopback admin endpoint.
package meshnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/acmecert"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/bearer"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/iplimit"
	"github.com/postern/postern/pkg/loopback"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/streambind"
	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/wgkey"
	"github.com/postern/postern/pkg/wgnet"
)

// Config configures a Node.
type Config struct {
	// ID names the node in logs, status and attach answers; empty means
	// the host name.
	ID string
	// Region is the node's region label; empty means "local".
	Region string
	// Listen is the public listener: a TCP address such as ":443".
	// Required unless Listener is set.
	Listen string
	// Listener, if set, is used instead of listening on Listen.
	Listener net.Listener
	// TLS serves the public listener with HTTP/1.1 and HTTP/2; nil means
	// plain HTTP, which is allowed only with PlainHTTP set.
	TLS *tls.Config
	// ACME, if set, obtains and renews the public listener's certificates
	// by ACME (TLS-ALPN-01) for the catalogue's hosts and the cluster's
	// public URL host; TLS's certificate, if any, then serves every other
	// name. Its Dir defaults to <StateDir>/acme, Hosts to those hosts,
	// Logger to Logger.
	ACME *acmecert.Config
	// PlainHTTP allows serving without TLS, for local use only.
	PlainHTTP bool
	// WGListen is the UDP address WireGuard binds; its zero value means
	// all interfaces, random port.
	WGListen netip.AddrPort
	// WGBind, if set, replaces the UDP bind (simulated regions, tests).
	// Either way the node also accepts the stream carrier on its public
	// listener (streambind.Path), for connectors whose UDP is blocked.
	WGBind conn.Bind
	// WGAdvertise is the UDP endpoint ("host:port") connectors are told to
	// send WireGuard to; empty means WGListen's port on the host name that
	// connectors used to reach the API.
	WGAdvertise string
	// StateDir holds the node's WireGuard key, node key, the used
	// enrolment tokens, the deny-list and the mesh members it knows.
	// Required.
	StateDir string
	// NodeCredential is the node's authority-signed node credential (from
	// "meshd node credential"), naming this node's id, region and the keys
	// in StateDir. Required with Cluster; a lone node needs none.
	NodeCredential authority.NodeCredential
	// SessionRevocationSpan is how long a sign-out's revocation of a
	// session lives: longer than a global session plus the longest app
	// token minted at its end. Zero means revoke.DefaultSessionSpan (24h).
	SessionRevocationSpan time.Duration
	// APIRateLimit is the steady rate of enrolment API requests allowed
	// per client address; zero means the enrolment server's default (5/s),
	// rate.Inf disables limiting (tests).
	APIRateLimit rate.Limit
	// Authority signs and verifies enrolment tokens and credentials.
	// Required.
	Authority *authority.Authority
	// CatalogPath is the catalogue file. Required unless CatalogSource is
	// set.
	CatalogPath string
	// CatalogSource, when set, is where the catalogue is read from instead
	// of CatalogPath (awsapi.S3Source: one S3 object that every node of
	// the mesh reads); nil means the file CatalogPath.
	CatalogSource catalog.Source
	// UpdateSlot is the length of the connector groups' update slots (one
	// connector of a group restarts into a new version per slot); zero
	// means enroll.UpdateSlotLength (15m). Tests shorten it.
	UpdateSlot time.Duration
	// CatalogPoll is the interval at which the catalogue file is checked
	// for changes; zero means 2s, negative disables watching.
	CatalogPoll time.Duration
	// AdminListen, if set, serves /healthz, /metrics and /status there. It
	// must be a loopback address.
	AdminListen string
	// Pool tunes connector probing and dialling; its Dial, Pinger and
	// Logger are filled in by New.
	Pool pool.Config
	// CredentialTTL is the lifetime of issued credentials; zero means the
	// enrolment server's default.
	CredentialTTL time.Duration
	// AuthURL is the auth functions' base URL (https://auth.example.com).
	// It enables pre-authenticated apps; empty means such apps answer 503.
	AuthURL string
	// AuthHTTPClient fetches the auth functions' JWKS; nil means a client
	// with system roots.
	AuthHTTPClient *http.Client
	// AuthStartupWait bounds how long Run tries to fetch the auth
	// functions' JWKS at start when the catalogue has pre-authenticated
	// apps, before it refuses to start; zero means 30s. A certificate
	// error refuses at once.
	AuthStartupWait time.Duration
	// BearerHTTPClient fetches the discovery documents and keys of the
	// issuers whose bearer tokens apps accept (Entra, trusted workload
	// issuers); nil means a client with system roots.
	BearerHTTPClient *http.Client
	// Cluster, if set, joins the node to a mesh of nodes (gossip, relay,
	// latency-aware routing); nil means a lone node that serves only the
	// connectors attached to it.
	Cluster *ClusterConfig
	// DrainTimeout bounds the graceful shutdown after DrainDelay: the
	// node stops accepting connections on the public listener, waits for
	// the requests in flight there, then takes no new relayed requests and
	// waits for those in flight before leaving the cluster; it waits this
	// long at most. Zero means 10s, negative skips draining.
	DrainTimeout time.Duration
	// DrainDelay is how long the node keeps accepting new connections
	// after it announced the drain and /readyz turned 503, so that load
	// balancers polling /readyz take it out of rotation before its
	// listener closes; zero means the listener closes at once.
	DrainDelay time.Duration
	// Limits bounds what one client or tunnel peer may cost the node;
	// the zero value means the defaults of Limits.
	Limits Limits
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the metrics; nil means a new registry.
	Registry *prometheus.Registry
	// Audit receives one access_decision record per request to an app
	// (the audit stream, apart from Logger); nil writes none.
	Audit *slog.Logger
	// Tracer records the spans of the requests this node serves or
	// relays (pkg/edge) and sends their trace context to the connectors;
	// nil means tracing is off (pkg/tracing builds it from OTEL_*).
	Tracer trace.Tracer
}

// Node is a running mesh node.
type Node struct {
	cfg         Config
	logger      *slog.Logger
	catalog     *catalog.Store
	acme        *acmecert.Manager // nil without ACME
	wgKey       wgkey.Private
	nodeKey     authority.Key
	revoked     *revoke.List
	revMetrics  *revocationMetrics
	enforceKick chan struct{}
	wg          *wgnet.Node
	pool        *pool.Pool
	edge        *edge.Handler
	enroll      *enroll.Server
	stream      *streambind.Server
	used        *authority.UsedTokens
	public      *iplimit.Listener
	tunnel      *iplimit.Listener
	mesh        *mesh // nil for a lone node
	limits      Limits

	connMetrics *connMetrics

	auth *edge.AuthConfig // nil without sign-in

	killed      atomic.Bool
	serving     atomic.Bool // Run has started its listeners
	draining    atomic.Bool // shutting down: not ready, no new attachments
	relayClosed atomic.Bool // the drain ended relaying for other nodes
	closeOnce   sync.Once
}

// New builds a Node: it loads the catalogue (an invalid one is an error),
// the WireGuard key, and the used-token list, and binds the listeners.
func New(cfg Config) (*Node, error) {
	if cfg.TLS == nil && cfg.ACME == nil && !cfg.PlainHTTP {
		return nil, errors.New("meshnode: no TLS certificate configured (plain HTTP must be enabled explicitly, for local use only)")
	}
	if cfg.Authority == nil {
		return nil, errors.New("meshnode: no mesh authority key")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("meshnode: no state directory")
	}
	if err := loopback.CheckAddr(cfg.AdminListen); err != nil {
		return nil, fmt.Errorf("meshnode: admin address %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "local"
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ID)
	src := cfg.CatalogSource
	if src == nil {
		src = catalog.FileSource(cfg.CatalogPath)
	}
	store, err := catalog.NewStoreFrom(context.Background(), src, logger)
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	if _, err := InitKeys(cfg.StateDir); err != nil {
		return nil, err
	}
	key, err := wgkey.Load(filepath.Join(cfg.StateDir, wgKeyFile))
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	nodeKey, err := authority.LoadKey(filepath.Join(cfg.StateDir, nodeKeyFile))
	if err != nil {
		return nil, fmt.Errorf("meshnode: node key: %w", err)
	}
	if cfg.Cluster != nil || cfg.AuthURL != "" || !cfg.NodeCredential.IsZero() {
		if cfg.NodeCredential.IsZero() {
			return nil, errors.New("meshnode: a node of a cluster, or serving pre-authenticated apps (it signs their sign-in requests), needs its node credential; mint it with \"meshd node credential\"")
		}
		if _, err := cfg.Authority.VerifyNodeCredential(cfg.NodeCredential.Bytes()); err != nil {
			return nil, fmt.Errorf("meshnode: node credential: %w", err)
		}
		if err := checkCredential(cfg.NodeCredential, cfg.ID, cfg.Region, key.Public(), nodeKey.Public()); err != nil {
			return nil, err
		}
	}
	// A node that ran before has its deny-list journal (and, in a
	// cluster, its roster) beside the used tokens: the used tokens alone
	// missing means they were lost, never silently forgotten.
	usedPath := filepath.Join(cfg.StateDir, usedTokensFile)
	lost := !exists(usedPath) && (exists(filepath.Join(cfg.StateDir, revokedFile)) || exists(filepath.Join(cfg.StateDir, rosterFile)))
	if lost && cfg.Cluster == nil {
		return nil, fmt.Errorf("meshnode: %s is missing although this node ran before: starting without it could accept a used enrolment token again. Restore it from a backup; or, if no token was ever used here, write an empty one: echo '{\"version\":1,\"tokens\":[]}' > %s", usedPath, usedPath)
	}
	used, err := authority.OpenUsedTokens(usedPath, nil, lost)
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	if lost {
		logger.Warn("used_tokens_lost", "path", usedPath,
			"consequence", "enrolments are refused until the record is restored from the other mesh nodes")
	}
	revoked, err := revoke.Open(filepath.Join(cfg.StateDir, revokedFile), nil)
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	cfg.TLS = hardenTLS(cfg.TLS)
	n := &Node{cfg: cfg, logger: logger, catalog: store, used: used, wgKey: key, nodeKey: nodeKey, revoked: revoked,
		enforceKick: make(chan struct{}, 1), limits: cfg.Limits.withDefaults(), connMetrics: newConnMetrics(cfg.Registry)}
	if cfg.ACME != nil {
		publicHost := ""
		if cfg.Cluster != nil {
			publicHost = publicHostOf(cfg.Cluster.PublicURL)
		}
		var acmeTLS *tls.Config
		if n.acme, acmeTLS, err = newACME(cfg, store, publicHost); err != nil {
			return nil, fmt.Errorf("meshnode: %w", err)
		}
		n.cfg.TLS = hardenTLS(acmeTLS)
	}
	n.revMetrics = newRevocationMetrics(cfg.Registry)
	udp := cfg.WGBind
	if udp == nil {
		udp = wgnet.NewUDPBind(cfg.WGListen.Addr())
	}
	n.stream, err = streambind.NewServer(streambind.ServerConfig{UDP: udp, Authorizer: n, Logger: logger.With("component", "streambind")})
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	wgn, err := wgnet.New(wgnet.Config{PrivateKey: key, Bind: n.stream, ListenAddr: cfg.WGListen, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	n.wg = wgn
	pc := cfg.Pool
	pc.Dial, pc.Pinger, pc.Logger = wgn.DialContext, wgn, logger
	n.pool = pool.New(pc)
	authCfg, err := newAuthConfig(cfg, nodeKey, logger)
	if err != nil {
		wgn.Close()
		return nil, err
	}
	if cfg.Listener != nil {
		n.public = n.limitPublic(cfg.Listener)
	} else {
		l, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			wgn.Close()
			return nil, fmt.Errorf("meshnode: public listener: %w", err)
		}
		n.public = n.limitPublic(l)
	}
	tl, err := wgn.Listen(tunnelhttp.Port)
	if err != nil {
		n.public.Close()
		wgn.Close()
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	n.tunnel = n.limitTunnel(tl)
	var router edge.Router = localRouter{n.pool}
	if cfg.Cluster != nil {
		if n.mesh, err = newMesh(n, *cfg.Cluster); err != nil {
			n.public.Close()
			n.tunnel.Close()
			wgn.Close()
			return nil, err
		}
		router = n.mesh.router
	}
	if authCfg != nil {
		authCfg.Revoker = n
	}
	n.auth = authCfg
	n.edge = edge.New(edge.Config{Catalog: store.Current, Router: router, Local: localRouter{n.pool}, Logger: logger, Registerer: cfg.Registry,
		Auth: authCfg, Limits: n.limits.Unauth, Denied: revoked, Audit: cfg.Audit, NodeID: cfg.ID, Tracer: cfg.Tracer,
		Bearer: bearer.New(bearer.Config{HTTPClient: cfg.BearerHTTPClient, Logger: logger.With("component", "bearer")})})
	ec := enroll.Config{Authority: cfg.Authority, Used: used, NodeKey: key, Checks: checks{n}, Revoker: n, Attacher: n,
		CredentialTTL: cfg.CredentialTTL, Logger: logger, RateLimit: cfg.APIRateLimit, UpdateSlot: cfg.UpdateSlot}
	if n.mesh != nil {
		ec.Redeemer = n.mesh.redeem
	}
	n.enroll, err = enroll.NewServer(ec)
	if err != nil {
		n.closeEarly()
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	n.registerMetrics()
	return n, nil
}

// Addr returns the public listener's address.
func (n *Node) Addr() net.Addr { return n.public.Addr() }

// Conns returns the connection tables of the public and the tunnel
// listener: who holds how many connections open now.
func (n *Node) Conns() (public, tunnel *iplimit.Conns) { return n.public.Conns(), n.tunnel.Conns() }

// WireGuard returns the node's WireGuard node.
func (n *Node) WireGuard() *wgnet.Node { return n.wg }

// Pool returns the connector pool.
func (n *Node) Pool() *pool.Pool { return n.pool }

// Catalog returns the catalogue store.
func (n *Node) Catalog() *catalog.Store { return n.catalog }

// Attach implements enroll.Attacher: it makes the credentialed connector a
// WireGuard peer and a member of its group's pool, and tells it the other
// mesh nodes it may attach to.
func (n *Node) Attach(ctx context.Context, c authority.Credential) (enroll.AttachResponse, error) {
	g, ok := n.catalog.Current().Group(c.Group)
	if !ok {
		return enroll.AttachResponse{}, fmt.Errorf("%w: connector group %q is not in the catalogue", enroll.ErrAttachRefused, c.Group)
	}
	if g.PinRegion && g.Region != n.cfg.Region {
		return enroll.AttachResponse{}, fmt.Errorf("%w: connector group %q is pinned to region %s and this node is in %s", enroll.ErrAttachRefused, c.Group, g.Region, n.cfg.Region)
	}
	if slices.Contains(g.ExcludeRegions, n.cfg.Region) {
		return enroll.AttachResponse{}, fmt.Errorf("%w: connector group %q excludes region %s", enroll.ErrAttachRefused, c.Group, n.cfg.Region)
	}
	if n.draining.Load() {
		return enroll.AttachResponse{}, fmt.Errorf("%w: this mesh node is draining", enroll.ErrAttachRefused)
	}
	if n.isNodeKey(c.PublicKey) {
		return enroll.AttachResponse{}, fmt.Errorf("%w: the key of connector %s is a mesh node's", enroll.ErrAttachRefused, c.ConnectorID)
	}
	if n.revoked.ConnectorRevoked(c.ConnectorID, c.PublicKey) {
		n.revMetrics.refused.WithLabelValues("attach").Inc()
		return enroll.AttachResponse{}, fmt.Errorf("%w: connector %s is revoked", enroll.ErrAttachRefused, c.ConnectorID)
	}
	if err := n.wg.AddPeer(wgnet.Peer{PublicKey: c.PublicKey}); err != nil {
		return enroll.AttachResponse{}, fmt.Errorf("meshnode: attach %s: %w", c.ConnectorID, err)
	}
	n.pool.Upsert(c.ConnectorID, c.Group, c.PublicKey)
	resp := enroll.AttachResponse{NodeID: n.cfg.ID, Region: n.cfg.Region, PublicKey: n.wg.PublicKey(),
		Endpoint: n.advertise(), TunnelAddr: n.wg.Addr(), CredentialExpires: c.Expires}
	if n.mesh != nil {
		resp.Nodes = n.mesh.nodesFor(g)
		n.mesh.poke()
	} else {
		resp.Nodes = []enroll.NodeInfo{{ID: n.cfg.ID, Region: n.cfg.Region}}
	}
	return resp, nil
}

// Nodes implements enroll.NodeLister: the mesh nodes a connector of the
// credential's group may attach to.
func (n *Node) Nodes(ctx context.Context, c authority.Credential) ([]enroll.NodeInfo, error) {
	g, ok := n.catalog.Current().Group(c.Group)
	if !ok {
		return nil, fmt.Errorf("%w: connector group %q is not in the catalogue", enroll.ErrAttachRefused, c.Group)
	}
	if n.mesh == nil {
		return []enroll.NodeInfo{{ID: n.cfg.ID, Region: n.cfg.Region}}, nil
	}
	return n.mesh.nodesFor(g), nil
}

// Detach implements enroll.Attacher: drain stops new requests to the
// connector and lets those in flight finish; otherwise the connector is
// removed as a peer and from the pool. Removing a draining connector first
// waits (until ctx ends) for every request this node sent it to finish:
// the connector cannot see requests still on their way through the
// tunnel, so only this node knows when it is safe to let it go.
func (n *Node) Detach(ctx context.Context, c authority.Credential, drain bool) error {
	if n.isNodeKey(c.PublicKey) {
		n.logger.Warn("detach_refused", "connector", c.ConnectorID, "reason", "the key is a mesh node's, not a connector's")
		return nil // only connector peers are ever removed here
	}
	if drain {
		n.pool.SetDraining(c.PublicKey, true)
	} else if cur := n.pool.Get(c.PublicKey); cur != nil {
		if cur.Draining() && cur.Outstanding() > 0 {
			n.logger.Info("connector_detach_waiting", "connector", cur.ID, "in_flight", cur.Outstanding())
			if !cur.WaitIdle(ctx) {
				n.logger.Warn("connector_detach_cut", "connector", cur.ID, "in_flight", cur.Outstanding(), "error", ctx.Err())
			}
		}
		n.pool.Remove(c.PublicKey)
		n.wg.RemovePeer(c.PublicKey)
	}
	if n.mesh != nil {
		n.mesh.poke()
	}
	return nil
}

// AuthorizeStream implements streambind.Authorizer: a stream carrier is
// open to a connector whose credential verifies, with a proof that it
// holds the credential's key, whose group is in the catalogue and which is
// not revoked; it is bound to the credential's WireGuard key.
func (n *Node) AuthorizeStream(_ context.Context, credential, proof string) (streambind.Grant, error) {
	c, err := n.cfg.Authority.VerifyCredential(credential)
	if err != nil {
		return streambind.Grant{}, fmt.Errorf("meshnode: authorize stream: %w", err)
	}
	if err := enroll.VerifyProof(n.wgKey, c.PublicKey, proof, streambind.Path, time.Now(), credential, ""); err != nil {
		return streambind.Grant{}, fmt.Errorf("meshnode: authorize stream of %s: %w", c.ConnectorID, err)
	}
	if _, ok := n.catalog.Current().Group(c.Group); !ok {
		return streambind.Grant{}, fmt.Errorf("meshnode: authorize stream of %s: connector group %q is not in the catalogue", c.ConnectorID, c.Group)
	}
	if n.isNodeKey(c.PublicKey) {
		return streambind.Grant{}, fmt.Errorf("meshnode: authorize stream of %s: the key is a mesh node's", c.ConnectorID)
	}
	if n.revoked.ConnectorRevoked(c.ConnectorID, c.PublicKey) {
		n.revMetrics.refused.WithLabelValues("stream").Inc()
		return streambind.Grant{}, fmt.Errorf("meshnode: authorize stream of %s: the connector is revoked", c.ConnectorID)
	}
	return streambind.Grant{PublicKey: c.PublicKey, ConnectorID: c.ConnectorID, Expires: c.Expires}, nil
}

// Streams returns the stream carrier's counters.
func (n *Node) Streams() streambind.ServerStats { return n.stream.Stats() }

func (n *Node) advertise() string {
	if n.cfg.WGAdvertise != "" {
		return n.cfg.WGAdvertise
	}
	host := ""
	if a := n.cfg.WGListen.Addr(); a.IsValid() && !a.IsUnspecified() {
		host = a.String()
	}
	return net.JoinHostPort(host, fmt.Sprint(n.wg.ListenPort()))
}

// Handler returns the public handler: the reserved /.postern/v1/ API on
// every host, and the edge proxy for everything else.
func (n *Node) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuseExcess(w, r) {
			return
		}
		if r.URL.Path == streambind.Path {
			n.stream.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/.postern/v1/") && r.URL.Path != enroll.RenewPath {
			n.enroll.ServeHTTP(w, r)
			return
		}
		n.edge.ServeHTTP(w, r)
	})
}

// Run serves until ctx ends, then shuts down gracefully (see drain). It
// returns the first listener's failure, or nil. It refuses to start
// (ErrAuthKeys) when the catalogue has pre-authenticated apps and the auth
// functions' JWKS cannot be fetched and verified.
func (n *Node) Run(ctx context.Context) error {
	if err := n.checkAuthKeys(ctx); err != nil {
		return err
	}
	errLog := slog.NewLogLogger(n.logger.Handler(), slog.LevelDebug)
	var al net.Listener
	if n.cfg.AdminListen != "" {
		var err error
		if al, err = net.Listen("tcp", n.cfg.AdminListen); err != nil {
			return fmt.Errorf("meshnode: admin listener: %w", err)
		}
	}
	lim := n.limits
	pub := &http.Server{Handler: n.Handler(), TLSConfig: n.cfg.TLS, ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout: lim.IdleTimeout, MaxHeaderBytes: lim.MaxHeaderBytes, ConnContext: iplimit.ConnContext, ErrorLog: errLog}
	tl := n.tunnel
	// Relayed requests carry a client's header (at most MaxHeaderBytes)
	// plus the first node's identity and forwarding headers.
	tun := &http.Server{Handler: n.tunnelHandler(), ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout,
		MaxHeaderBytes: 2 * lim.MaxHeaderBytes, ErrorLog: errLog}
	servers := []*http.Server{pub, tun}
	// The background work (probes, catalogue, gossip, sign-in keys) goes
	// on through the drain and stops after it.
	life, stopLife := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopLife()
	failed := make(chan error, 3)
	serve := func(s *http.Server, l net.Listener, tlsOn bool) {
		var err error
		if tlsOn {
			err = s.ServeTLS(l, "", "")
		} else {
			err = s.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("listener_failed", "addr", l.Addr().String(), "error", err)
			failed <- fmt.Errorf("meshnode: serve %s: %w", l.Addr(), err)
		}
	}
	wg.Go(func() { serve(pub, n.public, n.cfg.TLS != nil) })
	wg.Go(func() { serve(tun, tl, false) })
	if al != nil {
		admin := &http.Server{Handler: n.AdminHandler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: lim.IdleTimeout, ErrorLog: errLog}
		servers = append(servers, admin)
		wg.Go(func() { serve(admin, al, false) })
	}
	wg.Go(func() { n.pool.Run(life) })
	wg.Go(func() { n.enforceLoop(life) })
	if n.acme != nil {
		wg.Go(func() { n.acme.Run(life) })
	}
	if n.cfg.CatalogPoll >= 0 {
		poll := n.cfg.CatalogPoll
		if poll == 0 {
			poll = 2 * time.Second
		}
		wg.Go(func() { n.catalog.Watch(life, poll) })
	}
	if n.mesh != nil {
		wg.Go(func() { n.mesh.run(life) })
	}
	wg.Go(func() { n.fetchSignInKeys(life) })
	n.serving.Store(true)
	n.logger.Info("mesh_node_started", "region", n.cfg.Region, "public_addr", n.public.Addr().String(),
		"wg_port", n.wg.ListenPort(), "tunnel_addr", n.wg.Addr(), "tls", n.cfg.TLS != nil, "cluster", n.mesh != nil)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
	}
	n.draining.Store(true) // not ready from here, also without a drain (killed, DrainTimeout < 0)
	if !n.killed.Load() && runErr == nil {
		n.drain(pub)
	}
	stopLife()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	n.edge.CloseStreams()
	n.pool.Close()
	return runErr
}

// drain takes the node out of service without cutting a request:
//
//  1. it turns not ready (/readyz 503) and announces the drain to the
//     cluster, whose nodes then relay through it only the groups they
//     have no other path for;
//  2. after DrainDelay (load balancers take it out of rotation) it stops
//     accepting on the public listener and waits for the requests in
//     flight there;
//  3. it refuses new relayed requests (relay_no_connector: the sender
//     tries another path), waits for those in flight, and leaves the
//     cluster.
//
// Steps 2 and 3 take DrainTimeout at most; under steady load the drain
// ends as soon as the requests in flight end.
func (n *Node) drain(pub *http.Server) {
	if n.cfg.DrainTimeout < 0 {
		return
	}
	timeout := n.cfg.DrainTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	start := time.Now()
	n.draining.Store(true)
	if n.mesh != nil {
		n.mesh.cluster.UpdateMeta(func(m *gossip.Meta) { m.Draining = true })
	}
	n.logger.Info("mesh_node_draining", "drain_delay_ms", n.cfg.DrainDelay.Milliseconds(), "drain_timeout_ms", timeout.Milliseconds())
	if n.cfg.DrainDelay > 0 {
		time.Sleep(n.cfg.DrainDelay) // the listener keeps accepting while load balancers notice
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pub.Shutdown(ctx)
	public := time.Since(start)
	n.relayClosed.Store(true)
	idle := waitIdle(ctx, func() bool { return n.inFlight() == 0 })
	n.logger.Info("mesh_node_drained", "waited_ms", time.Since(start).Milliseconds(), "public_ms", public.Milliseconds(),
		"in_flight", n.inFlight(), "complete", idle)
	if n.mesh != nil {
		if err := n.mesh.cluster.Leave(2 * time.Second); err != nil {
			n.logger.Warn("gossip_leave_failed", "error", err)
		}
	}
}

// waitIdle polls idle every 10ms until it holds or ctx ends; it reports
// whether it held.
func waitIdle(ctx context.Context, idle func() bool) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !idle() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// Kill makes the next shutdown abrupt, as a crash: no drain, no leave. Tests
// and bench use it to simulate a dead node.
func (n *Node) Kill() { n.killed.Store(true) }

// inFlight counts the requests this node has sent to a connector or a relay
// node and not finished.
func (n *Node) inFlight() int64 {
	var total int64
	for _, s := range n.pool.Statuses() {
		total += s.Outstanding
	}
	if n.mesh != nil {
		for _, r := range n.mesh.relays.List() {
			total += r.Outstanding()
		}
	}
	return total
}

// tunnelHandler serves the API that connectors reach through the tunnel:
// credential renewal, authenticated by the WireGuard source address.
// Mesh nodes of the cluster also reach it to relay requests to this node's
// connectors; everyone else is refused.
func (n *Node) tunnelHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(enroll.RenewPath, n.enroll)
	mux.Handle(enroll.UpdateSlotPath, n.enroll)
	if n.mesh != nil {
		mux.Handle(tokensPath, n.mesh.meshOnly(n.mesh.tokensHandler()))
		mux.Handle("/", n.mesh.relayGate(n.edge.RelayHandler()))
	}
	return mux
}

// Close stops the WireGuard node. Call it after Run returns; it is
// idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.mesh != nil {
			n.mesh.relays.Close()
			n.mesh.cluster.Close()
			n.mesh.tokenClient.CloseIdleConnections()
		}
		n.pool.Close()
		n.public.Close()
		n.tunnel.Close()
		n.wg.Close()
	})
	return nil
}

// closeEarly releases what New opened before it failed.
func (n *Node) closeEarly() {
	n.tunnel.Close()
	if n.mesh != nil {
		n.mesh.cluster.Close()
	}
	n.public.Close()
	n.wg.Close()
}

func (n *Node) registerMetrics() {
	n.cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statusCollector{n: n})
}
