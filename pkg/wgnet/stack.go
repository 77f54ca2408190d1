package wgnet

import (
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// nicID is the one NIC of a Node's stack.
const nicID = 1

// TCP buffer bounds: the stack starts each connection at the default and,
// with receive-buffer moderation, grows it towards the maximum as the
// bandwidth-delay product needs.
const (
	tcpBufMin     = 4 << 10
	tcpBufDefault = 256 << 10
	tcpBufMax     = 1 << 20
)

// newStack returns a gVisor stack with one NIC on link, holding addr. A
// non-nil probe sees every TCP endpoint's state (tests only).
func newStack(link *linkTUN, addr netip.Addr, probe tcp.TCPProbeFunc) (*stack.Stack, error) {
	tcpProto := tcp.NewProtocol
	if probe != nil {
		tcpProto = tcp.NewProtocolProbe(probe)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcpProto, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        true,
	})
	if err := tuneTCP(s); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.CreateNIC(nicID, link); err != nil {
		s.Close()
		return nil, fmt.Errorf("create nic: %v", err)
	}
	proto := tcpip.ProtocolAddress{
		Protocol:          ipv6.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFromSlice(addr.AsSlice()).WithPrefix(),
	}
	if addr.Is4() {
		proto.Protocol = ipv4.ProtocolNumber
	}
	if err := s.AddProtocolAddress(nicID, proto, stack.AddressProperties{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("add address %s: %v", addr, err)
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	return s, nil
}

// TIME-WAIT and FIN-WAIT-2 timeouts of the tunnel's TCP (see tuneTCP).
const (
	timeWait = 5 * time.Second
	finWait2 = 10 * time.Second
)

// tuneTCP sets the stack-wide TCP options the benchmarks justify, and
// bounds how long closed connections hold memory.
func tuneTCP(s *stack.Stack) error {
	sack := tcpip.TCPSACKEnabled(true)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	delay := tcpip.TCPDelayEnabled(false)
	// Reno, not CUBIC: gVisor's CUBIC (at this version) can bring the
	// congestion window to zero after losses at a window of one or two
	// segments (its window estimate is truncated to an int below 1), and
	// a sender with a zero window and nothing in flight has no timer left
	// to send again: the stream stalls for good. Reno never lowers the
	// window below one segment. TestTCPSurvivesLoss shows both.
	cc := tcpip.CongestionControlOption("reno")
	// A closed connection's endpoint lingers in TIME-WAIT and FIN-WAIT-2
	// (60s each by default): a peer that opens and drops connections fast
	// would pile them up. Inside the tunnel a segment lives far less than
	// these.
	tw := tcpip.TCPTimeWaitTimeoutOption(timeWait)
	lg := tcpip.TCPLingerTimeoutOption(finWait2)
	opts := []tcpip.SettableTransportProtocolOption{
		&tw, &lg,
		&sack,
		&moderate,
		&delay,
		&cc,
		&tcpip.TCPSendBufferSizeRangeOption{Min: tcpBufMin, Default: tcpBufDefault, Max: tcpBufMax},
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcpBufMin, Default: tcpBufDefault, Max: tcpBufMax},
	}
	for _, o := range opts {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fmt.Errorf("set tcp option %T: %v", o, err)
		}
	}
	return nil
}

// fullAddr converts ap to a gVisor address and its network protocol.
func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	fa := tcpip.FullAddress{NIC: nicID, Port: ap.Port()}
	if ap.Addr().IsValid() && !ap.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFromSlice(ap.Addr().Unmap().AsSlice())
	}
	if ap.Addr().Unmap().Is4() {
		return fa, ipv4.ProtocolNumber
	}
	return fa, ipv6.ProtocolNumber
}
