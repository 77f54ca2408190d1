package wgnet

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// finishChecksum completes a partial transport checksum (the stack stored
// only the pseudo-header sum at l4Off+csumOff) over the whole L4 payload.
func finishChecksum(p []byte, l4Off, csumOff int) {
	at := l4Off + csumOff
	if at+2 > len(p) {
		return
	}
	sum := checksum.Checksum(p[l4Off:], 0)
	binary.BigEndian.PutUint16(p[at:], ^sum)
}

// splitTCP cuts in, one IP packet carrying a TCP segment larger than mss,
// into packets of at most mss payload bytes each, written into bufs at
// offset with fixed-up IP lengths, IDs, sequence numbers, flags and
// checksums. ipLen is the length of in's IP header(s). It starts at the
// from'th packet (those before were written by an earlier call) and
// writes as many as bufs holds; it returns how many it wrote and whether
// they were the last.
func splitTCP(in []byte, ipLen, mss, from int, bufs [][]byte, sizes []int, offset int) (int, bool, error) {
	if ipLen+header.TCPMinimumSize > len(in) || mss <= 0 || from < 0 {
		return 0, false, errBadSegment
	}
	v4 := in[0]>>4 == 4
	tcpLen := int(in[ipLen+12]>>4) * 4
	hdrLen := ipLen + tcpLen
	if tcpLen < header.TCPMinimumSize || hdrLen > len(in) {
		return 0, false, errBadSegment
	}
	payload := in[hdrLen:]
	if from*mss >= len(payload) && len(payload) > 0 {
		return 0, false, errBadSegment
	}
	var src, dst tcpip.Address
	if v4 {
		ip := header.IPv4(in)
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	} else {
		ip := header.IPv6(in)
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	}
	seq := binary.BigEndian.Uint32(in[ipLen+4:])
	flags := in[ipLen+13]
	var id uint16
	if v4 {
		id = binary.BigEndian.Uint16(in[4:])
	}
	n := 0
	start := from * mss
	for ; start < len(payload) && n < len(bufs); start += mss {
		end := min(start+mss, len(payload))
		out := bufs[n][offset:]
		total := hdrLen + end - start
		if total > len(out) {
			return n, false, errPacketTooBig
		}
		copy(out, in[:hdrLen])
		copy(out[hdrLen:], payload[start:end])
		out = out[:total]
		if v4 {
			ip := header.IPv4(out)
			ip.SetTotalLength(uint16(total))
			binary.BigEndian.PutUint16(out[4:], id+uint16(from+n))
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
		} else {
			binary.BigEndian.PutUint16(out[4:], uint16(total-header.IPv6MinimumSize))
		}
		t := out[ipLen:]
		binary.BigEndian.PutUint32(t[4:], seq+uint32(start))
		if end < len(payload) {
			t[13] = flags &^ byte(header.TCPFlagFin|header.TCPFlagPsh)
		}
		binary.BigEndian.PutUint16(t[16:], 0)
		sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(t)))
		binary.BigEndian.PutUint16(t[16:], ^checksum.Checksum(t, sum))
		sizes[n] = total
		n++
	}
	return n, start >= len(payload), nil
}
