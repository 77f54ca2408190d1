package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/time/rate"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/certfile"
	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/tracing"
)

func runCmd(fs *flag.FlagSet) func(context.Context) error {
	id := fs.String("id", "", "node id (default: host name)")
	region := fs.String("region", "", "region label, e.g. eu-west")
	listen := fs.String("listen", ":443", "public HTTPS listen address")
	certFile := fs.String("tls-cert", "", "TLS certificate chain (PEM); with --tls-key, read every 2s and reloaded live when they change")
	keyFile := fs.String("tls-key", "", "TLS private key (PEM)")
	plain := fs.Bool("insecure-plain-http", false, "serve plain HTTP instead of TLS (local use only)")
	wgListen := fs.String("wg-listen", "0.0.0.0:51820", "WireGuard UDP listen address")
	wgAdvertise := fs.String("wg-advertise", "", "WireGuard endpoint host:port told to connectors (default: the API host name and the listen port)")
	stateDir := fs.String("state-dir", "/var/lib/postern-meshd", "directory for the node's keys, used enrolment tokens, revocations and known mesh members")
	authKey := fs.String("authority-key", "", "mesh authority key file (from \"meshd authority init\")")
	catalogPath := fs.String("catalog", defaultCatalog, "app catalogue: a file, or s3://bucket/key (read with the instance role, reloaded live on change)")
	admin := fs.String("admin", defaultAdmin, "loopback admin address for /healthz (live), /readyz (ready), /metrics, /status and /routes/explain (empty: off)")
	authURL := fs.String("auth-url", "", "the auth functions' base URL, e.g. https://auth.example.com (enables pre-authenticated apps)")
	authCA := fs.String("auth-ca", "", "extra CA file (PEM) that signs the auth functions' certificate")
	bearerCA := fs.String("bearer-ca", "", "extra CA file (PEM) that signs the certificates of the issuers whose bearer tokens apps accept (Entra, workload issuers; for development providers)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	auditLog := fs.String("audit-log", "", "where to write the audit stream (one JSON access_decision record per request to an app): a file (appended, created 0600), - for stdout, empty for none")
	gossipListen := fs.String("gossip-listen", "", "gossip address (UDP and TCP) to join a cluster of mesh nodes, e.g. 0.0.0.0:7946 (empty: a lone node)")
	gossipAdvertise := fs.String("gossip-advertise", "", "gossip host:port other nodes reach (default: from --gossip-listen)")
	gossipKeys := fs.String("gossip-keyring", "", "gossip keyring file (from \"meshd gossip keygen\"); required with --gossip-listen")
	nodeCred := fs.String("node-credential", "", "this node's credential (from \"meshd node credential\"); required with --gossip-listen (default: node.cred in --state-dir)")
	label := fs.String("cluster-label", "postern", "cluster label: nodes with another label are ignored")
	join := fs.String("join", "", "comma-separated gossip host:port of other mesh nodes to join (and rejoin after a partition)")
	publicURL := fs.String("public-url", "", "HTTPS base URL connectors attach at, e.g. https://mesh-eu-1.example.com (default: https:// + --listen)")
	strategy := fs.String("route-strategy", "latency", "route choice: latency, nearest or random")
	drain := fs.Duration("drain-timeout", 10*time.Second, "on SIGTERM (after --drain-delay), stop accepting connections, wait for the requests in flight, then for the relayed ones, before leaving the cluster; at most this long")
	drainDelay := fs.Duration("drain-delay", 0, "on SIGTERM, turn /readyz to 503 at once but keep accepting connections this long, so load balancers take the node out first (set it to their health-check interval times their unhealthy threshold)")
	connsPerIP := fs.Int("conns-per-ip", meshnode.DefaultConnsPerClient, "connections one client address (IPv4, or IPv6 /64) may hold open on the public listener; past it: 429 (negative: no cap)")
	unauthRate := fs.Float64("unauth-rate", float64(edge.DefaultUnauthRate), "answers per second one client address may get without signing in (sign-in redirects, 401, 404, 400); past it: 429 (negative: no limit)")
	unauthBurst := fs.Int("unauth-burst", edge.DefaultUnauthBurst, "burst of --unauth-rate")
	maxHeader := fs.Int("max-header-bytes", meshnode.DefaultMaxHeaderBytes, "largest request header accepted on the public listener")
	idle := fs.Duration("idle-timeout", meshnode.DefaultIdleTimeout, "close keep-alive connections idle this long (public and tunnel listeners)")
	tunnelPerPeer := fs.Int("tunnel-conns-per-peer", meshnode.DefaultTunnelConnsPerPeer, "connections one connector may hold open to the node inside the tunnel (negative: no cap)")
	deploy := addDeployFlags(fs)
	return func(ctx context.Context) error {
		limits := meshnode.Limits{ConnsPerClient: *connsPerIP, MaxHeaderBytes: *maxHeader, IdleTimeout: *idle,
			TunnelConnsPerPeer: *tunnelPerPeer, Unauth: edge.Limits{UnauthRate: rate.Limit(*unauthRate), UnauthBurst: *unauthBurst}}
		if *unauthRate < 0 {
			limits.Unauth.UnauthRate = rate.Inf
		}
		if *unauthBurst <= 0 || *maxHeader <= 0 || *idle <= 0 {
			return cli.Usagef("--unauth-burst, --max-header-bytes and --idle-timeout must be positive")
		}
		return run(ctx, runFlags{id: *id, region: *region, listen: *listen, certFile: *certFile, keyFile: *keyFile, plain: *plain,
			wgListen: *wgListen, wgAdvertise: *wgAdvertise, stateDir: *stateDir, authKey: *authKey, catalogPath: *catalogPath,
			admin: *admin, authURL: *authURL, authCA: *authCA, bearerCA: *bearerCA, logLevel: *logLevel, gossipListen: *gossipListen,
			gossipAdvertise: *gossipAdvertise, gossipKeys: *gossipKeys, nodeCred: *nodeCred, label: *label, join: *join, publicURL: *publicURL,
			strategy: *strategy, drain: *drain, drainDelay: *drainDelay, limits: limits, deploy: deploy, auditLog: *auditLog})
	}
}

// runFlags are the parsed flags of "meshd run".
type runFlags struct {
	id, region, listen, certFile, keyFile, wgListen, wgAdvertise, stateDir, authKey, catalogPath string
	admin, authURL, authCA, logLevel, gossipListen, gossipAdvertise, gossipKeys, label, join     string
	publicURL, strategy, nodeCred, bearerCA, auditLog                                            string
	plain                                                                                        bool
	drain, drainDelay                                                                            time.Duration
	limits                                                                                       meshnode.Limits
	deploy                                                                                       *deployFlags
}

func run(ctx context.Context, f runFlags) (err error) {
	logger, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	audit, closeAudit, err := openAudit(f.auditLog)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeAudit()) }()
	if f.id == "" {
		f.id, _ = os.Hostname()
	}
	tr, err := tracing.Start(ctx, "meshd", os.Getenv, logger, attribute.String("postern.node", f.id))
	if err != nil {
		return err
	}
	defer tr.Close(logger)
	authClient, err := httpClientWithCA(f.authCA)
	if err != nil {
		return err
	}
	bearerClient, err := httpClientWithCA(f.bearerCA)
	if err != nil {
		return err
	}
	wgAddr, err := netip.ParseAddrPort(f.wgListen)
	if err != nil {
		return fmt.Errorf("--wg-listen %q: %w", f.wgListen, err)
	}
	if f.authKey == "" {
		return cli.Usagef("--authority-key is required (create one with \"meshd authority init --out FILE\")")
	}
	key, err := authority.LoadKey(f.authKey)
	if err != nil {
		return err
	}
	auth, err := authority.New(authority.Config{Key: key})
	if err != nil {
		return err
	}
	cfg := meshnode.Config{ID: f.id, Region: f.region, Listen: f.listen, PlainHTTP: f.plain, WGListen: wgAddr,
		WGAdvertise: f.wgAdvertise, StateDir: f.stateDir, Authority: auth, CatalogPath: f.catalogPath,
		AdminListen: f.admin, AuthURL: f.authURL, AuthHTTPClient: authClient, BearerHTTPClient: bearerClient, Logger: logger,
		DrainTimeout: f.drain, DrainDelay: f.drainDelay, Limits: f.limits, Registry: cli.NewRegistry("meshd"), Audit: audit,
		Tracer: tr.Tracer()}
	if f.gossipListen != "" {
		if f.gossipKeys == "" {
			return fmt.Errorf("--gossip-keyring is required with --gossip-listen (create one with \"meshd gossip keygen --out FILE\" and copy it to every node)")
		}
		keys, err := gossip.LoadKeyring(f.gossipKeys)
		if err != nil {
			return err
		}
		s, err := route.ParseStrategy(f.strategy)
		if err != nil {
			return fmt.Errorf("--route-strategy: %w", err)
		}
		cfg.Cluster = &meshnode.ClusterConfig{GossipListen: f.gossipListen, GossipAdvertise: f.gossipAdvertise, Keys: keys,
			Label: f.label, Seeds: cli.List(f.join), PublicURL: f.publicURL, Strategy: s}
	}
	if f.gossipListen != "" || f.authURL != "" {
		// A cluster member proves itself with it; a node serving
		// pre-authenticated apps signs their sign-in requests with its key.
		if f.nodeCred == "" {
			f.nodeCred = meshnode.NodeCredentialPath(f.stateDir)
		}
		if cfg.NodeCredential, err = auth.LoadNodeCredential(f.nodeCred); err != nil {
			return err
		}
	}
	if err := f.deploy.apply(&cfg, f.catalogPath); err != nil {
		return err
	}
	if !f.plain && (cfg.ACME == nil || f.certFile != "") {
		if f.certFile == "" || f.keyFile == "" {
			return fmt.Errorf("--tls-cert and --tls-key are required (or --acme-directory, or --insecure-plain-http for local use)")
		}
		// Served from the files, reloaded when they change (pkg/certfile).
		if cfg.TLSFiles, err = certfile.Load(certfile.Config{CertFile: f.certFile, KeyFile: f.keyFile, Logger: cfg.Logger}); err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
	}
	node, err := meshnode.New(cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, node.Close()) }()
	return node.Run(ctx)
}

func tokenCreateCmd(fs *flag.FlagSet) func(context.Context) error {
	group := fs.String("group", "", "connector group the token enrols into (required; must be in the catalogue)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token stays valid (at most 168h)")
	authKey := fs.String("authority-key", "", "mesh authority key file (required)")
	catalogPath := fs.String("catalog", defaultCatalog, "the mesh's catalogue: a group it does not list is refused")
	return func(context.Context) error { return tokenCreate(*group, *ttl, *authKey, *catalogPath) }
}

func tokenCreate(group string, ttl time.Duration, authKeyPath, catalogPath string) error {
	if group == "" || authKeyPath == "" {
		return cli.Usagef("--group and --authority-key are required")
	}
	cat, err := catalog.Load(catalogPath)
	if err != nil {
		return fmt.Errorf("%w (--catalog names the mesh's catalogue, whose connector groups a token may name)", err)
	}
	if _, ok := cat.Group(group); !ok {
		var ids []string
		for _, g := range cat.Groups() {
			ids = append(ids, g.ID)
		}
		return fmt.Errorf("connector group %q is not in the catalogue %s (it has: %s); add it under connector_groups first",
			group, catalogPath, strings.Join(ids, ", "))
	}
	key, err := authority.LoadKey(authKeyPath)
	if err != nil {
		return err
	}
	auth, err := authority.New(authority.Config{Key: key})
	if err != nil {
		return err
	}
	tok, info, err := auth.MintEnrollToken(group, ttl)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "enrolment token for group %s, single use, expires %s:\n", info.Group, info.Expires.Format(time.RFC3339))
	fmt.Println(tok)
	return nil
}

func authorityInitCmd(fs *flag.FlagSet) func(context.Context) error {
	out := fs.String("out", "", "where to write the new key (0600; refuses to overwrite)")
	return func(context.Context) error { return authorityInit(*out) }
}

func authorityInit(out string) error {
	if out == "" {
		return cli.Usagef("--out is required")
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists; refusing to overwrite a mesh authority key", out)
	}
	key, err := authority.GenerateKey()
	if err != nil {
		return err
	}
	if err := authority.SaveKey(out, key); err != nil {
		return err
	}
	fmt.Printf("wrote mesh authority key %s (kid %s); copy it to every mesh node, mode 0600\n", out, key.KeyID())
	fmt.Printf("its public key, for the auth functions (POSTERN_MESH_AUTHORITY_PUBLIC_KEY): %s\n", authority.MarshalPublicKey(key.Public()))
	return nil
}

func authorityPublicKeyCmd(fs *flag.FlagSet) func(context.Context) error {
	keyFile := fs.String("authority-key", "", "the mesh authority key (required)")
	return func(context.Context) error { return authorityPublicKey(*keyFile) }
}

// authorityPublicKey prints the authority's public key: the auth
// functions trust it (POSTERN_MESH_AUTHORITY_PUBLIC_KEY) to verify the
// node credentials of signed app requests.
func authorityPublicKey(keyFile string) error {
	if keyFile == "" {
		return cli.Usagef("--authority-key is required")
	}
	key, err := authority.LoadKey(keyFile)
	if err != nil {
		return err
	}
	fmt.Println(authority.MarshalPublicKey(key.Public()))
	return nil
}

func statusCmd(fs *flag.FlagSet) func(context.Context) error {
	admin := fs.String("admin", defaultAdmin, "the node's loopback admin address")
	asJSON := fs.Bool("json", false, "print the status as JSON instead of tables")
	return func(ctx context.Context) error {
		body, err := adminGet(ctx, *admin, "/status")
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if *asJSON {
			_, err = os.Stdout.Write(body)
			return err
		}
		var st meshnode.Status
		if err := json.Unmarshal(body, &st); err != nil {
			return fmt.Errorf("status: %s answered something else than a node's status: %w", *admin, err)
		}
		return meshnode.WriteStatus(os.Stdout, st)
	}
}

// adminGet fetches path from a node's admin address and returns the body
// of a 200 answer.
func adminGet(ctx context.Context, admin, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+admin+path, nil)
	if err != nil {
		return nil, cli.Usagef("--admin %q: %v", admin, err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is a node running with --admin %s?)", err, admin)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func gossipKeygenCmd(fs *flag.FlagSet) func(context.Context) error {
	out := fs.String("out", "", "where to write the new keyring (0600; refuses to overwrite)")
	return func(context.Context) error { return gossipKeygen(*out) }
}

func gossipKeygen(out string) error {
	if out == "" {
		return cli.Usagef("--out is required")
	}
	if err := gossip.WriteNewKeyring(out); err != nil {
		return err
	}
	fmt.Printf("wrote gossip keyring %s; copy it to every mesh node (mode 0600) and pass it as --gossip-keyring\n", out)
	return nil
}

func routeExplainCmd(fs *flag.FlagSet) func(context.Context) error {
	admin := fs.String("admin", defaultAdmin, "the node's loopback admin address")
	app := fs.String("app", "", "app id or external host (required)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	return func(ctx context.Context) error {
		if *app == "" {
			return cli.Usagef("--app is required")
		}
		q := url.Values{"app": {*app}}
		if !*asJSON {
			q.Set("format", "text")
		}
		body, err := adminGet(ctx, *admin, "/routes/explain?"+q.Encode())
		if err != nil {
			return fmt.Errorf("route explain: %w", err)
		}
		_, err = os.Stdout.Write(body)
		return err
	}
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, cli.Usagef("--log-level %q: %v", level, err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// httpClientWithCA returns a client that trusts the system roots plus the
// certificates in caFile (none if empty).
func httpClientWithCA(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{Timeout: 10 * time.Second}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate found", caFile)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t, Timeout: 10 * time.Second}, nil
}

// checkCatalogSetting checks the catalogue that "meshd run" would load.
func checkCatalogSetting(settings []cli.Setting) error {
	for _, s := range settings {
		if s.Flag == "catalog" {
			return catalogCheck(s.Value)
		}
	}
	return nil
}

func catalogCheckCmd(fs *flag.FlagSet) func(context.Context) error {
	path := fs.String("catalog", defaultCatalog, "the catalogue file to check")
	return func(context.Context) error { return catalogCheck(*path) }
}

// catalogCheck loads the catalogue at path and runs its policy tests.
func catalogCheck(path string) error {
	cat, err := catalog.Load(path)
	if err != nil {
		return err
	}
	results := cat.RunPolicyTests(time.Now())
	failed := 0
	for _, r := range results {
		if !r.Pass {
			failed++
			fmt.Fprintf(os.Stderr, "%s\n", r)
		}
	}
	if failed > 0 {
		return fmt.Errorf("catalog %s: %d of %d policy tests failed", path, failed, len(results))
	}
	fmt.Printf("catalog %s: ok (%d apps, %d connector groups, %d policy tests passed)\n", path, len(cat.Apps()), len(cat.Groups()), len(results))
	return nil
}

// openAudit opens the audit stream that --audit-log names: nil for "",
// stdout for "-", else the file, appended to (rotation is left to the
// platform: logrotate with copytruncate, or the service manager).
func openAudit(path string) (*slog.Logger, func() error, error) {
	switch path {
	case "":
		return nil, func() error { return nil }, nil
	case "-":
		return slog.New(slog.NewJSONHandler(os.Stdout, nil)), func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--audit-log: %w", err)
	}
	closeFn := func() error {
		// A lost close of a written file can lose the last records: say so.
		if err := f.Close(); err != nil {
			return fmt.Errorf("--audit-log: %w", err)
		}
		return nil
	}
	return slog.New(slog.NewJSONHandler(f, nil)), closeFn, nil
}
