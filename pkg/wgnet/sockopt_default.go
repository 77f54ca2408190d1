//go:build !linux

package wgnet

import "net"

// setSocketBuffers gives c send and receive buffers of socketBufferSize,
// as large as the system allows.
func setSocketBuffers(c *net.UDPConn) {
	c.SetReadBuffer(socketBufferSize)
	c.SetWriteBuffer(socketBufferSize)
}
