// Package awsapi makes the two AWS API calls a mesh node needs, signed
// with Signature Version 4: reading one S3 object with a conditional GET
// (the catalogue, pkg/catalog's Source) and listing EC2 instances by tag
// (finding the other mesh nodes, pkg/discover).
//
// It uses the AWS SDK's signer and credential providers only (environment
// variables, or the EC2 instance role through IMDSv2), not the SDK's
// service clients or its configuration loader, so that meshd links a few
// small packages rather than the SDK's SSO, STS and service stacks. It sits
// beside the request path: a node calls it at start-up and every few
// seconds in the background, never per request.
package awsapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
)

// Config configures a [Client].
type Config struct {
	// Region is the AWS region of the calls, such as eu-west-1; empty
	// means AWS_REGION, then AWS_DEFAULT_REGION.
	Region string
	// Credentials signs the calls; nil means the environment's static
	// credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optional
	// AWS_SESSION_TOKEN) when set, else the EC2 instance role (IMDSv2).
	Credentials aws.CredentialsProvider
	// Endpoint overrides the service endpoints (tests, VPC endpoints):
	// S3 is then addressed path-style as <Endpoint>/<bucket>/<key> and
	// EC2 as <Endpoint>/. Empty means AWS_ENDPOINT_URL (the variable the
	// AWS SDKs and CLI read), then AWS's regional endpoints.
	Endpoint string
	// HTTPClient sends the calls; nil means a client with a 20-second
	// timeout.
	HTTPClient *http.Client
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
}

// Client signs and sends AWS API calls. It is safe for concurrent use.
type Client struct {
	cfg    Config
	creds  *aws.CredentialsCache
	signer *v4.Signer
}

// New returns a Client. It does no network I/O.
func New(cfg Config) (*Client, error) {
	if cfg.Region == "" {
		cfg.Region = os.Getenv("AWS_REGION")
	}
	if cfg.Region == "" {
		cfg.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if cfg.Region == "" {
		return nil, errors.New("awsapi: no region (set it, or AWS_REGION)")
	}
	if cfg.Credentials == nil {
		cfg.Credentials = DefaultCredentials()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 20 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil {
			return nil, errors.New("awsapi: endpoint is not a URL") // the text may hold a password: not repeated
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("awsapi: endpoint %q is not an http(s) URL without query, fragment or user", u.Redacted())
		}
	}
	cfg.Endpoint = strings.TrimSuffix(cfg.Endpoint, "/")
	return &Client{cfg: cfg, creds: aws.NewCredentialsCache(cfg.Credentials), signer: v4.NewSigner()}, nil
}

// DefaultCredentials returns the environment's static credentials when
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set, else the EC2
// instance role's (IMDSv2).
func DefaultCredentials() aws.CredentialsProvider {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id != "" && secret != "" {
		return credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN"))
	}
	return ec2rolecreds.New()
}

// Region returns the client's region.
func (c *Client) Region() string { return c.cfg.Region }

// emptyHash is the SHA-256 of an empty payload.
const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// APIError is an error answer of an AWS API (S3's or EC2's XML error).
type APIError struct {
	// Status is the HTTP status.
	Status int
	// Code is the error code, such as NoSuchKey or AccessDenied.
	Code string
	// Message is AWS's message.
	Message string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// do signs req for service in region (with the SHA-256 payloadHash of its
// body) and sends it. The caller closes the response body.
func (c *Client) do(ctx context.Context, req *http.Request, service, region, payloadHash string, s3 bool) (*http.Response, error) {
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if s3 {
		req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	}
	if err := c.signer.SignHTTP(ctx, creds, req, payloadHash, service, region, c.cfg.Now(), func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = s3
	}); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return c.cfg.HTTPClient.Do(req)
}

// readBody reads at most limit bytes of body.
func readBody(body io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response over %d bytes", limit)
	}
	return b, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// escapePath escapes an S3 key for the URL path, keeping its slashes.
func escapePath(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
