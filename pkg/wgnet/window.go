package wgnet

import (
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Why every TCP segment leaves the stack with one window unit less than
// the stack chose (shrinkWindow):
//
// gVisor's TCP receiver (up to at least v0.0.0-20260905035102) remembers
// the window it advertised unscaled (rcvWnd) but puts rcvWnd >> scale on
// the wire, rounding down, and checks arriving segments against that
// rounded window. Once the space left to the right edge the peer was
// given falls below one unit (2^scale bytes: 32 with the tunnel's 1 MiB
// buffers), the stack advertises zero and rejects the last bytes the
// peer may legitimately still send — it does not round up, as Linux does,
// and does not keep the right edge it advertised. A peer that sent them
// then has SND.NXT beyond our RCV.NXT, so every pure ACK it sends (at
// SND.NXT) fails the zero-window acceptability test, and an unacceptable
// segment's acknowledgment is never processed; its zero-window probes
// (an old byte) are rejected the same way. If our application waits for
// those acknowledgments before it reads — an echo, a WebSocket or a proxy
// that writes what it reads, once both directions are full — our window
// never opens, and the stream stalls for good: the peer probes a zero
// window, our sender retransmits ever more slowly, and nothing moves
// (TestEchoBothWaysDialBind: about 1 run in 6 on a loaded machine).
//
// Advertising one unit less keeps the peer's right edge at least one unit
// inside what the receiver accepts, so everything the peer may send is
// acceptable and, when our window is zero, the peer has nothing in flight
// beyond RCV.NXT: its ACKs (at SND.NXT = RCV.NXT) are accepted and
// processed. The cost is one unit of window. SYN segments (unscaled
// windows) and resets are left alone.

// shrinkWindow lowers the window of p, an IP packet, by one unit of the
// connection's window scale (the field by one) if p is a TCP segment
// without SYN or RST whose window is not zero already. fixSum says that
// p's TCP checksum is complete and must be updated; without it the caller
// computes the checksum afterwards.
func shrinkWindow(p []byte, fixSum bool) {
	t := tcpOf(p)
	if t == nil {
		return
	}
	if t.Flags()&(header.TCPFlagSyn|header.TCPFlagRst) != 0 {
		return
	}
	old := t.WindowSize()
	if old == 0 {
		return
	}
	t.SetWindowSize(old - 1)
	if fixSum {
		// RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m').
		sum := checksum.Combine(checksum.Combine(^t.Checksum(), ^old), old-1)
		t.SetChecksum(^sum)
	}
}

// tcpOf returns the TCP header of p, an IPv4 or IPv6 packet, or nil if p
// carries no whole TCP header (another protocol, a fragment, an IPv6
// extension header, a short packet).
func tcpOf(p []byte) header.TCP {
	if len(p) == 0 {
		return nil
	}
	var off int
	switch p[0] >> 4 {
	case 4:
		if len(p) < header.IPv4MinimumSize {
			return nil
		}
		ip := header.IPv4(p)
		if ip.Protocol() != uint8(header.TCPProtocolNumber) || ip.FragmentOffset() != 0 || ip.More() {
			return nil
		}
		off = int(ip.HeaderLength())
	case 6:
		if len(p) < header.IPv6MinimumSize || header.IPv6(p).NextHeader() != uint8(header.TCPProtocolNumber) {
			return nil
		}
		off = header.IPv6MinimumSize
	default:
		return nil
	}
	if off < header.IPv4MinimumSize || off+header.TCPMinimumSize > len(p) {
		return nil
	}
	return header.TCP(p[off:])
}
