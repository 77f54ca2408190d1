package wgnet

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.zx2c4.com/wireguard/conn"
)

// bindBatchSize is how many datagrams a bind reads or writes per system
// call (recvmmsg/sendmmsg). WireGuard's receive loop holds a batch of
// 64 KiB buffers per ReceiveFunc for good; see linkBatchSize.
const bindBatchSize = linkBatchSize

// socketBufferSize is the send and receive buffer of every UDP socket.
const socketBufferSize = 7 << 20

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share: datagram
// batches through recvmmsg and sendmmsg.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newBatchConn wraps c for batch I/O in its address family.
func newBatchConn(c *net.UDPConn, v4 bool) batchConn {
	if v4 {
		return ipv4.NewPacketConn(c)
	}
	return ipv6.NewPacketConn(c)
}

// msgPool holds []ipv4.Message of bindBatchSize with one buffer slot each,
// for concurrent Sends.
var msgPool = sync.Pool{New: func() any { return newMessages(bindBatchSize) }}

func newMessages(n int) *[]ipv4.Message {
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = make([][]byte, 1)
	}
	return &ms
}

// writeAll sends every buffer in bufs to addr (nil on a connected socket),
// in as few sendmmsg calls as the kernel allows.
func writeAll(c batchConn, bufs [][]byte, addr net.Addr) error {
	mp := msgPool.Get().(*[]ipv4.Message)
	defer msgPool.Put(mp)
	ms := *mp
	for len(bufs) > 0 {
		k := min(len(bufs), len(ms))
		for i := range k {
			ms[i].Buffers[0] = bufs[i]
			ms[i].Addr = addr
		}
		sent := 0
		for sent < k {
			n, err := c.WriteBatch(ms[sent:k], 0)
			if err != nil {
				clearMessages(ms[:k])
				return err
			}
			sent += n
		}
		bufs = bufs[k:]
	}
	clearMessages(ms)
	return nil
}

func clearMessages(ms []ipv4.Message) {
	for i := range ms {
		ms[i].Buffers[0] = nil
		ms[i].Addr = nil
	}
}

// UDPBind is a conn.Bind on one UDP socket bound to a chosen local address,
// unlike conn.StdNetBind, which always binds every interface. It moves
// datagrams in batches with recvmmsg and sendmmsg, with UDP segmentation
// offload where the kernel has it (see offload.go). Its methods are safe
// for concurrent use.
type UDPBind struct {
	addr      netip.Addr
	noOffload bool

	mu   sync.Mutex // guards the following
	conn *net.UDPConn
	bc   batchConn
	off  *offload
}

var _ conn.Bind = (*UDPBind)(nil)

// NewUDPBind returns a bind that listens on addr; the zero Addr means every
// interface.
func NewUDPBind(addr netip.Addr) *UDPBind { return &UDPBind{addr: addr} }

// WithoutOffload makes b send and read one datagram per message even
// where the kernel offers UDP segmentation offload (see offload.go), and
// returns b. Call it before the device opens b.
func (b *UDPBind) WithoutOffload() *UDPBind {
	b.noOffload = true
	return b
}

// Endpoint is a conn.Endpoint that is a plain UDP address.
type Endpoint netip.AddrPort

var _ conn.Endpoint = Endpoint{}

// ClearSrc implements conn.Endpoint; there is no source to clear.
func (e Endpoint) ClearSrc() {}

// SrcToString implements conn.Endpoint; there is no source address.
func (e Endpoint) SrcToString() string { return "" }

// DstToString implements conn.Endpoint.
func (e Endpoint) DstToString() string { return netip.AddrPort(e).String() }

// DstToBytes implements conn.Endpoint.
func (e Endpoint) DstToBytes() []byte {
	b, _ := netip.AddrPort(e).MarshalBinary()
	return b
}

// DstIP implements conn.Endpoint.
func (e Endpoint) DstIP() netip.Addr { return netip.AddrPort(e).Addr() }

// SrcIP implements conn.Endpoint; there is no source address.
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
	setSocketBuffers(c)
	b.conn = c
	b.bc = newBatchConn(c, b.addr.Is4())
	b.off = newOffload(c, b.noOffload, true)
	actual := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	if b.off.gro {
		return []conn.ReceiveFunc{groReceiver(b.bc)}, actual, nil
	}
	return []conn.ReceiveFunc{b.receiver(b.bc)}, actual, nil
}

// groReceiver returns a ReceiveFunc for a socket with UDP_GRO: it reads
// batches of readings into buffers of its own and cuts them into
// WireGuard's, one datagram each.
func groReceiver(bc batchConn) conn.ReceiveFunc {
	ms := newReadMessages(groReadBatch)
	var split splitter
	n := 0
	ep := func(m *ipv4.Message) conn.Endpoint { return endpointOf(m.Addr) }
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		if n == 0 {
			var err error
			if n, err = bc.ReadBatch(ms, 0); err != nil {
				n = 0
				return 0, err
			}
		}
		k, done := split.next(ms, n, packets, sizes, eps, ep)
		if done {
			n = 0
		}
		return k, nil
	}
}

// receiver returns a ReceiveFunc that reads a batch straight into
// WireGuard's buffers. WireGuard calls each ReceiveFunc from one goroutine.
func (b *UDPBind) receiver(bc batchConn) conn.ReceiveFunc {
	ms := *newMessages(bindBatchSize)
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		k := min(len(packets), len(ms))
		for i := range k {
			ms[i].Buffers[0] = packets[i]
		}
		n, err := bc.ReadBatch(ms[:k], 0)
		if err != nil {
			return 0, err
		}
		for i := range n {
			sizes[i] = ms[i].N
			eps[i] = endpointOf(ms[i].Addr)
		}
		return n, nil
	}
}

// endpointOf converts a datagram's source address to an Endpoint.
func endpointOf(a net.Addr) conn.Endpoint {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return Endpoint{}
	}
	ap := ua.AddrPort()
	return Endpoint(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

// Close implements conn.Bind.
func (b *UDPBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	err := b.conn.Close()
	b.conn, b.bc = nil, nil
	return err
}

// SetMark implements conn.Bind; marks are not supported and ignored.
func (b *UDPBind) SetMark(uint32) error { return nil }

// Send implements conn.Bind.
func (b *UDPBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.mu.Lock()
	bc, off := b.bc, b.off
	b.mu.Unlock()
	if bc == nil {
		return net.ErrClosed
	}
	e, ok := ep.(Endpoint)
	if !ok {
		return fmt.Errorf("wgnet: udp bind: send: %w", errForeignEndpoint)
	}
	ap := netip.AddrPort(e)
	if !b.addr.Is4() && ap.Addr().Is4() {
		ap = netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	return off.send(bc, bufs, net.UDPAddrFromAddrPort(ap))
}

// ParseEndpoint implements conn.Bind.
func (b *UDPBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	return parseEndpoint(s)
}

func parseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return Endpoint(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())), nil
}

// BatchSize implements conn.Bind.
func (b *UDPBind) BatchSize() int { return bindBatchSize }
