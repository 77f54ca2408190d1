// Package tunnelhttp is the small contract between a mesh node and a
// connector for HTTP carried inside the WireGuard tunnel.
//
// A mesh node sends each proxied request as plain HTTP/1.1 (WireGuard already
// encrypts and authenticates it) to the connector's tunnel address on Port,
// naming the internal target in HeaderTarget. The connector answers with the
// backend's response, or with its own error carrying HeaderError. Both sides
// remove every header with the Postern- prefix that came from anywhere else.
//
// The identity headers of a signed-in request may travel by reference:
// see HeaderIdentity.
//
// A TCP app's connection travels the same way as one HTTP/1.1 GET that
// upgrades to TCPProtocol, with HeaderTarget "tcp://host:port": the
// connector dials the target (if its allow-list permits), answers 101 and
// then carries raw bytes both ways. Only the mesh sets HeaderTarget, so
// no client can turn a web request into a TCP stream.
package tunnelhttp

import (
	"net/http"
	"strings"
)

// Port is the TCP port a connector serves proxied requests on, inside the
// tunnel only; a mesh node serves its tunnel API on the same port.
const Port = 80

// Header names of the in-tunnel contract.
const (
	// HeaderTarget is the internal base URL (scheme, host, optional path
	// prefix) the connector must forward the request to.
	HeaderTarget = "Postern-Target"
	// HeaderTLSSkipVerify, when "1", tells the connector not to verify the
	// internal app's certificate; the catalogue allows it per app.
	HeaderTLSSkipVerify = "Postern-Tls-Skip-Verify"
	// HeaderApp names the app (catalogue id) of a request relayed from one
	// mesh node to another, so the relay node can pick a connector of the
	// app's group. Connectors ignore it.
	HeaderApp = "Postern-App"
	// HeaderError is set by a connector on a response it generated itself;
	// its value is one of the Err codes below.
	HeaderError = "Postern-Error"
	// HeaderRequestID carries the request id to the connector and the
	// backend; it is not a Postern- header, so the backend sees it.
	HeaderRequestID = "X-Request-Id"
)

// TCP streams of TCP apps.
const (
	// TCPProtocol is the Upgrade protocol of a TCP stream inside the
	// tunnel; it is never accepted from a client.
	TCPProtocol = "postern-tcp"
	// TCPScheme is the scheme of a TCP app's HeaderTarget:
	// "tcp://host:port".
	TCPScheme = "tcp"
)

// Error codes a connector puts in HeaderError.
const (
	ErrBackendRefused  = "backend_refused"  // connection to the internal URL failed
	ErrBackendTimeout  = "backend_timeout"  // no response headers in time
	ErrBackendError    = "backend_error"    // the backend broke the exchange
	ErrNotAllowed      = "not_allowed"      // the connector's allow-list refused the target
	ErrBadTarget       = "bad_target"       // missing or malformed HeaderTarget
	ErrBackendTLS      = "backend_tls"      // TLS handshake with the internal app failed
	ErrConnectorClosed = "connector_closed" // the connector is shutting down
	ErrUpgradeRefused  = "upgrade_refused"  // a protocol upgrade other than WebSocket (see pkg/upgrade)
	// ErrRelayNoConnector is set by a relay mesh node that sent the request
	// to none of its connectors (none usable, or none reachable): the
	// relaying node may try another path.
	ErrRelayNoConnector = "relay_no_connector"
	// ErrConnectorLost is set by a relay mesh node whose connector was lost
	// after the request may have reached it.
	ErrConnectorLost = "connector_lost"
)

// prefix is the canonical-case prefix of every Postern-internal header.
const prefix = "Postern-"

// StripInternal deletes every Postern- header from h, whatever its case.
func StripInternal(h http.Header) {
	for k := range h {
		if len(k) >= len(prefix) && strings.EqualFold(k[:len(prefix)], prefix) {
			delete(h, k)
		}
	}
}
