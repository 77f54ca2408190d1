package streambind

import (
	"net/netip"
	"strings"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/wgkey"
)

// EndpointPrefix starts the string form of every stream Endpoint, as the
// WireGuard device reports it (wgnet.PeerStats.Endpoint).
const EndpointPrefix = "stream:"

// Endpoint is a mesh node's conn.Endpoint for a peer reached over its
// stream: the peer's public key, to which the stream is bound.
type Endpoint struct {
	// Key is the peer's WireGuard public key.
	Key wgkey.Public
}

var _ conn.Endpoint = Endpoint{}

// IsStreamEndpoint reports whether s, an endpoint as the WireGuard device
// prints it, is a stream Endpoint.
func IsStreamEndpoint(s string) bool { return strings.HasPrefix(s, EndpointPrefix) }

// ClearSrc implements conn.Endpoint; there is no source to clear.
func (Endpoint) ClearSrc() {}

// SrcToString implements conn.Endpoint; there is no source address.
func (Endpoint) SrcToString() string { return "" }

// DstToString implements conn.Endpoint.
func (e Endpoint) DstToString() string { return EndpointPrefix + e.Key.String() }

// DstToBytes implements conn.Endpoint; WireGuard's cookie MACs use it as
// the source address.
func (e Endpoint) DstToBytes() []byte { return append([]byte(EndpointPrefix), e.Key[:]...) }

// DstIP implements conn.Endpoint; a stream has no address of its own.
func (Endpoint) DstIP() netip.Addr { return netip.Addr{} }

// SrcIP implements conn.Endpoint; a stream has no address of its own.
func (Endpoint) SrcIP() netip.Addr { return netip.Addr{} }
