// Command auth is Postern's auth function: it serves pkg/authfn on AWS
// Lambda (function URLs and API Gateway HTTP APIs, payload v2) when
// AWS_LAMBDA_RUNTIME_API is set, and as an HTTP server otherwise (HTTPS with
// --tls-cert and --tls-key).
// Configuration comes from environment variables; see functions/README.md.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/postern/postern/pkg/authfn"
	"github.com/postern/postern/pkg/awssecrets"
	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/session"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := &cli.App{Name: "auth", Summary: "the Postern auth function (AWS Lambda, or a plain HTTP server locally)", Default: "serve",
		Commands: []cli.Command{{Name: "serve", Summary: "serve on Lambda when AWS_LAMBDA_RUNTIME_API is set, else plain HTTP on --listen; configured by POSTERN_* variables (functions/README.md)",
			Flags: serveCmd},
			{Name: "user-id", Summary: "print the user id that policies name for a user of a generic OpenID Connect provider (POSTERN_OIDC_MODE=oidc)",
				Flags: userIDCmd}}}
	code := app.Exit(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func serveCmd(fs *flag.FlagSet) func(context.Context) error {
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on when not running on Lambda (plain HTTP unless --tls-cert and --tls-key are given)")
	certFile := fs.String("tls-cert", "", "TLS certificate chain (PEM) to serve HTTPS on --listen; with --tls-key")
	keyFile := fs.String("tls-key", "", "TLS private key (PEM); with --tls-cert")
	return func(ctx context.Context) error {
		if (*certFile == "") != (*keyFile == "") {
			return cli.Usagef("--tls-cert and --tls-key go together")
		}
		logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		if err := run(ctx, serveOptions{listen: *listen, certFile: *certFile, keyFile: *keyFile}, logger); err != nil {
			logger.Error("auth_exit", "error", err.Error())
			return cli.ErrSilent
		}
		return nil
	}
}

// serveOptions are the flags of "auth serve".
type serveOptions struct {
	listen, certFile, keyFile string
}

func run(ctx context.Context, opts serveOptions, logger *slog.Logger) error {
	var sm session.SecretsGetter
	for _, name := range []string{authfn.EnvKeys, authfn.EnvStateKey, authfn.EnvClientSecret} {
		if strings.HasPrefix(os.Getenv(name), "secretsmanager:") && sm == nil {
			c, err := awssecrets.New(ctx, awssecrets.Config{})
			if err != nil {
				return err
			}
			sm = c
		}
	}
	cfg, err := authfn.ConfigFromEnv(ctx, os.Getenv, sm)
	if err != nil {
		return err
	}
	if os.Getenv("POSTERN_CATALOG") != "" {
		logger.Warn("auth_catalog_ignored", "reason", "POSTERN_CATALOG is no longer read: each sign-in link carries the app's requirements, signed by a mesh node")
	}
	cfg.Logger = logger
	svc, err := authfn.New(cfg)
	if err != nil {
		return err
	}
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		lambda.StartWithOptions(httpadapter.NewV2(svc).ProxyWithContext, lambda.WithContext(ctx))
		return nil
	}
	l, err := listen(opts)
	if err != nil {
		return err
	}
	return serve(ctx, l, svc, opts.certFile != "", logger)
}

// listen binds opts.listen, with TLS when a certificate is given (loaded
// now, so that a bad file fails the start rather than every handshake).
func listen(opts serveOptions) (net.Listener, error) {
	var cfg *tls.Config
	if opts.certFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.certFile, opts.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	l, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if cfg != nil {
		l = tls.NewListener(l, cfg)
	}
	return l, nil
}

// serve serves h on l (a TLS listener when tlsOn) until ctx ends, then shuts down within 5 s.
func serve(ctx context.Context, l net.Listener, h http.Handler, tlsOn bool, logger *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	logger.Info("auth_listening", "addr", l.Addr().String(), "tls", tlsOn)
	err := srv.Serve(l)
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	<-done
	return nil
}

func userIDCmd(fs *flag.FlagSet) func(context.Context) error {
	issuer := fs.String("issuer", "", "the provider's issuer exactly as its tokens' iss claim has it (trailing slash and all)")
	user := fs.String("user", "", "the value of the user claim (POSTERN_OIDC_CLAIM_USER, default sub) for this user")
	return func(context.Context) error {
		if *issuer == "" || *user == "" {
			return cli.Usagef("--issuer and --user are required")
		}
		fmt.Println(authfn.PrincipalID(*issuer, *user))
		return nil
	}
}
