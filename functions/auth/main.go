// Command auth is Postern's auth function: it serves pkg/authfn on AWS
// Lambda (function URLs and API Gateway HTTP APIs, payload v2) when
// AWS_LAMBDA_RUNTIME_API is set, and as a plain HTTP server otherwise.
// Configuration comes from environment variables; see functions/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
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
			Flags: serveCmd}}}
	code := app.Exit(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func serveCmd(fs *flag.FlagSet) func(context.Context) error {
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve plain HTTP on when not running on Lambda")
	return func(ctx context.Context) error {
		logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		if err := run(ctx, *listen, logger); err != nil {
			logger.Error("auth_exit", "error", err.Error())
			return cli.ErrSilent
		}
		return nil
	}
}

func run(ctx context.Context, listen string, logger *slog.Logger) error {
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
	srv := &http.Server{Addr: listen, Handler: svc, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	logger.Info("auth_listening", "addr", listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
