package wgnet

import (
	"encoding/binary"
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoOOBSize is the control message space a UDP_SEGMENT message needs.
var gsoOOBSize = unix.CmsgSpace(2)

// groOOBSize is the control message space a UDP_GRO reading needs.
var groOOBSize = unix.CmsgSpace(4)

// probeOffload reports whether c may send with UDP_SEGMENT (the kernel
// knows the option) and, if wantGRO, turns UDP_GRO on, reporting whether
// that took.
func probeOffload(c *net.UDPConn, wantGRO bool) (gso, gro bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, false
	}
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = err == nil
		gro = wantGRO && unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	return gso, gro
}

// putSegmentSize writes into oob (gsoOOBSize bytes) the control message
// that makes the kernel cut one sent datagram into size-byte ones.
func putSegmentSize(oob []byte, size int) []byte {
	oob = oob[:gsoOOBSize]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
	return oob
}

// segmentSize returns the size of the datagrams the kernel coalesced
// into one reading, from its UDP_GRO control message in oob; 0 if there
// is none (one datagram).
func segmentSize(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_UDP && m.Header.Type == unix.UDP_GRO && len(m.Data) >= 4 {
			return int(binary.NativeEndian.Uint32(m.Data))
		}
	}
	return 0
}

// offloadRefused reports whether a send error says the kernel or the
// device cannot segment (no checksum offload on the route's device, an
// old kernel): the bind then sends without it.
func offloadRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) ||
		errors.Is(err, unix.EOPNOTSUPP)
}
