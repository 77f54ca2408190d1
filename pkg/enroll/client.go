package enroll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
// http.DefaultClient. Calls that may learn the node's key (Enroll, and
// Attach and Detach on a proof_required answer) update NodeKey, so one
// Client must not be used by concurrent calls.
type Client struct {
	// BaseURL is the mesh node's base URL, e.g. "https://mesh-eu.example.com"
	// for enrol and attach, or "http://[tunnel address]:port" for renew.
	BaseURL string
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Key is the connector's WireGuard private key, with which Attach and
	// Detach prove that they hold the credential's key; zero sends no
	// proof (the node then refuses).
	Key wgkey.Private
	// NodeKey is the node's WireGuard public key, if known; zero makes
	// the first Attach or Detach learn it from the node's refusal.
	NodeKey wgkey.Public
	// Now is the clock of the proofs; nil means time.Now.
	Now func() time.Time
}

// APIError is a non-2xx answer from the mesh node.
type APIError struct {
	// Op is the call that failed: "enroll", "attach", "detach", "leave",
	// "renew" or "ping".
	Op string
	// Status is the HTTP status code.
	Status int
	// Code is the ErrorResponse code, empty if the body was not one.
	Code string
	// Message is the ErrorResponse message.
	Message string
	// RetryAfter is the Retry-After the node sent, zero if none.
	RetryAfter time.Duration
	// NodeKey is the node's WireGuard key sent with proof_required.
	NodeKey wgkey.Public
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

// Enroll exchanges a one-time enrolment token and the public half of key
// for a credential, which the node seals to that key; Enroll opens it
// with key (the private key never leaves the host) and returns it in
// EnrollResponse.Credential. name is the operator's name for the
// connector.
func (c *Client) Enroll(ctx context.Context, token string, key wgkey.Private, name string) (EnrollResponse, error) {
	return c.enroll(ctx, EnrollRequest{Token: token, PublicKey: key.Public(), Name: name}, key)
}

// EnrollWorkload enrols in group with a workload identity token (a
// Kubernetes projected ServiceAccount token) that the group's
// workload_enrollment accepts, as Enroll does with a one-time token; the
// credential it gets is short-lived (the group's credential_ttl).
func (c *Client) EnrollWorkload(ctx context.Context, token, group string, key wgkey.Private, name string) (EnrollResponse, error) {
	return c.enroll(ctx, EnrollRequest{WorkloadToken: token, Group: group, PublicKey: key.Public(), Name: name}, key)
}

func (c *Client) enroll(ctx context.Context, in EnrollRequest, key wgkey.Private) (EnrollResponse, error) {
	var resp EnrollResponse
	if err := c.do(ctx, "enroll", EnrollPath, in, &resp); err != nil {
		return EnrollResponse{}, err
	}
	cred, err := OpenCredential(resp.SealedCredential, key)
	if err != nil {
		return EnrollResponse{}, fmt.Errorf("enroll: %w", err)
	}
	resp.Credential = cred
	if resp.NodeKey != nil {
		c.NodeKey = *resp.NodeKey
	}
	return resp, nil
}

// Attach presents the credential, with a proof that the connector holds
// its key, to the mesh node, which adds the connector as a WireGuard peer
// and describes itself.
func (c *Client) Attach(ctx context.Context, cred string) (AttachResponse, error) {
	var resp AttachResponse
	err := c.proven(ctx, "attach", AttachPath, cred, "", func(proof string) any {
		return AttachRequest{Credential: cred, Proof: proof}
	}, &resp)
	if err == nil && !resp.PublicKey.IsZero() {
		c.NodeKey = resp.PublicKey
	}
	return resp, err
}

// Detach asks the mesh node to drain the connector (drain true: no new
// requests, those in flight finish) or to remove it (drain false), with a
// proof that the connector holds the credential's key. Both are
// idempotent.
func (c *Client) Detach(ctx context.Context, cred string, drain bool) error {
	return c.proven(ctx, "detach", DetachPath, cred, drainExtra(drain), func(proof string) any {
		return DetachRequest{Credential: cred, Drain: drain, Proof: proof}
	}, nil)
}

// Leave has the mesh node revoke this connector's credential for the
// whole mesh, with a proof that the connector holds its key: the identity
// ends (a pod on its way out). Leaving twice is no error.
func (c *Client) Leave(ctx context.Context, cred string) error {
	return c.proven(ctx, "leave", LeavePath, cred, "", func(proof string) any {
		return LeaveRequest{Credential: cred, Proof: proof}
	}, nil)
}

// proven sends a request that needs a proof of possession: with a proof
// for NodeKey when it is known, and once more with a proof for the key
// that a proof_required refusal names.
func (c *Client) proven(ctx context.Context, op, path, cred, extra string, body func(proof string) any, out any) error {
	proof := c.proof(path, cred, extra)
	err := c.do(ctx, op, path, body(proof), out)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeProofRequired || ae.NodeKey.IsZero() || c.Key.IsZero() ||
		(ae.NodeKey == c.NodeKey && proof != "") {
		return err
	}
	c.NodeKey = ae.NodeKey
	return c.do(ctx, op, path, body(c.proof(path, cred, extra)), out)
}

// proof returns the proof for path, or "" without the keys to make one.
func (c *Client) proof(path, cred, extra string) string {
	if c.Key.IsZero() || c.NodeKey.IsZero() {
		return ""
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	p, err := Proof(c.Key, c.NodeKey, path, now(), cred, extra)
	if err != nil {
		return ""
	}
	return p
}

// Revoke hands an admin revocation to the mesh node, which records it and
// spreads it to every node.
func (c *Client) Revoke(ctx context.Context, revocation string) (RevokeResponse, error) {
	var resp RevokeResponse
	err := c.do(ctx, "revoke", RevokePath, RevokeRequest{Revocation: revocation}, &resp)
	return resp, err
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

// UpdateSlot asks, over the tunnel, for the group's current update slot;
// alone asks for it even when no other connector of the group serves (see
// UpdateSlotRequest.Alone).
func (c *Client) UpdateSlot(ctx context.Context, cred, version string, alone bool) (UpdateSlotResponse, error) {
	var resp UpdateSlotResponse
	err := c.do(ctx, "update slot", UpdateSlotPath, UpdateSlotRequest{Credential: cred, Version: version, Alone: alone}, &resp)
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
		if er.NodeKey != nil {
			e.NodeKey = *er.NodeKey
		}
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}
