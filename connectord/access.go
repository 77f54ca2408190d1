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
	"strings"

	"github.com/postern/postern/pkg/access"
	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/loopback"
)

// accessHelp follows the help of every "access" command.
const accessHelp = `A bearer token (an Entra access token for the app's API, a workload token)
is read from POSTERN_TOKEN or --token-file; without one, a person signs in
with the browser once and the sign-in is cached (0600) until it expires.
The stream ends when either side closes (there is no half-close).`

// accessCommands are the rows of "connectord access": the user's client of
// TCP apps (package access), which links none of the connector's secrets.
func accessCommands() []cli.Command {
	return []cli.Command{
		{Name: "access tcp", Summary: "listen on a loopback address and carry each connection to a TCP app", Help: accessHelp,
			Flags: accessCmd(func(ctx context.Context, c *access.Client, o *accessOpts) error { return accessTCP(ctx, c, o.listen) })},
		{Name: "access ssh", Summary: "carry standard input and output to a TCP app (ssh -o ProxyCommand='connectord access ssh --app https://HOST')", Help: accessHelp,
			Flags: accessCmd(func(ctx context.Context, c *access.Client, _ *accessOpts) error {
				return c.Stdio(ctx, os.Stdin, os.Stdout)
			})},
		{Name: "access login", Summary: "sign in to a TCP app with the browser now and cache the sign-in", Help: accessHelp,
			Flags: accessCmd(func(ctx context.Context, c *access.Client, _ *accessOpts) error { return c.Login(ctx) })},
		{Name: "access logout", Summary: "forget the cached sign-in of a TCP app",
			Flags: accessCmd(func(_ context.Context, c *access.Client, _ *accessOpts) error { return c.Logout() })},
	}
}

// accessOpts are the flags every access command shares.
type accessOpts struct {
	app, listen, tokenFile, meshCA, meshAddr, cacheDir string
	noBrowser                                          bool
}

// accessCmd declares the shared flags and runs do with the client they
// configure.
func accessCmd(do func(context.Context, *access.Client, *accessOpts) error) func(fs *flag.FlagSet) func(context.Context) error {
	return func(fs *flag.FlagSet) func(context.Context) error {
		o := &accessOpts{}
		fs.StringVar(&o.app, "app", "", "the TCP app's URL, e.g. https://ssh.apps.example.com (required)")
		fs.StringVar(&o.listen, "listen", "127.0.0.1:2222", "access tcp: the loopback address to listen on")
		fs.StringVar(&o.tokenFile, "token-file", "", "read the bearer token from this file (default: POSTERN_TOKEN, else a browser sign-in)")
		fs.StringVar(&o.meshCA, "mesh-ca", "", "extra CA file (PEM) that signs the mesh's certificate")
		fs.StringVar(&o.meshAddr, "mesh-addr", "", "connect to this host:port whatever the app's host resolves to (a given mesh node, or the local demo)")
		fs.StringVar(&o.cacheDir, "cache-dir", "", "where browser sign-ins are cached (default: the user's cache directory)")
		fs.BoolVar(&o.noBrowser, "no-browser", false, "print the sign-in URL instead of opening a browser")
		return func(ctx context.Context) error {
			if o.app == "" {
				return cli.Usagef("--app is required")
			}
			c, err := newAccessClient(o)
			if err != nil {
				return err
			}
			return do(ctx, c, o)
		}
	}
}

func newAccessClient(o *accessOpts) (*access.Client, error) {
	token := os.Getenv("POSTERN_TOKEN")
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	hc, err := accessHTTPClient(o.meshCA, o.meshAddr)
	if err != nil {
		return nil, err
	}
	cfg := access.Config{AppURL: o.app, Token: token, CacheDir: o.cacheDir, Prompt: os.Stderr, HTTPClient: hc,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if !o.noBrowser {
		cfg.OpenBrowser = access.OpenBrowser
	}
	return access.New(cfg)
}

func accessTCP(ctx context.Context, c *access.Client, addr string) error {
	if loopback.CheckAddr(addr) != nil || addr == "" {
		return cli.Usagef("--listen %q: must be a loopback address such as 127.0.0.1:2222 (anyone who reaches it uses your sign-in)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "connectord access: listening on %s; Ctrl-C stops\n", l.Addr())
	return c.Serve(ctx, l)
}

// accessHTTPClient returns an HTTP/1.1 client for WebSocket streams: no
// overall timeout (a stream lasts as long as the connection); with addr,
// every connection goes to addr.
func accessHTTPClient(caFile, addr string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = false
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, cli.Usagef("--mesh-addr %q: want host:port", addr)
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
