package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/postern/postern/pkg/access"
)

const accessUsage = `usage: connectord access <mode> --app https://HOST [flags]

modes:
  tcp     listen on a loopback address and carry each connection to the TCP app
  ssh     carry standard input and output (for ssh -o ProxyCommand='connectord access ssh --app https://HOST')
  login   sign in with the browser now and cache the sign-in
  logout  forget the cached sign-in

A bearer token (an Entra access token for the app's API, a workload token)
is read from POSTERN_TOKEN or --token-file; without one, a person signs in
with the browser once and the sign-in is cached (0600) until it expires.
`

// accessCmd is the user's client of TCP apps (package access).
func accessCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, accessUsage)
		return fmt.Errorf("no access mode given")
	}
	mode := args[0]
	fs := flag.NewFlagSet("connectord access "+mode, flag.ContinueOnError)
	app := fs.String("app", "", "the TCP app's URL, e.g. https://ssh.apps.example.com (required)")
	listen := fs.String("listen", "127.0.0.1:2222", "tcp mode: loopback address to listen on")
	tokenFile := fs.String("token-file", "", "read the bearer token from this file (default: POSTERN_TOKEN, else a browser sign-in)")
	meshCA := fs.String("mesh-ca", "", "extra CA file (PEM) that signs the mesh's certificate")
	cacheDir := fs.String("cache-dir", "", "where browser sign-ins are cached (default: the user's cache directory)")
	noBrowser := fs.Bool("no-browser", false, "print the sign-in URL instead of opening a browser")
	meshAddr := fs.String("mesh-addr", "", "connect to this host:port whatever the app's host resolves to (a given mesh node, or a local demo)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	token := os.Getenv("POSTERN_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = string(trimSpace(b))
	}
	hc, err := accessClient(*meshCA, *meshAddr)
	if err != nil {
		return err
	}
	cfg := access.Config{AppURL: *app, Token: token, CacheDir: *cacheDir, Prompt: os.Stderr, HTTPClient: hc,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if !*noBrowser {
		cfg.OpenBrowser = access.OpenBrowser
	}
	c, err := access.New(cfg)
	if err != nil {
		return err
	}
	switch mode {
	case "tcp":
		return accessTCP(ctx, c, *listen)
	case "ssh":
		return c.Stdio(ctx, os.Stdin, os.Stdout)
	case "login":
		return c.Login(ctx)
	case "logout":
		return c.Logout()
	}
	fmt.Fprint(os.Stderr, accessUsage)
	return fmt.Errorf("unknown access mode %q", mode)
}

func accessTCP(ctx context.Context, c *access.Client, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return fmt.Errorf("--listen %q: must be a loopback address such as 127.0.0.1:2222 (anyone who reaches it uses your sign-in)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "connectord access: listening on %s; Ctrl-C stops\n", l.Addr())
	return c.Serve(ctx, l)
}

// accessClient returns an HTTP/1.1 client for WebSocket streams: no
// overall timeout (a stream lasts as long as the connection); with addr,
// every connection goes to addr.
func accessClient(caFile, addr string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = false
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--mesh-addr %q: want host:port", addr)
		}
		d := &net.Dialer{}
		t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	}
	if caFile != "" {
		pool, err := loadPool(caFile, true)
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t}, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
