// Package streambind carries WireGuard packets over one long-lived HTTPS
// stream, for connectors whose network lets only outbound TCP (often
// through an HTTP proxy) out.
//
// It sits under the whole request path, beside the UDP binds of package
// wgnet: WireGuard's own encryption and authentication stay end to end, and
// the stream only gets the already-encrypted packets through. A connector
// opens the stream with an HTTP/1.1 Upgrade to Protocol on Path of the
// mesh node's normal public listener, presenting its credential as a bearer
// token; after the 101 answer both directions are a sequence of frames, each
// a 2-byte big-endian length followed by one WireGuard packet.
//
// The mesh node's side is Server: an http.Handler that accepts streams and
// a conn.Bind that wraps the node's UDP bind, so one WireGuard device serves
// UDP and stream peers at once. The connector's side is ClientBind: a
// conn.Bind that wraps its UDP bind and sends to each mesh node over UDP or
// over a stream, as the connector chooses (see package connector).
package streambind
