package enroll

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// maxResponseSize caps the answers the client reads.
const maxResponseSize = 64 << 10

// Client calls the API of one mesh node. Its zero HTTPClient means
// http.DefaultClient. It is safe for concurrent use.
type Client struct {
	// BaseURL is the mesh node's base URL, e.g. "https://mesh-eu.example.com"
	// for enrol and attach, or "http://[tunnel address]:port" for renew.
	BaseURL string
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// APIError is a non-2xx answer from the mesh node.
type APIError struct {
	// Op is the call that failed: "enroll", "attach", "detach", "renew"
	// or "ping".
	Op string
	// Status is the HTTP status code.
	Status int
	// Code is the ErrorResponse code, empty if the body was not one.
	Code string
	// Message is the ErrorResponse message.
	Message string
	// RetryAfter is the Retry-After the node sent, zero if none.
	RetryAfter time.Duration
}

// Error returns an operator-readable sentence naming what was refused and
// why.
func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s: mesh node answered HTTP %d without a Postern error body; is the URL a Postern mesh node?", e.Op, e.Status)
	}
	what := "the request"
	switch {
	case strings.HasPrefix(e.Code, "token_"):
		what = "the token"
	case strings.HasPrefix(e.Code, "credential_"):
		what = "the credential"
	}
	return fmt.Sprintf("%s: mesh refused %s (%s): %s", e.Op, what, e.Code, e.Message)
}

// Enroll exchanges a one-time enrolment token and the connector's public
// key for a credential. name is the operator's name for the connector.
func (c *Client) Enroll(ctx context.Context, token string, pub wgkey.Public, name string) (EnrollResponse, error) {
	var resp EnrollResponse
	err := c.do(ctx, "enroll", EnrollPath, EnrollRequest{Token: token, PublicKey: pub, Name: name}, &resp)
	return resp, err
}

// Attach presents the credential to the mesh node, which adds the
// connector as a WireGuard peer and describes itself.
func (c *Client) Attach(ctx context.Context, cred string) (AttachResponse, error) {
	var resp AttachResponse
	err := c.do(ctx, "attach", AttachPath, AttachRequest{Credential: cred}, &resp)
	return resp, err
}

// Detach asks the mesh node to drain the connector (drain true: no new
// requests, those in flight finish) or to remove it (drain false). Both are
// idempotent.
func (c *Client) Detach(ctx context.Context, cred string, drain bool) error {
	return c.do(ctx, "detach", DetachPath, DetachRequest{Credential: cred, Drain: drain}, nil)
}

// Nodes lists the mesh nodes the connector holding cred may attach to.
func (c *Client) Nodes(ctx context.Context, cred string) ([]NodeInfo, error) {
	var resp NodesResponse
	err := c.do(ctx, "nodes", NodesPath, NodesRequest{Credential: cred}, &resp)
	return resp.Nodes, err
}

// Ping sends one GET PingPath and reads its answer; it returns nil on 204.
// Timing it measures the round trip to the node (once a first call has
// opened the connection).
func (c *Client) Ping(ctx context.Context) error {
	url := strings.TrimRight(c.BaseURL, "/") + PingPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return fmt.Errorf("ping: read answer from %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusNoContent {
		return apiError("ping", resp, data)
	}
	return nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient == nil {
		return http.DefaultClient
	}
	return c.HTTPClient
}

// Renew exchanges a valid credential for a fresh one. It must be sent
// through the WireGuard tunnel (HTTPClient dialling through it), because
// the node checks that it comes from the credential key's tunnel address.
func (c *Client) Renew(ctx context.Context, cred string) (RenewResponse, error) {
	var resp RenewResponse
	err := c.do(ctx, "renew", RenewPath, RenewRequest{Credential: cred}, &resp)
	return resp, err
}

// do POSTs in as JSON to path and decodes a 2xx answer into out (nil:
// the answer is not read as JSON). Its errors
// never contain the request body.
func (c *Client) do(ctx context.Context, op, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	url := strings.TrimRight(c.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return fmt.Errorf("%s: read answer from %s: %w", op, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return apiError(op, resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: answer from %s is not the expected JSON: %w", op, url, err)
	}
	return nil
}

func apiError(op string, resp *http.Response, data []byte) *APIError {
	e := &APIError{Op: op, Status: resp.StatusCode}
	var er ErrorResponse
	if json.Unmarshal(data, &er) == nil {
		e.Code, e.Message = er.Error, er.Message
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}
