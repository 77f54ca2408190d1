package wgnet

import (
	"net"

	"golang.org/x/sys/unix"
)

// setSocketBuffers gives c send and receive buffers of socketBufferSize,
// past the sysctl limits when the process may (CAP_NET_ADMIN), else as
// large as they allow. Small buffers drop bursts of datagrams, and every
// drop costs the tunnelled TCP a retransmission.
func setSocketBuffers(c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	// Best effort: with the default buffers the tunnel still works.
	_ = rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], socketBufferSize) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], socketBufferSize)
			}
		}
	})
}
