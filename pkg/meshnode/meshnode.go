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
	"github.com/postern/postern/pkg/certfile"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/iplimit"
	"github.com/postern/postern/pkg/lifecycle"
	"github.com/postern/postern/pkg/loopback"
	"github.com/postern/postern/pkg/nodekeys"
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
	// plain HTTP (or TLSFiles), which is allowed only with PlainHTTP set.
	TLS *tls.Config
	// TLSFiles, if set, serves the public listener's certificate from
	// files (meshd's --tls-cert and --tls-key), reloaded when they change
	// (pkg/certfile) every CertPoll; nil means TLS's certificates, fixed.
	// TLS must then be nil.
	TLSFiles *certfile.Files
	// CertPoll is the interval at which TLSFiles are checked for a new
	// certificate; zero means certfile.DefaultWatchInterval (2s),
	// negative disables watching.
	CertPoll time.Duration
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
	// Pool tunes connector probing and dialling; its Dial, Pinger, Logger
	// and Now are filled in by New.
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
	// Now is the clock of decisions by the time of day (stream carrier
	// proofs, connectors' attach times); nil means time.Now. Timers use
	// the runtime's clock (tests run them under testing/synctest).
	Now func() time.Time
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
	fileCerts   []servedCert      // the expiries of TLS's fixed certificates, read at start
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

	auth         *edge.AuthConfig // nil without sign-in
	assertKeys   *nodekeys.Set    // the mesh's assertion keys; nil without sign-in
	assertIssuer string           // their issuer

	admin net.Listener      // nil without AdminListen
	own   lifecycle.Closers // what New acquired, released by Close

	killed      atomic.Bool
	serving     atomic.Bool // Run has started its listeners
	draining    atomic.Bool // shutting down: not ready, no new attachments
	relayClosed atomic.Bool // the drain ended relaying for other nodes

	// life ends when Close is called (cause ErrClosed): it cuts a start,
	// a drain and Run short.
	life *lifecycle.Life
}

// New builds a Node: it loads the catalogue (an invalid one is an error),
// the keys and the used-token list, and binds every listener (public,
// WireGuard, tunnel, admin, gossip), so that a bind failure is New's error
// and Run starts nothing it cannot finish. On an error New releases all it
// acquired; otherwise Close does.
func New(cfg Config) (_ *Node, err error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ID)
	n := &Node{cfg: cfg, logger: logger, enforceKick: make(chan struct{}, 1), limits: cfg.Limits.withDefaults()}
	n.life = lifecycle.NewLife(ErrClosed)
	defer func() {
		if err != nil {
			_ = n.life.Close(n.own.Close, nil)
		}
	}()
	if err := n.loadState(); err != nil {
		return nil, err
	}
	n.fileCerts = fileCertExpiries(n.cfg.TLS) // before ACME wraps it
	if err := n.bindTransport(); err != nil {
		return nil, err
	}
	if err := n.bindListeners(); err != nil {
		return nil, err
	}
	if err := n.buildServices(); err != nil {
		return nil, err
	}
	return n, nil
}

// checkConfig refuses an incomplete cfg and fills in its defaults.
func checkConfig(cfg *Config) error {
	if cfg.TLSFiles != nil {
		if cfg.TLS != nil {
			return errors.New("meshnode: TLS and TLSFiles are exclusive")
		}
		cfg.TLS = &tls.Config{GetCertificate: cfg.TLSFiles.GetCertificate, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	if cfg.TLS == nil && cfg.ACME == nil && !cfg.PlainHTTP {
		return errors.New("meshnode: no TLS certificate configured (plain HTTP must be enabled explicitly, for local use only)")
	}
	if cfg.Authority == nil {
		return errors.New("meshnode: no mesh authority key")
	}
	if cfg.StateDir == "" {
		return errors.New("meshnode: no state directory")
	}
	if err := loopback.CheckAddr(cfg.AdminListen); err != nil {
		return fmt.Errorf("meshnode: admin address %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "local"
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.TLS = hardenTLS(cfg.TLS)
	return nil
}

// loadState loads the catalogue, the keys, the node credential, the used
// enrolment tokens and the deny-list; it acquires nothing to release.
func (n *Node) loadState() error {
	cfg := n.cfg
	src := cfg.CatalogSource
	if src == nil {
		src = catalog.FileSource(cfg.CatalogPath)
	}
	var err error
	if n.catalog, err = catalog.NewStoreFrom(context.Background(), src, n.logger); err != nil {
		return fmt.Errorf("meshnode: %w", err)
	}
	if _, err := InitKeys(cfg.StateDir); err != nil {
		return err
	}
	if n.wgKey, err = wgkey.Load(filepath.Join(cfg.StateDir, wgKeyFile)); err != nil {
		return fmt.Errorf("meshnode: %w", err)
	}
	if n.nodeKey, err = authority.LoadKey(filepath.Join(cfg.StateDir, nodeKeyFile)); err != nil {
		return fmt.Errorf("meshnode: node key: %w", err)
	}
	if cfg.Cluster != nil || cfg.AuthURL != "" || !cfg.NodeCredential.IsZero() {
		if cfg.NodeCredential.IsZero() {
			return errors.New("meshnode: a node of a cluster, or serving pre-authenticated apps (it signs their sign-in requests), needs its node credential; mint it with \"meshd node credential\"")
		}
		if _, err := cfg.Authority.VerifyNodeCredential(cfg.NodeCredential.Bytes()); err != nil {
			return fmt.Errorf("meshnode: node credential: %w", err)
		}
		if err := checkCredential(cfg.NodeCredential, cfg.ID, cfg.Region, n.wgKey.Public(), n.nodeKey.Public()); err != nil {
			return err
		}
	}
	if n.used, err = n.openUsed(); err != nil {
		return err
	}
	if n.revoked, err = revoke.Open(filepath.Join(cfg.StateDir, revokedFile), nil); err != nil {
		return fmt.Errorf("meshnode: %w", err)
	}
	return nil
}

// openUsed opens the used enrolment tokens. A node that ran before has its
// deny-list journal (and, in a cluster, its roster) beside them: the used
// tokens alone missing means they were lost, never silently forgotten.
func (n *Node) openUsed() (*authority.UsedTokens, error) {
	dir := n.cfg.StateDir
	usedPath := filepath.Join(dir, usedTokensFile)
	lost := !exists(usedPath) && (exists(filepath.Join(dir, revokedFile)) || exists(filepath.Join(dir, rosterFile)))
	if lost && n.cfg.Cluster == nil {
		return nil, fmt.Errorf("meshnode: %s is missing although this node ran before: starting without it could accept a used enrolment token again. Restore it from a backup; or, if no token was ever used here, write an empty one: echo '{\"version\":1,\"tokens\":[]}' > %s", usedPath, usedPath)
	}
	used, err := authority.OpenUsedTokens(usedPath, nil, lost)
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	if lost {
		n.logger.Warn("used_tokens_lost", "path", usedPath,
			"consequence", "enrolments are refused until the record is restored from the other mesh nodes")
	}
	return used, nil
}

// bindTransport builds the ACME manager, the stream carrier and the
// WireGuard node (which binds the UDP port) and the connector pool.
func (n *Node) bindTransport() error {
	cfg := n.cfg
	var err error
	if cfg.ACME != nil {
		publicHost := ""
		if cfg.Cluster != nil {
			publicHost = publicHostOf(cfg.Cluster.PublicURL)
		}
		var acmeTLS *tls.Config
		if n.acme, acmeTLS, err = newACME(cfg, n.catalog, publicHost); err != nil {
			return fmt.Errorf("meshnode: %w", err)
		}
		n.cfg.TLS = hardenTLS(acmeTLS)
	}
	udp := cfg.WGBind
	if udp == nil {
		udp = wgnet.NewUDPBind(cfg.WGListen.Addr())
	}
	if n.stream, err = streambind.NewServer(streambind.ServerConfig{UDP: udp, Authorizer: n, Logger: n.logger.With("component", "streambind")}); err != nil {
		return fmt.Errorf("meshnode: %w", err)
	}
	n.own.Add(n.stream.Close)
	if n.wg, err = wgnet.New(wgnet.Config{PrivateKey: n.wgKey, Bind: n.stream, ListenAddr: cfg.WGListen, Logger: n.logger}); err != nil {
		return fmt.Errorf("meshnode: %w", err)
	}
	n.own.Add(n.wg.Close)
	pc := cfg.Pool
	pc.Dial, pc.Pinger, pc.Logger, pc.Now = n.wg.DialContext, n.wg, n.logger, cfg.Now
	n.pool = pool.New(pc)
	n.own.AddFunc(n.pool.Close)
	return nil
}

// bindListeners binds the public, tunnel and admin listeners.
func (n *Node) bindListeners() error {
	cfg := n.cfg
	n.connMetrics = newConnMetrics(cfg.Registry)
	l := cfg.Listener
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("meshnode: public listener: %w", err)
		}
	}
	n.public = n.limitPublic(l)
	n.own.Add(n.public.Close)
	tl, err := n.wg.Listen(tunnelhttp.Port)
	if err != nil {
		return fmt.Errorf("meshnode: tunnel listener: %w", err)
	}
	n.tunnel = n.limitTunnel(tl)
	n.own.Add(n.tunnel.Close)
	if cfg.AdminListen != "" {
		if n.admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return fmt.Errorf("meshnode: admin listener: %w", err)
		}
		n.own.Add(n.admin.Close)
	}
	return nil
}

// buildServices joins the cluster (binding the gossip port) and builds
// the edge, the enrolment server and the metrics.
func (n *Node) buildServices() error {
	cfg := n.cfg
	authCfg, assertKeys, err := newAuthConfig(cfg, n.nodeKey, n.logger)
	if err != nil {
		return err
	}
	n.revMetrics = newRevocationMetrics(cfg.Registry)
	var router edge.Router = localRouter{n.pool}
	if cfg.Cluster != nil {
		if n.mesh, err = newMesh(n, *cfg.Cluster); err != nil {
			return err
		}
		n.own.Add(n.mesh.close)
		router = n.mesh.router
	}
	if authCfg != nil {
		authCfg.Revoker = n
	}
	n.auth, n.assertKeys = authCfg, assertKeys
	n.assertIssuer = assertionIssuer(cfg)
	bv := bearer.New(bearer.Config{HTTPClient: cfg.BearerHTTPClient, Logger: n.logger.With("component", "bearer")})
	n.edge = edge.New(edge.Config{Catalog: n.catalog.Current, Router: router, Local: localRouter{n.pool}, Logger: n.logger, Registerer: cfg.Registry,
		Auth: authCfg, Limits: n.limits.Unauth, Denied: n.revoked, Audit: cfg.Audit, NodeID: cfg.ID, Tracer: cfg.Tracer,
		Bearer: bv})
	n.own.AddFunc(n.edge.CloseStreams)
	ec := enroll.Config{Authority: cfg.Authority, Used: n.used, NodeKey: n.wgKey, Checks: checks{n}, Revoker: n, Attacher: n,
		Workloads: workloads{cat: n.catalog.Current, verifier: bv}, CredentialTTL: cfg.CredentialTTL, Logger: n.logger, RateLimit: cfg.APIRateLimit, UpdateSlot: cfg.UpdateSlot,
		Serving: n.servingConnectors}
	if n.mesh != nil {
		ec.Redeemer = n.mesh.redeem
	}
	if n.enroll, err = enroll.NewServer(ec); err != nil {
		return fmt.Errorf("meshnode: %w", err)
	}
	n.registerMetrics()
	return nil
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

// servingConnectors counts the connectors of group other than except that
// serve now — attached, alive and not draining — here or, by gossip, at
// any other node of the cluster (enroll.Config.Serving).
func (n *Node) servingConnectors(group, except string) int {
	ids := map[string]bool{}
	for _, s := range n.pool.Statuses() {
		if s.Group == group && s.ID != except && s.Alive && !s.Draining {
			ids[s.ID] = true
		}
	}
	if n.mesh != nil {
		for _, a := range n.mesh.cluster.Attachments() {
			if a.Group == group && a.Connector != except && a.Alive && !a.Draining {
				ids[a.Connector] = true
			}
		}
	}
	return len(ids)
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
		n.removePeer(c.PublicKey)
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
	if err := enroll.VerifyProof(n.wgKey, c.PublicKey, proof, streambind.Path, n.cfg.Now(), credential, ""); err != nil {
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

// Run serves until ctx ends, then shuts down gracefully (see drain), or
// until Close. It returns nil when ctx ended; ErrClosed when Close ended
// the node or came first; the first server's failure, after it stopped
// the others without a drain. It refuses to start (ErrAuthKeys) when the
// catalogue has pre-authenticated apps and the auth functions' JWKS
// cannot be fetched and verified. Run may be called once.
func (n *Node) Run(ctx context.Context) error {
	ctx, end, err := n.life.Begin(ctx)
	if errors.Is(err, ErrClosed) {
		return err
	} else if err != nil {
		return fmt.Errorf("meshnode: %w", err)
	}
	defer end()
	if err := n.checkAuthKeys(ctx); err != nil {
		if n.life.Closed() {
			return ErrClosed
		}
		return err
	}
	servers := n.servers()
	// The background work (probes, catalogue, gossip, sign-in keys) goes
	// on through the drain and stops after it.
	life, stopLife := context.WithCancel(n.life.Context())
	var bg sync.WaitGroup
	defer bg.Wait()
	defer stopLife()
	n.startBackground(life, &bg)
	n.serving.Store(true)
	n.logger.Info("mesh_node_started", "region", n.cfg.Region, "public_addr", n.public.Addr().String(),
		"wg_port", n.wg.ListenPort(), "tunnel_addr", n.wg.Addr(), "tls", n.cfg.TLS != nil, "cluster", n.mesh != nil)
	err = lifecycle.Serve(ctx, servers, func(failed bool) { n.stop(failed, servers, stopLife) })
	stopLife()
	n.edge.CloseStreams()
	n.pool.Close()
	switch {
	case n.life.Closed():
		return ErrClosed // its servers failed on the sockets Close closed
	case err != nil:
		return fmt.Errorf("meshnode: %w", err)
	}
	return nil
}

// servers returns the public, tunnel and admin servers on their bound
// listeners; the public one comes first.
func (n *Node) servers() []lifecycle.Server {
	errLog := slog.NewLogLogger(n.logger.Handler(), slog.LevelDebug)
	lim := n.limits
	pub := &http.Server{Handler: n.Handler(), TLSConfig: n.cfg.TLS, ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout: lim.IdleTimeout, MaxHeaderBytes: lim.MaxHeaderBytes, ConnContext: iplimit.ConnContext, ErrorLog: errLog}
	// Relayed requests carry a client's header (at most MaxHeaderBytes)
	// plus the first node's identity and forwarding headers.
	tun := &http.Server{Handler: n.tunnelHandler(), ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout,
		MaxHeaderBytes: 2 * lim.MaxHeaderBytes, ErrorLog: errLog}
	servers := []lifecycle.Server{{HTTP: pub, Listener: n.public, TLS: n.cfg.TLS != nil}, {HTTP: tun, Listener: n.tunnel}}
	if n.admin != nil {
		admin := &http.Server{Handler: n.AdminHandler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: lim.IdleTimeout, ErrorLog: errLog}
		servers = append(servers, lifecycle.Server{HTTP: admin, Listener: n.admin})
	}
	return servers
}

// startBackground starts the loops that run until life ends, counted in
// bg.
func (n *Node) startBackground(life context.Context, bg *sync.WaitGroup) {
	bg.Go(func() { n.pool.Run(life) })
	bg.Go(func() { n.enforceLoop(life) })
	if n.acme != nil {
		bg.Go(func() { n.acme.Run(life) })
	}
	if n.cfg.TLSFiles != nil && n.cfg.CertPoll >= 0 {
		bg.Go(func() { n.cfg.TLSFiles.Watch(life, n.cfg.CertPoll) })
	}
	if n.cfg.CatalogPoll >= 0 {
		poll := n.cfg.CatalogPoll
		if poll == 0 {
			poll = 2 * time.Second
		}
		bg.Go(func() { n.catalog.Watch(life, poll) })
	}
	if n.mesh != nil {
		bg.Go(func() { n.mesh.run(life) })
	}
	bg.Go(func() { n.fetchSignInKeys(life) })
}

// stop ends serving: a drain when ctx ended (not after a server failed,
// Kill or Close), then the background work, then a graceful shutdown of
// the servers; after a failure or Close the servers are simply closed
// (by lifecycle.Serve).
func (n *Node) stop(failed bool, servers []lifecycle.Server, stopLife func()) {
	n.draining.Store(true) // not ready from here, also without a drain (killed, DrainTimeout < 0)
	if failed && !n.life.Closed() {
		n.logger.Error("mesh_node_stopping", "reason", "a server failed")
	}
	if !failed && !n.killed.Load() && !n.life.Closed() {
		n.drain(servers[0].HTTP)
	}
	stopLife()
	if failed || n.life.Closed() {
		return
	}
	sctx, scancel := context.WithTimeout(n.life.Context(), 10*time.Second)
	defer scancel()
	for _, s := range servers {
		_ = s.HTTP.Shutdown(sctx)
	}
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
// ends as soon as the requests in flight end. Close cuts it short.
func (n *Node) drain(pub *http.Server) {
	if n.cfg.DrainTimeout < 0 {
		return
	}
	timeout := n.cfg.DrainTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	start := n.cfg.Now()
	n.draining.Store(true)
	if n.mesh != nil {
		// Peers then learn it only from the node's departure: say so.
		if err := n.mesh.cluster.UpdateMeta(func(m *gossip.Meta) { m.Draining = true }); err != nil {
			n.logger.Warn("draining_not_announced", "error", err)
		}
	}
	n.logger.Info("mesh_node_draining", "drain_delay_ms", n.cfg.DrainDelay.Milliseconds(), "drain_timeout_ms", timeout.Milliseconds())
	if n.cfg.DrainDelay > 0 {
		// The listener keeps accepting while load balancers notice.
		t := time.NewTimer(n.cfg.DrainDelay)
		select {
		case <-t.C:
		case <-n.life.Context().Done():
			t.Stop()
		}
	}
	ctx, cancel := context.WithTimeout(n.life.Context(), timeout)
	defer cancel()
	_ = pub.Shutdown(ctx) // its only error is ctx's end: "complete" below reports it
	public := n.cfg.Now().Sub(start)
	n.relayClosed.Store(true)
	idle := waitIdle(ctx, func() bool { return n.inFlight() == 0 })
	n.logger.Info("mesh_node_drained", "waited_ms", n.cfg.Now().Sub(start).Milliseconds(), "public_ms", public.Milliseconds(),
		"in_flight", n.inFlight(), "complete", idle)
	if n.mesh != nil && !n.life.Closed() {
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

// Close stops the node as a crash would and releases everything it owns:
// the WireGuard node with its stream carrier and the gossip membership go
// first (without a leave: others see the node fall silent), then a Run in
// progress ends without a drain and Close waits for it, then the
// listeners, the pool and the TCP streams are released. Close is
// idempotent; a concurrent call waits for the first.
func (n *Node) Close() error {
	return n.life.Close(n.crash, n.own.Close)
}

// crash closes what peers see at once, as a crash would, before a running
// Run notices: the tunnel (connections through it fall silent rather than
// close) and the gossip. Their errors come from Close's n.own.
func (n *Node) crash() error {
	_ = n.wg.Close()
	if n.mesh != nil {
		_ = n.mesh.cluster.Close()
	}
	return nil
}

func (n *Node) registerMetrics() {
	n.cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statusCollector{n: n})
}
