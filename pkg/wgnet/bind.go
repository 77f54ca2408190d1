package wgnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
)

// UDPBind is a conn.Bind on one UDP socket bound to a chosen local address,
// unlike conn.StdNetBind, which always binds every interface.
type UDPBind struct {
	addr netip.Addr

	mu   sync.Mutex // guards the following
	conn *net.UDPConn
}

var _ conn.Bind = (*UDPBind)(nil)

// NewUDPBind returns a bind that listens on addr; the zero Addr means every
// interface.
func NewUDPBind(addr netip.Addr) *UDPBind { return &UDPBind{addr: addr} }

// Endpoint is a conn.Endpoint that is a plain UDP address.
type Endpoint netip.AddrPort

var _ conn.Endpoint = Endpoint{}

func (e Endpoint) ClearSrc()           {}
func (e Endpoint) SrcToString() string { return "" }
func (e Endpoint) DstToString() string { return netip.AddrPort(e).String() }
func (e Endpoint) DstToBytes() []byte {
	b, _ := netip.AddrPort(e).MarshalBinary()
	return b
}
func (e Endpoint) DstIP() netip.Addr { return netip.AddrPort(e).Addr() }
func (e Endpoint) SrcIP() netip.Addr { return netip.Addr{} }

// Open implements conn.Bind.
func (b *UDPBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	network := "udp"
	if b.addr.Is4() {
		network = "udp4"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.addr, port)))
	if err != nil {
		return nil, 0, fmt.Errorf("wgnet: udp bind: %w", err)
	}
	b.conn = c
	actual := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	recv := func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, ap, err := c.ReadFromUDPAddrPort(packets[0])
		if err != nil {
			return 0, err
		}
		sizes[0] = n
		eps[0] = Endpoint(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		return 1, nil
	}
	return []conn.ReceiveFunc{recv}, actual, nil
}

// Close implements conn.Bind.
func (b *UDPBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	err := b.conn.Close()
	b.conn = nil
	return err
}

// SetMark implements conn.Bind; marks are not supported and ignored.
func (b *UDPBind) SetMark(uint32) error { return nil }

// Send implements conn.Bind.
func (b *UDPBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c == nil {
		return net.ErrClosed
	}
	e, ok := ep.(Endpoint)
	if !ok {
		return errors.New("wgnet: udp bind: foreign endpoint")
	}
	for _, buf := range bufs {
		if _, err := c.WriteToUDPAddrPort(buf, netip.AddrPort(e)); err != nil {
			return err
		}
	}
	return nil
}

// ParseEndpoint implements conn.Bind.
func (b *UDPBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return Endpoint(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())), nil
}

// BatchSize implements conn.Bind.
func (b *UDPBind) BatchSize() int { return 1 }
