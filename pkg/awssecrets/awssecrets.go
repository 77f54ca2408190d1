// Package awssecrets reads secrets from AWS Secrets Manager for the auth
// functions: it implements session.SecretsGetter with the AWS SDK v2, so
// that "secretsmanager:<arn or name>" key sources work on Lambda.
//
// It sits at start-up of the auth functions only (loading the session
// signing keys), never on a request path, and lives in its own package so
// that mesh nodes and connectors never link the AWS SDK.
package awssecrets

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/postern/postern/pkg/session"
)

// ErrNotString means the secret holds binary data, not a string.
var ErrNotString = errors.New("secret has no string value")

// Config configures a [Client].
type Config struct {
	// AWS is the SDK configuration; nil means config.LoadDefaultConfig
	// (environment, shared files, the Lambda execution role).
	AWS *aws.Config
	// BaseEndpoint overrides the Secrets Manager endpoint (tests, VPC
	// endpoints); empty means the SDK's regional endpoint.
	BaseEndpoint string
}

// Client reads secret strings from Secrets Manager. It is safe for
// concurrent use.
type Client struct {
	sm *secretsmanager.Client
}

var _ session.SecretsGetter = (*Client)(nil)

// New returns a client for cfg. With a nil cfg.AWS it loads the default
// AWS configuration, which reads the environment but does no network I/O.
func New(ctx context.Context, cfg Config) (*Client, error) {
	awsCfg := cfg.AWS
	if awsCfg == nil {
		c, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("new secrets client: %w", err)
		}
		awsCfg = &c
	}
	sm := secretsmanager.NewFromConfig(*awsCfg, func(o *secretsmanager.Options) {
		if cfg.BaseEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.BaseEndpoint)
		}
	})
	return &Client{sm: sm}, nil
}

// GetSecretString returns the current (AWSCURRENT) string value of the
// secret id, an ARN or a name. Errors name the secret, never its value.
func (c *Client) GetSecretString(ctx context.Context, id string) (string, error) {
	out, err := c.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("get secret %s: %w", id, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("get secret %s: %w", id, ErrNotString)
	}
	return *out.SecretString, nil
}
