// Package enroll is the HTTP API through which connectors join the mesh:
// enrol once with a one-time token (or with a workload identity token, such
// as a Kubernetes ServiceAccount token, that the group accepts), attach to
// mesh nodes with the credential they received, renew that credential over
// the tunnel before it expires, and leave (revoke it) when they go away.
// It holds the JSON wire types, the mesh node's handler (Server) and the
// connector's client (Client).
//
// It sits before the request path, on the connector's way in: a mesh node
// serves Server on its public HTTPS listener under PathPrefix (enrol,
// attach, detach, leave, ping) and on its tunnel listener (renew); connectord uses
// Client. The signing and verification itself is pkg/authority's.
package enroll

import (
	"net/netip"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// Paths of the API, all under the reserved prefix PathPrefix.
const (
	// PathPrefix is the reserved path prefix of the Postern API on a mesh
	// node; the edge must route it here and never to an app.
	PathPrefix = "/.postern/v1/"
	// EnrollPath exchanges an enrolment token and a public key for a
	// credential.
	EnrollPath = PathPrefix + "enroll"
	// AttachPath adds a connector holding a credential as a WireGuard peer.
	AttachPath = PathPrefix + "attach"
	// NodesPath lists, for a connector holding a credential, the mesh
	// nodes it may attach to (it re-reads them before each re-evaluation).
	NodesPath = PathPrefix + "nodes"
	// RenewPath exchanges a credential, over the tunnel, for a fresh one.
	RenewPath = PathPrefix + "renew"
	// UpdateSlotPath asks, over the tunnel, for the connector group's
	// update slot: the one time window in which this connector alone of
	// its group may restart into a new version.
	UpdateSlotPath = PathPrefix + "update-slot"
	// PingPath answers GET and HEAD with 204 No Content and no body,
	// without authentication; connectors time it to measure their RTT to
	// each mesh node.
	PingPath = PathPrefix + "ping"
	// RevokePath accepts an admin revocation signed with the mesh
	// authority key ("meshd revoke") and spreads it to every node.
	RevokePath = PathPrefix + "revoke"
	// LeavePath ends a connector's own identity: with its credential and
	// a proof of possession the connector has the node revoke it (an
	// authority-signed connector revocation, spread like an admin's), as a
	// pod does on its way out after the drain. It answers 204 No Content.
	LeavePath = PathPrefix + "leave"
	// DetachPath takes a connector out of service on this node: draining
	// (no new requests) or detached (peer and pool entry removed). It
	// answers 204 No Content.
	DetachPath = PathPrefix + "detach"
)

// NodeInfo describes one mesh node a connector may attach to.
type NodeInfo struct {
	// ID is the mesh node's id.
	ID string `json:"id"`
	// Region is the mesh node's region.
	Region string `json:"region"`
	// URL is the mesh node's public HTTPS base URL, e.g.
	// "https://mesh-eu-1.example.com".
	URL string `json:"url"`
	// PublicKey is the node's WireGuard public key, with which the
	// connector makes its proofs of possession; zero if not told.
	PublicKey wgkey.Public `json:"public_key,omitzero"`
}

// EnrollRequest is the body of POST EnrollPath. It carries exactly one
// of Token and WorkloadToken.
type EnrollRequest struct {
	// Token is the one-time enrolment token.
	Token string `json:"token,omitempty"`
	// WorkloadToken is a workload identity token (a Kubernetes projected
	// ServiceAccount token) that Group's workload_enrollment accepts.
	WorkloadToken string `json:"workload_token,omitempty"`
	// Group is the connector group to enrol in with WorkloadToken (a
	// one-time token names its own group); required with WorkloadToken.
	Group string `json:"group,omitempty"`
	// PublicKey is the connector's WireGuard public key (base64); the
	// private key never leaves the connector's host.
	PublicKey wgkey.Public `json:"public_key"`
	// Name is the operator's name for the connector (for example the host
	// name); it becomes the readable part of the connector id.
	Name string `json:"name,omitempty"`
}

// EnrollResponse is the answer to a successful EnrollRequest.
type EnrollResponse struct {
	// ConnectorID is the id the mesh knows the connector by.
	ConnectorID string `json:"connector_id"`
	// Group is the connector group the token named.
	Group string `json:"group"`
	// SealedCredential is the signed connector credential sealed to the
	// enrolled public key (see SealCredential): only the holder of the
	// private key can open it.
	SealedCredential string `json:"sealed_credential"`
	// Credential is the opened credential, filled in by Client.Enroll; it
	// never travels. The connector stores it (0600) and presents it on
	// attach and renew.
	Credential string `json:"-"`
	// NodeKey is the enrolling node's WireGuard public key.
	NodeKey *wgkey.Public `json:"node_key,omitempty"`
	// Expires is when the credential expires.
	Expires time.Time `json:"expires"`
}

// AttachRequest is the body of POST AttachPath.
type AttachRequest struct {
	// Credential is the connector credential.
	Credential string `json:"credential"`
	// Proof shows that the sender holds the credential's private key
	// (see Proof).
	Proof string `json:"proof,omitempty"`
}

// AttachResponse is the answer to a successful AttachRequest: what the
// connector needs to add the mesh node as its WireGuard peer.
type AttachResponse struct {
	// NodeID is the mesh node's id.
	NodeID string `json:"node_id"`
	// Region is the mesh node's region.
	Region string `json:"region"`
	// PublicKey is the mesh node's WireGuard public key.
	PublicKey wgkey.Public `json:"public_key"`
	// Endpoint is the mesh node's WireGuard UDP endpoint, host:port.
	Endpoint string `json:"endpoint"`
	// TunnelAddr is the mesh node's tunnel address.
	TunnelAddr netip.Addr `json:"tunnel_addr"`
	// CredentialExpires is when the presented credential expires; the
	// connector renews before then.
	CredentialExpires time.Time `json:"credential_expires"`
	// Nodes are the mesh nodes this connector may attach to: all alive,
	// non-draining cluster members eligible for its group, including this
	// one. Empty means the node did not say (a single-node mesh, or an
	// older node); the connector then keeps what it knew.
	Nodes []NodeInfo `json:"nodes,omitempty"`
}

// DetachRequest is the body of POST DetachPath.
type DetachRequest struct {
	// Credential is the connector credential.
	Credential string `json:"credential"`
	// Drain true asks the node to send no new requests to the connector
	// while keeping it attached, so that requests in flight finish; false
	// removes the connector (WireGuard peer and pool entry).
	Drain bool `json:"drain"`
	// Proof shows that the sender holds the credential's private key
	// (see Proof; its extra parameter is "drain=true" or "drain=false").
	Proof string `json:"proof,omitempty"`
}

// LeaveRequest is the body of POST LeavePath.
type LeaveRequest struct {
	// Credential is the connector credential to end.
	Credential string `json:"credential"`
	// Proof shows that the sender holds the credential's private key
	// (see Proof; no extra parameter).
	Proof string `json:"proof,omitempty"`
}

// RevokeRequest is the body of POST RevokePath.
type RevokeRequest struct {
	// Revocation is the authority-signed revocation from "meshd revoke".
	Revocation string `json:"revocation"`
}

// RevokeResponse is the answer to a RevokeRequest: what is now revoked.
type RevokeResponse struct {
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Before  time.Time `json:"before,omitzero"`
	Until   time.Time `json:"until"`
}

// NodesRequest is the body of POST NodesPath.
type NodesRequest struct {
	// Credential is the connector credential.
	Credential string `json:"credential"`
}

// NodesResponse lists the mesh nodes a connector may attach to, as
// AttachResponse.Nodes does.
type NodesResponse struct {
	Nodes []NodeInfo `json:"nodes"`
}

// UpdateSlotLength is the length of an update slot. A connector that got a
// slot restarts into its new version only while enough of the slot is left
// for its drain and its trial's attach, so that no two connectors of a
// group are ever down for an update at once.
const UpdateSlotLength = 15 * time.Minute

// UpdateSlotRequest is the body of POST UpdateSlotPath, sent over the
// tunnel.
type UpdateSlotRequest struct {
	// Credential is the connector's credential.
	Credential string `json:"credential"`
	// Version is the version it would update to, for the logs.
	Version string `json:"version"`
	// Alone lets the connector take the slot even when no other connector
	// of its group serves: its group then has no connector while it
	// restarts. Without it the slot is refused (Waiting says why) until
	// another connector of the group is attached, alive and not draining.
	Alone bool `json:"alone,omitempty"`
}

// UpdateSlotResponse answers an UpdateSlotRequest.
type UpdateSlotResponse struct {
	// Granted reports whether this connector holds the current slot of its
	// group: no other connector of the group got it, at any mesh node.
	Granted bool `json:"granted"`
	// Start and Until bound the slot; a connector not granted asks again
	// after Until.
	Start time.Time `json:"start"`
	Until time.Time `json:"until"`
	// Waiting, when not empty, says why the slot was not granted although
	// no other connector holds it (no other connector of the group
	// serves); the connector asks again after Until.
	Waiting string `json:"waiting,omitempty"`
}

// RenewRequest is the body of POST RenewPath, sent over the tunnel.
type RenewRequest struct {
	// Credential is the current, still valid credential.
	Credential string `json:"credential"`
}

// RenewResponse is the answer to a successful RenewRequest.
type RenewResponse struct {
	// Credential is the fresh credential, same id, group and key.
	Credential string `json:"credential"`
	// Expires is when the fresh credential expires.
	Expires time.Time `json:"expires"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	// Error is a stable snake_case code (the Code* constants).
	Error string `json:"error"`
	// Message is one human sentence; it never holds a secret.
	Message string `json:"message"`
	// NodeKey is the node's WireGuard public key, sent with
	// proof_required so that the connector can make its proof.
	NodeKey *wgkey.Public `json:"node_key,omitempty"`
}
