// Package harness starts a whole Postern system in one process on loopback:
// mesh nodes with real WireGuard, connectors enrolled with real tokens over
// HTTPS, and the sample internal app. End-to-end tests, bench and the local
// demo all use it.
package harness

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/acmecert"
	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/connector"
	"github.com/postern/postern/pkg/devcert"
	"github.com/postern/postern/pkg/devidp"
	"github.com/postern/postern/pkg/egress"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/sampleapp"
	"github.com/postern/postern/pkg/streambind"
	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/tracing"
	"github.com/postern/postern/pkg/wgnet"
)

// Options configures Start.
type Options struct {
	// Audit, when set, receives every mesh node's audit stream as JSON
	// lines; it must be safe for concurrent writes.
	Audit io.Writer
	// Dir holds all state; empty means a new temporary directory removed
	// by Close.
	Dir string
	// Meshes is the number of mesh nodes; zero means 1.
	Meshes int
	// Connectors is the number of connectors in group "hq"; zero means 1,
	// negative means none.
	Connectors int
	// AppHost is the external host of the sample app; empty means
	// "smartmoney.localhost".
	AppHost string
	// Host is the IP address on which the mesh nodes' public listeners
	// and WireGuard UDP binds listen, and which the certificate names as
	// well as loopback; empty means 127.0.0.1. Tests that put connectors
	// in another network namespace set it to a veth address.
	Host string
	// PublicAddr is the first mesh node's public listener; empty means
	// Host on a random port. Further nodes use random ports.
	PublicAddr string
	// ExtraCatalog is appended to the apps list of the generated catalogue
	// (YAML list items, indented by two spaces).
	ExtraCatalog string
	// AllowList restricts the connectors' destinations; empty means
	// 127.0.0.1, where the sample app listens.
	AllowList []string
	// Pool tunes the mesh nodes' connector probing.
	Pool pool.Config
	// Auth turns on sign-in: the development identity provider and the
	// auth functions start too, and the sample app is pre-authenticated
	// (Entra mode) with a policy.
	Auth bool
	// CredentialTTL is the lifetime of connector credentials; zero means
	// the mesh default.
	CredentialTTL time.Duration
	// UpdateSlot is the mesh nodes' update slot length; zero means
	// theirs (15m).
	UpdateSlot time.Duration
	// Carrier forces the connectors' WireGuard carrier; the zero value
	// means automatic choice (UDP first, then the stream).
	Carrier streambind.Carrier
	// UDPTimeout and ProbeInterval tune the connectors' automatic carrier
	// choice; zero means the connector defaults (2s, 30s).
	UDPTimeout, ProbeInterval time.Duration
	// BlockUDP starts every connector with its UDP blocked in process
	// (wgnet.BlockBind: every datagram dropped both ways), as behind a
	// firewall that lets only TCP out. SetUDPBlocked changes it later.
	BlockUDP bool
	// Proxy, if set, is the HTTP CONNECT proxy (with its basic
	// authentication in the URL) through which connectors enrol, attach
	// and open the stream carrier.
	Proxy *url.URL
	// Topology, if set, runs a multi-region mesh over a simulated network
	// instead of Meshes lone nodes and Connectors connectors of "hq".
	Topology *Topology
	// DrainTimeout is the mesh nodes' drain bound on stop; zero means 2s.
	DrainTimeout time.Duration
	// DrainDelay is how long a stopping mesh node keeps accepting after
	// it turned not ready; zero means none.
	DrainDelay time.Duration
	// AdminAddrs, if set, are the mesh nodes' loopback admin addresses
	// (/status, /routes/explain, /metrics), by node index.
	AdminAddrs []string
	// Limits bounds what one client may cost each mesh node; the zero
	// value means meshnode's defaults.
	Limits meshnode.Limits
	// ACME, if set, has the mesh nodes obtain their certificates for the
	// catalogue's hosts from this ACME server (each in its own state
	// directory); the development certificate still serves every other
	// name. Nil means the development certificate only.
	ACME *acmecert.Config
	// Tracing, if set, turns tracing on in every mesh node and connector
	// (each its own tracer provider and OTLP exporter, as meshd and
	// connectord build from OTEL_*), with service.name "meshd" or
	// "connectord" and the resource attribute postern.node naming the
	// node or connector; nil means tracing off.
	Tracing *tracing.Config
	// Logger; nil discards.
	Logger *slog.Logger
	// ServiceAccounts, if set, starts a stand-in for a Kubernetes
	// cluster's service-account issuer and adds to the catalogue the
	// connector groups PodsGroup and OtherPodsGroup, whose connectors enrol
	// with its tokens (workload_enrollment), and the app PodsAppHost
	// served by PodsGroup. No connector of them is started.
	ServiceAccounts bool
	// CatalogSource, if set, is called once at start with the generated
	// catalogue and returns the source every mesh node reads it from
	// instead of the file CatalogPath (a test puts the catalogue in the
	// local S3 stand-in and returns an awsapi.S3Source); nil means the
	// file.
	CatalogSource func(generated []byte) (catalog.Source, error)
}

// Harness is a running system.
type Harness struct {
	Dir         string
	CatalogPath string
	CA          *devcert.CA
	Authority   *authority.Authority
	// authorityPub is the authority's public key, which the auth
	// functions trust for signed app requests.
	authorityPub ed25519.PublicKey
	AppHost      string
	// App is the sample internal app's base URL ("http://127.0.0.1:port").
	App string

	opts     Options
	tmp      bool
	logger   *slog.Logger
	cert     tls.Certificate
	appSrv   *http.Server
	appWG    sync.WaitGroup
	mu       sync.Mutex // guards the following
	meshes   []*Mesh
	conns    []*Connector
	closeErr error
	closed   bool
	auth     *authSystem
	tracers  []*tracing.Tracing         // shut down by Close
	catSrc   catalog.Source             // from Options.CatalogSource; nil: CatalogPath
	clients  map[string]*http.Transport // MeshClient's, by node address

	gossipKey []byte
	saIssuer  *devidp.WorkloadIssuer // Options.ServiceAccounts
	saClient  *http.Client           // trusts the issuer's certificate
}

// Mesh is one running mesh node.
type Mesh struct {
	Node   *meshnode.Node
	ID     string
	Region string
	Addr   string // public listener "host:port" (Options.Host)
	URL    string // "https://host:port"
	dir    string
	wgPort uint16
	gossip string // gossip address, with a Topology
	index  int
	cancel context.CancelFunc
	done   chan struct{}

	stopped bool // set by StopMesh and KillMesh, cleared by StartMesh
}

// Connector is one running connector.
type Connector struct {
	C   *connector.Connector
	Dir string
	// UDP is the connector's UDP bind behind an in-process block switch.
	UDP *wgnet.BlockBind
	// Region is where a Topology placed it; empty otherwise.
	Region string
	// Registry holds its metrics.
	Registry *prometheus.Registry
	cancel   context.CancelFunc
	done     chan struct{}
}

// Start starts the system and waits until every connector serves the app.
func Start(ctx context.Context, opts Options) (*Harness, error) {
	if opts.Topology != nil {
		if opts.Topology.Net == nil || len(opts.Topology.Nodes) == 0 {
			return nil, errors.New("harness: a Topology needs Net and Nodes")
		}
		if opts.Auth && len(opts.Topology.Groups) > 0 {
			return nil, errors.New("harness: sign-in needs the standard catalogue: leave Topology.Groups empty (connectors then join group hq)")
		}
		opts.Meshes, opts.Connectors = len(opts.Topology.Nodes), -1
	}
	if opts.Meshes == 0 {
		opts.Meshes = 1
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 2 * time.Second
	}
	if opts.Connectors == 0 {
		opts.Connectors = 1
	}
	if opts.AppHost == "" {
		opts.AppHost = "smartmoney.localhost"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	host, err := netip.ParseAddr(opts.Host)
	if err != nil {
		return nil, fmt.Errorf("harness: Options.Host: %w", err)
	}
	opts.Host = host.String()
	h := &Harness{opts: opts, AppHost: opts.AppHost, logger: opts.Logger, Dir: opts.Dir, gossipKey: newGossipKey()}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.Dir == "" {
		d, err := os.MkdirTemp("", "postern-harness-")
		if err != nil {
			return nil, err
		}
		h.Dir, h.tmp = d, true
	}
	if err := h.start(ctx); err != nil {
		return nil, errors.Join(err, h.Close())
	}
	return h, nil
}

func (h *Harness) start(ctx context.Context) error {
	var err error
	if h.CA, err = devcert.NewCA(); err != nil {
		return err
	}
	names := []string{"localhost", "*.localhost", h.AppHost, OpenAppHost, APIAppHost, "auth.localhost", "idp.localhost", "127.0.0.1", "::1"}
	if h.opts.Host != "127.0.0.1" && h.opts.Host != "::1" {
		names = append(names, h.opts.Host)
	}
	if h.cert, err = h.CA.Issue(names...); err != nil {
		return err
	}
	key, err := authority.LoadOrCreateKey(filepath.Join(h.Dir, "authority.key"))
	if err != nil {
		return err
	}
	if h.Authority, err = authority.New(authority.Config{Key: key}); err != nil {
		return err
	}
	h.authorityPub = key.Public()
	if err := h.startApp(); err != nil {
		return err
	}
	if h.opts.Auth {
		if err := h.startAuthListener(); err != nil {
			return err
		}
	}
	if h.opts.ServiceAccounts {
		if err := h.startServiceAccountIssuer(); err != nil {
			return err
		}
	}
	h.CatalogPath = filepath.Join(h.Dir, "catalog.yaml")
	if err := os.WriteFile(h.CatalogPath, []byte(h.catalogYAML()), 0o644); err != nil {
		return err
	}
	if h.opts.CatalogSource != nil {
		if h.catSrc, err = h.opts.CatalogSource([]byte(h.catalogYAML())); err != nil {
			return fmt.Errorf("harness: catalogue source: %w", err)
		}
	}
	for i := 0; i < h.opts.Meshes; i++ {
		addr := net.JoinHostPort(h.opts.Host, "0")
		if i == 0 && h.opts.PublicAddr != "" {
			addr = h.opts.PublicAddr
		}
		m, err := h.startMesh(i, filepath.Join(h.Dir, fmt.Sprintf("mesh%d", i)), addr, 0, 0)
		if err != nil {
			return err
		}
		h.mu.Lock()
		h.meshes = append(h.meshes, m)
		h.mu.Unlock()
	}
	if h.opts.Auth {
		_, port, _ := net.SplitHostPort(h.meshes[0].Addr)
		if err := h.startAuthService(port); err != nil {
			return err
		}
	}
	for i := 0; i < h.opts.Connectors; i++ {
		if _, err := h.AddConnector(ctx, "hq"); err != nil {
			return err
		}
	}
	if t := h.opts.Topology; t != nil {
		// Connectors learn the nodes from their attach answers: let the
		// cluster form first.
		if err := waitFor(ctx, Patience, h.membersConverged); err != nil {
			return fmt.Errorf("harness: the mesh nodes did not form one cluster: %w", err)
		}
		for _, c := range t.Connectors {
			if _, err := h.addConnector(ctx, c.Group, c.Region); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *Harness) startApp() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.App = "http://" + l.Addr().String()
	h.appSrv = &http.Server{Handler: sampleapp.New(sampleapp.Config{Name: "SmartMoney", Logger: h.logger}).Handler(),
		ReadHeaderTimeout: 10 * time.Second}
	h.appWG.Add(1)
	go func() {
		defer h.appWG.Done()
		if err := h.appSrv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			h.logger.Error("sample app stopped serving", "err", err)
		}
	}()
	return nil
}

func (h *Harness) catalogYAML() string {
	if t := h.opts.Topology; t != nil && len(t.Groups) > 0 {
		return t.catalogYAML(h.App) + h.opts.ExtraCatalog
	}
	var b strings.Builder
	if h.opts.Auth {
		fmt.Fprintf(&b, "home_tenant: %s\n", devidp.DemoTenantID)
		b.WriteString(h.bearerCatalog())
	}
	if h.opts.ServiceAccounts {
		if !h.opts.Auth {
			b.WriteString("issuers:\n")
		}
		b.WriteString(h.serviceAccountIssuerYAML())
	}
	fmt.Fprintf(&b, "connector_groups:\n  - id: hq\n    region: local\n")
	if h.opts.ServiceAccounts {
		b.WriteString(h.serviceAccountGroupsYAML())
	}
	b.WriteString("apps:\n")
	if h.opts.ServiceAccounts {
		b.WriteString(h.serviceAccountAppYAML())
	}
	if h.opts.Auth {
		b.WriteString(h.authCatalogApp())
	} else {
		fmt.Fprintf(&b, "  - id: smartmoney\n    display_name: SmartMoney\n    host: %s\n    internal_url: %s\n    connector_group: hq\n    preauth: passthrough\n",
			h.AppHost, h.App)
		b.WriteString(h.openCatalogApp())
	}
	b.WriteString(h.opts.ExtraCatalog)
	return b.String()
}

// startMesh starts mesh node i with state in dir on the given public
// address, WireGuard port and (with a Topology) gossip port; 0 = random.
func (h *Harness) startMesh(i int, dir, addr string, wgPort uint16, gossipPort int) (*Mesh, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	l, err := listenRetry(addr)
	if err != nil {
		return nil, err
	}
	id, region := filepath.Base(dir), "local"
	cfg := meshnode.Config{
		ID: id, Region: region, Listener: l, TLS: devcert.ServerTLS(h.cert),
		WGListen: netip.AddrPortFrom(netip.MustParseAddr(h.opts.Host), wgPort), StateDir: dir,
		Authority: h.Authority, CatalogPath: h.CatalogPath, CatalogSource: h.catSrc, CatalogPoll: 200 * time.Millisecond,
		Pool: h.opts.Pool, CredentialTTL: h.opts.CredentialTTL, UpdateSlot: h.opts.UpdateSlot, AuthURL: h.AuthURL(), AuthHTTPClient: h.authClient(), BearerHTTPClient: h.bearerClient(),
		DrainTimeout: h.opts.DrainTimeout, DrainDelay: h.opts.DrainDelay, APIRateLimit: rate.Inf, Limits: h.opts.Limits,
		Registry: cli.NewRegistry("meshd"), // as meshd's: postern_build_info too
	}
	if raceDetector {
		cfg.Pool = stretchProbes(cfg.Pool, 750*time.Millisecond, 3)
	}
	if h.opts.Audit != nil {
		cfg.Audit = slog.New(slog.NewJSONHandler(h.opts.Audit, nil))
	}
	if i < len(h.opts.AdminAddrs) {
		cfg.AdminListen = h.opts.AdminAddrs[i]
	}
	if h.opts.ACME != nil {
		ac := *h.opts.ACME
		cfg.ACME = &ac
	}
	var gossipAddr string
	if t := h.opts.Topology; t != nil {
		id, region = t.Nodes[i].ID, t.Nodes[i].Region
		cfg.ID, cfg.Region = id, region
		if err := t.Net.Register(netip.MustParseAddrPort(l.Addr().String()), region); err != nil {
			l.Close()
			return nil, err
		}
		cfg.WGBind = t.Net.Bind(wgnet.NewUDPBind(netip.MustParseAddr(h.opts.Host)), region)
		if cfg.Cluster, gossipAddr, err = h.clusterConfig(i, l.Addr().String(), gossipPort); err != nil {
			l.Close()
			return nil, err
		}
		if cfg.NodeCredential, err = h.nodeCredential(dir, id, region); err != nil {
			l.Close()
			return nil, err
		}
	}
	if cfg.NodeCredential.IsZero() && cfg.AuthURL != "" {
		// It signs the app requests of sign-in with its node key.
		if cfg.NodeCredential, err = h.nodeCredential(dir, id, region); err != nil {
			l.Close()
			return nil, err
		}
	}
	cfg.Logger = h.logger.With("service", "meshd")
	if cfg.Tracer, err = h.tracer("meshd", id); err != nil {
		l.Close()
		return nil, err
	}
	node, err := meshnode.New(cfg)
	if err != nil {
		l.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mesh{Node: node, ID: id, Region: region, Addr: l.Addr().String(), URL: "https://" + l.Addr().String(), dir: dir,
		wgPort: node.WireGuard().ListenPort(), gossip: gossipAddr, index: i, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := node.Run(ctx); err != nil && !errors.Is(err, meshnode.ErrClosed) { // KillMesh closes it running
			h.logger.Error("mesh_run_failed", "error", err)
		}
	}()
	return m, nil
}

// nodeCredential mints the node credential of the node with state in dir,
// as "meshd node credential" does, and writes it there.
func (h *Harness) nodeCredential(dir, id, region string) (authority.NodeCredential, error) {
	keys, err := meshnode.InitKeys(dir)
	if err != nil {
		return authority.NodeCredential{}, err
	}
	cred, err := h.Authority.IssueNodeCredential(id, region, keys.WG, keys.Node, authority.DefaultNodeCredentialTTL)
	if err != nil {
		return authority.NodeCredential{}, err
	}
	return cred, authority.SaveNodeCredential(meshnode.NodeCredentialPath(dir), cred)
}

// listenRetry listens on addr, retrying briefly while a just-closed
// listener's port is still being released.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Meshes returns the running mesh nodes.
func (h *Harness) Meshes() []*Mesh {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Mesh(nil), h.meshes...)
}

// Running returns the indices of the mesh nodes not stopped or killed.
func (h *Harness) Running() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for i, m := range h.meshes {
		if !m.stopped {
			out = append(out, i)
		}
	}
	return out
}

// Dir returns the mesh node's state directory.
func (m *Mesh) Dir() string { return m.dir }

// Connectors returns the connectors.
func (h *Harness) Connectors() []*Connector {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Connector(nil), h.conns...)
}

// MeshClient returns an HTTP client that trusts the dev CA and sends every
// request, whatever its host, to mesh node i.
func (h *Harness) MeshClient(i int) *http.Client {
	return &http.Client{Transport: h.sharedTransport(i), CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// sharedTransport returns the one transport MeshClient uses for node i's
// address, so that a test calling MeshClient per request reuses its
// connections instead of leaving one open per call (a node caps the
// connections of one client address, and 127.0.0.1 is every test's).
func (h *Harness) sharedTransport(i int) *http.Transport {
	addr := h.Meshes()[i].Addr
	h.mu.Lock()
	t, ok := h.clients[addr]
	h.mu.Unlock()
	if ok {
		return t
	}
	t = h.MeshTransport(i)
	h.mu.Lock()
	defer h.mu.Unlock()
	if had, ok := h.clients[addr]; ok { // another caller made one first
		t.CloseIdleConnections()
		return had
	}
	if h.clients == nil {
		h.clients = map[string]*http.Transport{}
	}
	h.clients[addr] = t
	return t
}

// dropClient closes and forgets MeshClient's transport to addr, whose node
// stopped: a restarted node on the same address gets fresh connections.
func (h *Harness) dropClient(addr string) {
	h.mu.Lock()
	t := h.clients[addr]
	delete(h.clients, addr)
	h.mu.Unlock()
	if t != nil {
		t.CloseIdleConnections()
	}
}

// MeshTransport returns a new transport to node i, like MeshClient's
// but not shared; the caller closes its idle connections.
func (h *Harness) MeshTransport(i int) *http.Transport {
	addr := h.Meshes()[i].Addr
	d := &net.Dialer{}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: h.CA.Pool()},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
	}
}

// AppURL returns the external URL of path on the sample app, through mesh
// node i.
func (h *Harness) AppURL(i int, path string) string {
	_, port, _ := net.SplitHostPort(h.Meshes()[i].Addr)
	return "https://" + h.AppHost + ":" + port + path
}

// APIClient returns a client for the mesh nodes' HTTPS API.
// With Options.Proxy set, it goes through that proxy.
func (h *Harness) APIClient() *http.Client {
	t := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.CA.Pool()}}
	if h.opts.Proxy != nil {
		t.Proxy = http.ProxyURL(h.opts.Proxy)
	}
	return &http.Client{Transport: t, Timeout: 20 * time.Second}
}

// SetUDPBlocked blocks or unblocks connector i's UDP in process.
func (h *Harness) SetUDPBlocked(i int, on bool) { h.Connectors()[i].UDP.SetBlocked(on) }

// AddConnector enrols a new connector in group with a fresh token through
// the first mesh node, starts it, and waits until it is attached.
func (h *Harness) AddConnector(ctx context.Context, group string) (*Connector, error) {
	return h.addConnector(ctx, group, "")
}

// addConnector enrols and starts a connector of group in region ("" =
// lone nodes: it knows every node's URL from the start).
func (h *Harness) addConnector(ctx context.Context, group, region string) (*Connector, error) {
	tok, _, err := h.Authority.MintEnrollToken(group, time.Hour)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	dir := filepath.Join(h.Dir, fmt.Sprintf("connector%d", len(h.conns)))
	meshes := h.meshes
	h.mu.Unlock()
	seed, client := meshes[0].URL, h.APIClient()
	if region != "" {
		seed, client = h.seedFor(region), h.simAPIClient(region)
	}
	// While the mesh tunnels come up the nodes may not reach a majority
	// to vote on the token: retry (the same key, so the same redemption).
	var st *connector.State
	var enrolErr error
	if err := waitFor(ctx, Patience, func() bool {
		st, enrolErr = connector.Enroll(ctx, connector.EnrollConfig{StateDir: dir, MeshURL: seed, Token: tok,
			Name: filepath.Base(dir), HTTPClient: client})
		var ae *enroll.APIError
		return enrolErr == nil || !errors.As(enrolErr, &ae) || ae.Code != enroll.CodeTokenCheckUnavailable
	}); err != nil {
		return nil, fmt.Errorf("harness: enrolment: %w (last: %v)", err, enrolErr)
	}
	if enrolErr != nil {
		return nil, enrolErr
	}
	if region == "" {
		for _, m := range meshes[1:] {
			st.MeshURLs = append(st.MeshURLs, m.URL)
		}
	}
	if err := st.Save(dir); err != nil {
		return nil, err
	}
	c, err := h.runConnector(ctx, dir, region)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	return c, nil
}

func (h *Harness) runConnector(ctx context.Context, dir, region string) (*Connector, error) {
	entries := h.opts.AllowList
	if len(entries) == 0 {
		entries = []string{"127.0.0.1"}
	}
	al, err := egress.ParseAllowList(entries)
	if err != nil {
		return nil, err
	}
	cfg := connector.Config{StateDir: dir, HTTPClient: h.APIClient(), AllowList: al,
		Carrier: h.opts.Carrier, UDPTimeout: h.opts.UDPTimeout, ProbeInterval: h.opts.ProbeInterval,
		Logger: h.logger.With("service", "connectord"), Registry: cli.NewRegistry("connectord")}
	var inner conn.Bind = wgnet.NewDialBind()
	want := min(2, len(h.Meshes()))
	if t := h.opts.Topology; t != nil {
		// A bind with its own loopback port, so the simulated network can
		// place the connector in its region both ways.
		inner = t.Net.Bind(wgnet.NewUDPBind(netip.MustParseAddr(h.opts.Host)), region)
		cfg.HTTPClient, cfg.Attach, cfg.Reevaluate = h.simAPIClient(region), t.AttachK, cmp.Or(t.Reevaluate, 30*time.Second)
		want = min(cmpOr(t.AttachK, 2), h.eligibleNodes(dir))
	}
	udp := wgnet.NewBlockBind(inner)
	udp.SetBlocked(h.opts.BlockUDP)
	cfg.Bind = udp
	if cfg.Tracer, err = h.tracer("connectord", filepath.Base(dir)); err != nil {
		return nil, err
	}
	if raceDetector {
		cfg.PingInterval, cfg.PingFailures = time.Second*raceStretch, 3*raceStretch
	}
	c, err := connector.New(cfg)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	hc := &Connector{C: c, Dir: dir, UDP: udp, Region: region, Registry: cfg.Registry, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(hc.done)
		if err := c.Run(rctx); err != nil && rctx.Err() == nil {
			h.logger.Error("connector stopped", "connector", c.ID(), "err", err)
		}
	}()
	if err := waitFor(ctx, Patience, func() bool { return c.Attached() >= want }); err != nil {
		return nil, errors.Join(fmt.Errorf("harness: connector %s did not attach: %w", c.ID(), err), hc.stop())
	}
	return hc, nil
}

func (c *Connector) stop() error {
	c.cancel()
	<-c.done
	return c.C.Close()
}

// KillConnector stops connector i abruptly: its WireGuard node vanishes
// without a goodbye, as when its host dies.
func (h *Harness) KillConnector(i int) {
	c := h.Connectors()[i]
	_ = c.C.Close() // the tunnel goes first: nothing more leaves the host; a crash reports nothing
	c.cancel()
	<-c.done
}

// RestartConnector starts connector i again from its state directory.
func (h *Harness) RestartConnector(ctx context.Context, i int) error {
	old := h.Connectors()[i]
	c, err := h.runConnector(ctx, old.Dir, old.Region)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.conns[i] = c
	h.mu.Unlock()
	return nil
}

// StopMesh stops mesh node i gracefully (drain, leave the cluster).
func (h *Harness) StopMesh(i int) {
	m := h.Meshes()[i]
	m.cancel()
	<-m.done
	if err := m.Node.Close(); err != nil {
		h.logger.Error("mesh node stop", "node", m.ID, "err", err)
	}
	h.mu.Lock()
	m.stopped = true
	h.mu.Unlock()
	h.dropClient(m.Addr)
}

// KillMesh stops mesh node i as a crash: no drain, no goodbye to the
// cluster; its sockets close, so its peers see it fall silent.
func (h *Harness) KillMesh(i int) {
	m := h.Meshes()[i]
	m.Node.Kill()
	_ = m.Node.Close() // a crash reports nothing
	m.cancel()
	<-m.done
	h.mu.Lock()
	m.stopped = true
	h.mu.Unlock()
	h.dropClient(m.Addr)
}

// StartMesh starts mesh node i again on the same addresses and state.
func (h *Harness) StartMesh(i int) error {
	old := h.Meshes()[i]
	gossipPort := 0
	if old.gossip != "" {
		gossipPort = int(netip.MustParseAddrPort(old.gossip).Port())
	}
	m, err := h.startMesh(i, old.dir, old.Addr, old.wgPort, gossipPort)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.meshes[i] = m
	h.mu.Unlock()
	return nil
}

// Close stops everything and removes a temporary directory. It is
// idempotent.
func (h *Harness) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return h.closeErr
	}
	h.closed = true
	conns, meshes := h.conns, h.meshes
	h.mu.Unlock()
	var errs []error
	for _, c := range conns {
		errs = append(errs, c.stop())
	}
	for _, m := range meshes {
		m.Node.Kill() // no drain: everything stops at once
		m.cancel()
		<-m.done
		errs = append(errs, m.Node.Close())
	}
	if h.auth != nil {
		errs = append(errs, h.auth.close())
	}
	if h.saIssuer != nil {
		_ = h.saIssuer.Close() // nothing to do about a failed shutdown at the end
		h.saClient.CloseIdleConnections()
	}
	if h.appSrv != nil {
		errs = append(errs, h.appSrv.Close())
		h.appWG.Wait()
	}
	h.mu.Lock()
	tracers, clients := h.tracers, h.clients
	h.mu.Unlock()
	for _, t := range clients {
		t.CloseIdleConnections()
	}
	for _, t := range tracers {
		t.Close(h.logger)
	}
	if h.tmp {
		errs = append(errs, os.RemoveAll(h.Dir))
	}
	h.closeErr = errors.Join(errs...)
	return h.closeErr
}

// raceStretch is how much longer the liveness checks wait for an answer
// under the race detector.
const raceStretch = 4

// stretchProbes returns probe settings that give raceStretch times the
// time to answer and need raceStretch times as many misses to declare a
// path dead (from defTimeout and defDeadAfter, the pool's defaults, when
// unset): under the race detector the system is slow, not dead.
func stretchProbes(c pool.Config, defTimeout time.Duration, defDeadAfter int) pool.Config {
	c.ProbeTimeout = cmp.Or(c.ProbeTimeout, defTimeout) * raceStretch
	c.SuspectAfter = cmp.Or(c.SuspectAfter, 150*time.Millisecond) * raceStretch
	c.DeadAfter = cmp.Or(c.DeadAfter, defDeadAfter) * raceStretch
	return c
}

// Patience bounds a wait for the system under test to get somewhere it
// will get to (a cluster to form, a connector to enrol and attach, routes
// to converge): a guard against a hang only, never a budget that decides
// a pass. It is minutes, not seconds, as a loaded 2-core machine (CI's
// condition) slows every step; a test's context ends a wait earlier.
// Timing that is itself the product's promise (a failover within two
// seconds) is asserted by measuring, not by a wait.
const Patience = 5 * time.Minute

// WaitFor polls cond every 20ms until it holds, ctx ends or timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	return waitFor(ctx, timeout, cond)
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	return testkit.Poll(ctx, 20*time.Millisecond, timeout, cond)
}

// tracer returns the tracer of one component (service "meshd" or
// "connectord", node its id) under Options.Tracing, or nil when tracing
// is off.
func (h *Harness) tracer(service, node string) (trace.Tracer, error) {
	if h.opts.Tracing == nil {
		return nil, nil
	}
	cfg := *h.opts.Tracing
	cfg.Attributes = append(slices.Clip(cfg.Attributes), attribute.String("postern.node", node))
	t, err := tracing.New(context.Background(), service, cfg)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.tracers = append(h.tracers, t)
	h.mu.Unlock()
	return t.Tracer(), nil
}
