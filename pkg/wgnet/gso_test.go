package wgnet

import (
	"bytes"
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestSplitTCPAcrossCalls cuts one IPv4 GSO segment of 1,000 payload
// bytes at an MSS of 88 (what a peer may advertise) into batches of 3
// packets, as Reads with too few buffers do: every call goes on where the
// last stopped, the last reports done, and the packets carry the payload
// in order with consecutive sequence numbers and IP IDs, FIN and PSH only
// on the last one, and valid checksums. (The link used to drop such a
// segment whole.)
func TestSplitTCPAcrossCalls(t *testing.T) {
	const ipLen, tcpLen, mss, size = header.IPv4MinimumSize, header.TCPMinimumSize, 88, 1000
	in := make([]byte, ipLen+tcpLen+size)
	ip := header.IPv4(in)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(in)), ID: 7, TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: header.IPv4Any, DstAddr: header.IPv4Broadcast})
	tcp := header.TCP(in[ipLen:])
	tcp.Encode(&header.TCPFields{SeqNum: 1000, DataOffset: tcpLen, Flags: header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin})
	for i := range size {
		in[ipLen+tcpLen+i] = byte(i)
	}
	var payload []byte
	from, calls := 0, 0
	for done := false; !done; calls++ {
		if calls > 10 {
			t.Fatal("splitTCP never reported the last packet")
		}
		bufs := [][]byte{make([]byte, 200), make([]byte, 200), make([]byte, 200)}
		sizes := make([]int, 3)
		n, last, err := splitTCP(in, ipLen, mss, from, bufs, sizes, 0)
		if err != nil {
			t.Fatalf("call %d from packet %d: %v", calls, from, err)
		}
		for i := range n {
			p := bufs[i][:sizes[i]]
			pip, ptcp := header.IPv4(p), header.TCP(p[ipLen:])
			k := from + i
			if !pip.IsChecksumValid() || binary.BigEndian.Uint16(p[4:]) != uint16(7+k) {
				t.Fatalf("packet %d: IP checksum valid %t, id %d", k, pip.IsChecksumValid(), binary.BigEndian.Uint16(p[4:]))
			}
			if ptcp.SequenceNumber() != uint32(1000+k*mss) {
				t.Fatalf("packet %d: seq %d, want %d", k, ptcp.SequenceNumber(), 1000+k*mss)
			}
			fin := ptcp.Flags()&header.TCPFlagFin != 0
			if isLast := last && i == n-1; fin != isLast {
				t.Fatalf("packet %d: FIN %t, last %t", k, fin, isLast)
			}
			if !ptcp.IsChecksumValid(pip.SourceAddress(), pip.DestinationAddress(), checksum.Checksum(ptcp.Payload(), 0), uint16(len(ptcp.Payload()))) {
				t.Fatalf("packet %d: TCP checksum invalid", k)
			}
			payload = append(payload, ptcp.Payload()...)
		}
		from += n
		done = last
	}
	if want := (size + mss - 1) / mss; from != want {
		t.Fatalf("%d packets, want %d", from, want)
	}
	if !bytes.Equal(payload, in[ipLen+tcpLen:]) {
		t.Fatal("the packets' payload differs from the segment's")
	}
}

// tcpPacket returns an IPv4 or IPv6 packet carrying a TCP segment with
// flags, window and payload, its checksum complete.
func tcpPacket(v6 bool, flags header.TCPFlags, window uint16, payload []byte) []byte {
	ipLen := header.IPv4MinimumSize
	if v6 {
		ipLen = header.IPv6MinimumSize
	}
	p := make([]byte, ipLen+header.TCPMinimumSize+len(payload))
	var src, dst tcpip.Address
	if v6 {
		src, dst = tcpip.AddrFrom16([16]byte{0xfd, 1}), tcpip.AddrFrom16([16]byte{0xfd, 2})
		header.IPv6(p).Encode(&header.IPv6Fields{PayloadLength: uint16(len(p) - ipLen), TransportProtocol: header.TCPProtocolNumber,
			HopLimit: 64, SrcAddr: src, DstAddr: dst})
	} else {
		src, dst = tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
		ip := header.IPv4(p)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(p)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	copy(p[ipLen+header.TCPMinimumSize:], payload)
	t := header.TCP(p[ipLen:])
	t.Encode(&header.TCPFields{SrcPort: 80, DstPort: 4000, SeqNum: 77, AckNum: 99, DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: window})
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(t)))
	t.SetChecksum(^checksum.Checksum(t, sum))
	return p
}

// TestShrinkWindow: a TCP segment's window goes down by one (one unit of
// the window scale) with its checksum still valid, over IPv4 and IPv6,
// for every window including those whose sum wraps; a zero window, SYN
// and RST segments, other protocols, fragments and short packets are left
// as they were.
func TestShrinkWindow(t *testing.T) {
	valid := func(p []byte) bool {
		var ipLen int
		var src, dst tcpip.Address
		if p[0]>>4 == 4 {
			ip := header.IPv4(p)
			ipLen, src, dst = int(ip.HeaderLength()), ip.SourceAddress(), ip.DestinationAddress()
		} else {
			ip := header.IPv6(p)
			ipLen, src, dst = header.IPv6MinimumSize, ip.SourceAddress(), ip.DestinationAddress()
		}
		tcp := header.TCP(p[ipLen:])
		return tcp.IsChecksumValid(src, dst, checksum.Checksum(tcp.Payload(), 0), uint16(len(tcp.Payload())))
	}
	for _, v6 := range []bool{false, true} {
		windows := []int{0xffff, 0x8000, 2}
		for w := 1; w < 0xffff; w += 97 {
			windows = append(windows, w)
		}
		for _, w := range windows {
			for _, payload := range [][]byte{nil, []byte("some bytes of data")} {
				p := tcpPacket(v6, header.TCPFlagAck, uint16(w), payload)
				shrinkWindow(p, true)
				tcp := tcpOf(p)
				if tcp.WindowSize() != uint16(w-1) || !valid(p) {
					t.Fatalf("v6 %t window %d: now %d, checksum valid %t", v6, w, tcp.WindowSize(), valid(p))
				}
			}
		}
		// Without fixSum only the window changes: the caller sums later.
		p := tcpPacket(v6, header.TCPFlagAck|header.TCPFlagPsh, 500, []byte("x"))
		before := tcpOf(p).Checksum()
		shrinkWindow(p, false)
		if tcpOf(p).WindowSize() != 499 || tcpOf(p).Checksum() != before {
			t.Fatalf("v6 %t without fixSum: window %d, checksum %#x (was %#x)", v6, tcpOf(p).WindowSize(), tcpOf(p).Checksum(), before)
		}
		for name, flags := range map[string]header.TCPFlags{"SYN": header.TCPFlagSyn, "SYN-ACK": header.TCPFlagSyn | header.TCPFlagAck, "RST": header.TCPFlagRst | header.TCPFlagAck} {
			p := tcpPacket(v6, flags, 1000, nil)
			want := bytes.Clone(p)
			shrinkWindow(p, true)
			if !bytes.Equal(p, want) {
				t.Fatalf("v6 %t: a %s segment was changed", v6, name)
			}
		}
		p = tcpPacket(v6, header.TCPFlagAck, 0, nil)
		want := bytes.Clone(p)
		shrinkWindow(p, true)
		if !bytes.Equal(p, want) {
			t.Fatalf("v6 %t: a zero window was changed", v6)
		}
	}
	// Not TCP, or not a whole TCP header: untouched.
	udp := tcpPacket(false, header.TCPFlagAck, 1000, nil)
	udp[9] = uint8(header.UDPProtocolNumber)
	frag := tcpPacket(false, header.TCPFlagAck, 1000, nil)
	header.IPv4(frag).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	later := tcpPacket(false, header.TCPFlagAck, 1000, nil)
	header.IPv4(later).SetFlagsFragmentOffset(0, 64)
	ext := tcpPacket(true, header.TCPFlagAck, 1000, nil)
	ext[6] = uint8(header.IPv6HopByHopOptionsExtHdrIdentifier)
	short := tcpPacket(false, header.TCPFlagAck, 1000, nil)[:header.IPv4MinimumSize+10]
	for name, p := range map[string][]byte{"udp": udp, "first fragment": frag, "later fragment": later, "ipv6 extension": ext, "short": short, "empty": {}, "ipv5": {0x50, 0, 0, 0}} {
		want := bytes.Clone(p)
		shrinkWindow(p, true)
		if !bytes.Equal(p, want) {
			t.Fatalf("%s: changed", name)
		}
	}
}
