package wgnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/conn"
)

// DialBind is a conn.Bind for connectors: it opens no listening socket on
// the host network. Each destination endpoint gets its own connected UDP
// socket, made on the first Send to it, so the kernel only delivers
// datagrams from that peer; endpoints may be added at any time. A reader
// goroutine per socket fans its batches in to the one ReceiveFunc. Like
// UDPBind it uses UDP segmentation offload where the kernel has it. Its
// methods are safe for concurrent use.
type DialBind struct {
	noOffload bool

	mu   sync.Mutex // guards the following
	open *dialSession
}

var _ conn.Bind = (*DialBind)(nil)

// NewDialBind returns a closed DialBind; WireGuard opens it.
func NewDialBind() *DialBind { return &DialBind{} }

// WithoutOffload makes b send and read one datagram per message even
// where the kernel offers UDP segmentation offload (see offload.go), and
// returns b. Call it before the device opens b.
func (b *DialBind) WithoutOffload() *DialBind {
	b.noOffload = true
	return b
}

// dialSession is the state of one Open..Close of a DialBind.
type dialSession struct {
	done      chan struct{}
	batches   chan *dialConn // a socket with a batch ready to hand over
	wg        sync.WaitGroup
	noOffload bool

	// cur is the batch the receiver is handing over, split where it
	// stopped (only the receiver touches them).
	cur   *dialConn
	split splitter

	mu    sync.Mutex // guards the following
	conns map[netip.AddrPort]*dialConn
}

// dialConn is one connected socket and its reader's batch.
type dialConn struct {
	ep   Endpoint
	c    *net.UDPConn
	bc   batchConn
	off  *offload
	ms   []ipv4.Message
	n    int           // messages in ms ready for the receiver
	free chan struct{} // receiver is done with ms
}

// Open implements conn.Bind. It ignores port and reports port 0: the bind
// has no local port of its own.
func (b *DialBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	s := &dialSession{
		done:      make(chan struct{}),
		batches:   make(chan *dialConn),
		conns:     make(map[netip.AddrPort]*dialConn),
		noOffload: b.noOffload,
	}
	b.open = s
	return []conn.ReceiveFunc{s.receive}, 0, nil
}

// receive hands WireGuard the datagrams of the next batch any socket has
// read; a batch of coalesced readings (UDP_GRO) may take several calls.
func (s *dialSession) receive(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	if s.cur == nil {
		select {
		case <-s.done:
			return 0, net.ErrClosed
		case s.cur = <-s.batches:
		}
	}
	dc := s.cur
	n, done := s.split.next(dc.ms, dc.n, packets, sizes, eps, func(*ipv4.Message) conn.Endpoint { return dc.ep })
	if done {
		s.cur = nil
		dc.free <- struct{}{}
	}
	return n, nil
}

// conn returns the socket for ep, dialling it on first use.
func (s *dialSession) conn(ep Endpoint) (*dialConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return nil, net.ErrClosed
	default:
	}
	ap := netip.AddrPort(ep)
	if dc := s.conns[ap]; dc != nil {
		return dc, nil
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("wgnet: dial bind: %w", err)
	}
	setSocketBuffers(c)
	dc := &dialConn{
		ep:   ep,
		c:    c,
		bc:   newBatchConn(c, ap.Addr().Is4()),
		off:  newOffload(c, s.noOffload),
		ms:   newReadMessages(dialReadBatch),
		free: make(chan struct{}, 1),
	}
	s.conns[ap] = dc
	s.wg.Add(1)
	go s.read(dc)
	return dc, nil
}

// maxDatagram is the largest datagram a DialBind socket reads, and
// dialReadBatch how many one read takes: together they bound the memory of
// a socket.
const (
	maxDatagram   = 1 << 16
	dialReadBatch = 16
)

// read reads batches from dc until the session closes. A connected socket
// reports ICMP errors (ECONNREFUSED while the peer is down) as read
// errors; those are skipped, so a peer that comes back is heard again.
func (s *dialSession) read(dc *dialConn) {
	defer s.wg.Done()
	for {
		n, err := dc.bc.ReadBatch(dc.ms, 0)
		if err != nil {
			if transientReadError(err) {
				continue
			}
			return
		}
		dc.n = n
		select {
		case s.batches <- dc:
		case <-s.done:
			return
		}
		select {
		case <-dc.free:
		case <-s.done:
			return
		}
	}
}

// transientReadError reports whether err leaves the socket usable.
func transientReadError(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EINTR)
}

// Close implements conn.Bind: it closes every socket, unblocks receivers
// with net.ErrClosed and waits for the readers.
func (b *DialBind) Close() error {
	b.mu.Lock()
	s := b.open
	b.open = nil
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	close(s.done)
	var errs []error
	for _, dc := range s.conns {
		errs = append(errs, dc.c.Close())
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// SetMark implements conn.Bind; marks are not supported and ignored.
func (b *DialBind) SetMark(uint32) error { return nil }

// Send implements conn.Bind, dialling ep's socket on first use.
func (b *DialBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.mu.Lock()
	s := b.open
	b.mu.Unlock()
	if s == nil {
		return net.ErrClosed
	}
	e, ok := ep.(Endpoint)
	if !ok {
		return fmt.Errorf("wgnet: dial bind: send: %w", errForeignEndpoint)
	}
	dc, err := s.conn(e)
	if err != nil {
		return err
	}
	err = dc.off.send(dc.bc, bufs, nil)
	if errors.Is(err, syscall.ECONNREFUSED) {
		// A stale ICMP error from an earlier datagram; this send did not
		// happen, so try once more.
		err = dc.off.send(dc.bc, bufs, nil)
	}
	return err
}

// ParseEndpoint implements conn.Bind.
func (b *DialBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	return parseEndpoint(s)
}

// BatchSize implements conn.Bind.
func (b *DialBind) BatchSize() int { return bindBatchSize }

// localPorts returns the local ports of the open sockets.
func (b *DialBind) localPorts() []uint16 {
	b.mu.Lock()
	s := b.open
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ports []uint16
	for _, dc := range s.conns {
		ports = append(ports, uint16(dc.c.LocalAddr().(*net.UDPAddr).Port))
	}
	return ports
}
