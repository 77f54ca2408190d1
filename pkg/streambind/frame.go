package streambind

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/postern/postern/pkg/wgnet"
)

// Wire constants of the stream protocol.
const (
	// Protocol is the HTTP Upgrade token of the stream.
	Protocol = "postern-wg/1"
	// Path is where a mesh node accepts streams, under the reserved
	// /.postern/v1/ prefix of its public listener.
	Path = "/.postern/v1/wg"
	// FrameHeader is the size of a frame's length prefix.
	FrameHeader = 2
	// MaxFrame is the largest length a frame header can state.
	MaxFrame = 1<<16 - 1
	// DefaultMaxPacket is the largest WireGuard packet a stream accepts
	// when the limit is not configured: a full packet of the default
	// tunnel MTU plus WireGuard's overhead.
	DefaultMaxPacket = wgnet.DefaultMTU + wgOverhead + 16
)

// MaxPacketFor returns the largest WireGuard packet a node with tunnel MTU
// mtu sends: the MTU plus the header, the tag and the padding.
func MaxPacketFor(mtu int) int { return min(mtu+wgOverhead+16, MaxFrame) }

// WireGuard message shapes (wireguard-go's device/noise-protocol.go).
const (
	wgOverhead      = 32 // transport header 16 + authentication tag 16
	wgInitiation    = 148
	wgResponse      = 92
	wgCookieReply   = 64
	wgTransportMin  = 32
	wgTypeInit      = 1
	wgTypeResponse  = 2
	wgTypeCookie    = 3
	wgTypeTransport = 4
)

// CheckPacket reports whether b has the shape of a WireGuard message: a
// known type with three zero bytes after it, and that type's size. It does
// not authenticate anything; WireGuard does that.
func CheckPacket(b []byte) error {
	if len(b) < 4 || b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return ErrBadPacket
	}
	ok := false
	switch b[0] {
	case wgTypeInit:
		ok = len(b) == wgInitiation
	case wgTypeResponse:
		ok = len(b) == wgResponse
	case wgTypeCookie:
		ok = len(b) == wgCookieReply
	case wgTypeTransport:
		ok = len(b) >= wgTransportMin
	}
	if !ok {
		return ErrBadPacket
	}
	return nil
}

// AppendFrame appends pkt as one frame to dst. pkt must be at most
// MaxFrame bytes.
func AppendFrame(dst, pkt []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(pkt)))
	return append(dst, pkt...)
}

// ReadFrame reads one frame from r into buf and returns the packet's
// length. A frame longer than maxPacket or len(buf), or one that is not a
// WireGuard message, is an error (ErrFrameTooBig, ErrBadPacket); so is a
// stream that ends inside a frame (io.ErrUnexpectedEOF). A stream that
// ends between frames returns io.EOF.
func ReadFrame(r *bufio.Reader, buf []byte, maxPacket int) (int, error) {
	var hdr [FrameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > maxPacket || n > len(buf) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooBig, n, min(maxPacket, len(buf)))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if err := CheckPacket(buf[:n]); err != nil {
		return 0, err
	}
	return n, nil
}
