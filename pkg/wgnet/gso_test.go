package wgnet

import (
	"bytes"
	"encoding/binary"
	"testing"

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
