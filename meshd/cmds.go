package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"golang.org/x/time/rate"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/route"
)

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshd run", flag.ContinueOnError)
	id := fs.String("id", "", "node id (default: host name)")
	region := fs.String("region", "", "region label, e.g. eu-west")
	listen := fs.String("listen", ":443", "public HTTPS listen address")
	certFile := fs.String("tls-cert", "", "TLS certificate chain (PEM)")
	keyFile := fs.String("tls-key", "", "TLS private key (PEM)")
	plain := fs.Bool("insecure-plain-http", false, "serve plain HTTP instead of TLS (local use only)")
	wgListen := fs.String("wg-listen", "0.0.0.0:51820", "WireGuard UDP listen address")
	wgAdvertise := fs.String("wg-advertise", "", "WireGuard endpoint host:port told to connectors (default: the API host name and the listen port)")
	stateDir := fs.String("state-dir", "/var/lib/postern-meshd", "directory for the node's keys, used enrolment tokens, revocations and known mesh members")
	authKey := fs.String("authority-key", "", "mesh authority key file (from \"meshd authority init\")")
	catalogPath := fs.String("catalog", "/etc/postern/catalog.yaml", "app catalogue: a file, or s3://bucket/key (read with the instance role, reloaded live on change)")
	admin := fs.String("admin-listen", "127.0.0.1:9100", "loopback admin address for /healthz, /metrics and /status (empty: off)")
	authURL := fs.String("auth-url", "", "the auth functions' base URL, e.g. https://auth.example.com (enables pre-authenticated apps)")
	authCA := fs.String("auth-ca", "", "extra CA file (PEM) that signs the auth functions' certificate")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	gossipListen := fs.String("gossip-listen", "", "gossip address (UDP and TCP) to join a cluster of mesh nodes, e.g. 0.0.0.0:7946 (empty: a lone node)")
	gossipAdvertise := fs.String("gossip-advertise", "", "gossip host:port other nodes reach (default: from --gossip-listen)")
	gossipKeys := fs.String("gossip-keyring", "", "gossip keyring file (from \"meshd gossip keygen\"); required with --gossip-listen")
	nodeCred := fs.String("node-credential", "", "this node's credential (from \"meshd node credential\"); required with --gossip-listen (default: node.cred in --state-dir)")
	label := fs.String("cluster-label", "postern", "cluster label: nodes with another label are ignored")
	join := fs.String("join", "", "comma-separated gossip host:port of other mesh nodes to join (and rejoin after a partition)")
	publicURL := fs.String("public-url", "", "HTTPS base URL connectors attach at, e.g. https://mesh-eu-1.example.com (default: https:// + --listen)")
	strategy := fs.String("route-strategy", "latency", "route choice: latency, nearest or random")
	drain := fs.Duration("drain-timeout", 10*time.Second, "on SIGTERM, stop taking relayed requests and wait this long for requests in flight before leaving the cluster")
	connsPerIP := fs.Int("conns-per-ip", meshnode.DefaultConnsPerClient, "connections one client address (IPv4, or IPv6 /64) may hold open on the public listener; past it: 429 (negative: no cap)")
	unauthRate := fs.Float64("unauth-rate", float64(edge.DefaultUnauthRate), "answers per second one client address may get without signing in (sign-in redirects, 401, 404, 400); past it: 429 (negative: no limit)")
	unauthBurst := fs.Int("unauth-burst", edge.DefaultUnauthBurst, "burst of --unauth-rate")
	maxHeader := fs.Int("max-header-bytes", meshnode.DefaultMaxHeaderBytes, "largest request header accepted on the public listener")
	idle := fs.Duration("idle-timeout", meshnode.DefaultIdleTimeout, "close keep-alive connections idle this long (public and tunnel listeners)")
	tunnelPerPeer := fs.Int("tunnel-conns-per-peer", meshnode.DefaultTunnelConnsPerPeer, "connections one connector may hold open to the node inside the tunnel (negative: no cap)")
	deploy := addDeployFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	limits := meshnode.Limits{ConnsPerClient: *connsPerIP, MaxHeaderBytes: *maxHeader, IdleTimeout: *idle,
		TunnelConnsPerPeer: *tunnelPerPeer, Unauth: edge.Limits{UnauthRate: rate.Limit(*unauthRate), UnauthBurst: *unauthBurst}}
	if *unauthRate < 0 {
		limits.Unauth.UnauthRate = rate.Inf
	}
	if *unauthBurst <= 0 || *maxHeader <= 0 || *idle <= 0 {
		return fmt.Errorf("--unauth-burst, --max-header-bytes and --idle-timeout must be positive")
	}
	logger, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	authClient, err := httpClientWithCA(*authCA)
	if err != nil {
		return err
	}
	wgAddr, err := netip.ParseAddrPort(*wgListen)
	if err != nil {
		return fmt.Errorf("--wg-listen %q: %w", *wgListen, err)
	}
	if *authKey == "" {
		return fmt.Errorf("--authority-key is required (create one with \"meshd authority init --out FILE\")")
	}
	key, err := authority.LoadKey(*authKey)
	if err != nil {
		return err
	}
	auth, err := authority.New(authority.Config{Key: key})
	if err != nil {
		return err
	}
	cfg := meshnode.Config{ID: *id, Region: *region, Listen: *listen, PlainHTTP: *plain, WGListen: wgAddr,
		WGAdvertise: *wgAdvertise, StateDir: *stateDir, Authority: auth, CatalogPath: *catalogPath,
		AdminListen: *admin, AuthURL: *authURL, AuthHTTPClient: authClient, Logger: logger, DrainTimeout: *drain, Limits: limits}
	if cfg.ID == "" {
		cfg.ID, _ = os.Hostname()
	}
	if *gossipListen != "" {
		if *gossipKeys == "" {
			return fmt.Errorf("--gossip-keyring is required with --gossip-listen (create one with \"meshd gossip keygen --out FILE\" and copy it to every node)")
		}
		keys, err := gossip.LoadKeyring(*gossipKeys)
		if err != nil {
			return err
		}
		s, err := route.ParseStrategy(*strategy)
		if err != nil {
			return fmt.Errorf("--route-strategy: %w", err)
		}
		cfg.Cluster = &meshnode.ClusterConfig{GossipListen: *gossipListen, GossipAdvertise: *gossipAdvertise, Keys: keys,
			Label: *label, Seeds: splitList(*join), PublicURL: *publicURL, Strategy: s}
	}
	if *gossipListen != "" || *authURL != "" {
		// A cluster member proves itself with it; a node serving
		// pre-authenticated apps signs their sign-in requests with its key.
		if *nodeCred == "" {
			*nodeCred = meshnode.NodeCredentialPath(*stateDir)
		}
		if cfg.NodeCredential, err = auth.LoadNodeCredential(*nodeCred); err != nil {
			return err
		}
	}
	if err := deploy.apply(&cfg, *catalogPath); err != nil {
		return err
	}
	if !*plain && (cfg.ACME == nil || *certFile != "") {
		if *certFile == "" || *keyFile == "" {
			return fmt.Errorf("--tls-cert and --tls-key are required (or --acme-directory, or --insecure-plain-http for local use)")
		}
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	node, err := meshnode.New(cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	return node.Run(ctx)
}

func tokenCreateCmd(args []string) error {
	fs := flag.NewFlagSet("meshd token create", flag.ContinueOnError)
	group := fs.String("group", "", "connector group the token enrols into (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token stays valid (at most 168h)")
	authKey := fs.String("authority-key", "", "mesh authority key file (required)")
	catalogPath := fs.String("catalog", "", "if set, refuse groups that this catalogue does not list")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *group == "" || *authKey == "" {
		return fmt.Errorf("--group and --authority-key are required")
	}
	if *catalogPath != "" {
		cat, err := catalog.Load(*catalogPath)
		if err != nil {
			return err
		}
		if _, ok := cat.Group(*group); !ok {
			return fmt.Errorf("connector group %q is not in %s", *group, *catalogPath)
		}
	}
	key, err := authority.LoadKey(*authKey)
	if err != nil {
		return err
	}
	auth, err := authority.New(authority.Config{Key: key})
	if err != nil {
		return err
	}
	tok, info, err := auth.MintEnrollToken(*group, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "enrolment token for group %s, single use, expires %s:\n", info.Group, info.Expires.Format(time.RFC3339))
	fmt.Println(tok)
	return nil
}

func authorityInitCmd(args []string) error {
	fs := flag.NewFlagSet("meshd authority init", flag.ContinueOnError)
	out := fs.String("out", "", "where to write the new key (0600; refuses to overwrite)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists; refusing to overwrite a mesh authority key", *out)
	}
	key, err := authority.GenerateKey()
	if err != nil {
		return err
	}
	if err := authority.SaveKey(*out, key); err != nil {
		return err
	}
	fmt.Printf("wrote mesh authority key %s (kid %s); copy it to every mesh node, mode 0600\n", *out, key.KeyID())
	fmt.Printf("its public key, for the auth functions (POSTERN_MESH_AUTHORITY_PUBLIC_KEY): %s\n", authority.MarshalPublicKey(key.Public()))
	return nil
}

// authorityPublicKeyCmd prints the authority's public key: the auth
// functions trust it (POSTERN_MESH_AUTHORITY_PUBLIC_KEY) to verify the
// node credentials of signed app requests.
func authorityPublicKeyCmd(args []string) error {
	fs := flag.NewFlagSet("meshd authority public-key", flag.ContinueOnError)
	keyFile := fs.String("authority-key", "", "the mesh authority key (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := authority.LoadKey(*keyFile)
	if err != nil {
		return err
	}
	fmt.Println(authority.MarshalPublicKey(key.Public()))
	return nil
}

func statusCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshd status", flag.ContinueOnError)
	admin := fs.String("admin", "127.0.0.1:9100", "the node's admin address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+*admin+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

func gossipKeygenCmd(args []string) error {
	fs := flag.NewFlagSet("meshd gossip keygen", flag.ContinueOnError)
	out := fs.String("out", "", "where to write the new keyring (0600; refuses to overwrite)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	if err := gossip.WriteNewKeyring(*out); err != nil {
		return err
	}
	fmt.Printf("wrote gossip keyring %s; copy it to every mesh node (mode 0600) and pass it as --gossip-keyring\n", *out)
	return nil
}

func routeExplainCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshd route explain", flag.ContinueOnError)
	admin := fs.String("admin", "127.0.0.1:9100", "the node's admin address")
	app := fs.String("app", "", "app id or external host (required)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *app == "" {
		return fmt.Errorf("--app is required")
	}
	q := url.Values{"app": {*app}}
	if !*asJSON {
		q.Set("format", "text")
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+*admin+"/routes/explain?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("route explain: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("route explain: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("route explain: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = os.Stdout.Write(body)
	return err
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
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
