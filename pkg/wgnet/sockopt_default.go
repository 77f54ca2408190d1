//go:build !linux

package wgnet

import "net"

// setSocketBuffers gives c send and receive buffers of socketBufferSize,
// as large as the system allows. Best effort, as on Linux: with the
// default buffers the tunnel still works.
func setSocketBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(socketBufferSize)
	_ = c.SetWriteBuffer(socketBufferSize)
}
