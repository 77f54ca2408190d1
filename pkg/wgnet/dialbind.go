package wgnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/conn"
)

// DialBind is a conn.Bind for connectors: it opens no listening socket on
// the host network. Each destination endpoint gets its own connected UDP
// socket, made on the first Send to it, so the kernel only delivers
// datagrams from that peer; endpoints may be added at any time. Its
// methods are safe for concurrent use.
//
// The first socket (the primary, normally the one mesh node the connector
// talks to most) is read by WireGuard's receive goroutine itself, straight
// into WireGuard's buffers: a datagram costs no goroutine hand-off and no
// copy, as with a listening bind. Every later socket has a reader goroutine
// that reads a batch, queues it for the receive goroutine and interrupts
// the primary's read by moving its deadline into the past.
type DialBind struct {
	noOffload bool

	mu   sync.Mutex // guards the following
	open *dialSession
}

var _ conn.Bind = (*DialBind)(nil)

// NewDialBind returns a closed DialBind; WireGuard opens it.
func NewDialBind() *DialBind { return &DialBind{} }

// WithoutOffload makes b send one datagram per message even where the
// kernel offers UDP segmentation offload (see offload.go), and returns b.
// Call it before the device opens b. (A dial bind sends with UDP_SEGMENT
// but does not ask for UDP_GRO: its primary socket is read straight into
// WireGuard's buffers, one datagram each.)
func (b *DialBind) WithoutOffload() *DialBind {
	b.noOffload = true
	return b
}

// dialSession is the state of one Open..Close of a DialBind.
type dialSession struct {
	done      chan struct{}
	changed   chan struct{} // one token: primary was set or ready grew
	noOffload bool
	wg        sync.WaitGroup
	ms        []ipv4.Message // receive's own, pointing into WireGuard's buffers

	mu      sync.Mutex // guards the following
	conns   map[netip.AddrPort]*dialConn
	primary *dialConn   // read by receive; nil before the first dial or after it broke
	ready   []*dialConn // secondary sockets with a batch for receive, in arrival order
}

// dialConn is one connected socket and, for a secondary socket, its
// reader's batch.
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
		changed:   make(chan struct{}, 1),
		conns:     make(map[netip.AddrPort]*dialConn),
		noOffload: b.noOffload,
	}
	b.open = s
	return []conn.ReceiveFunc{s.receive}, 0, nil
}

// aLongTimeAgo is a read deadline that interrupts a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// receive hands WireGuard the next batch: a secondary socket's queued
// batch first, else what the primary socket reads. WireGuard calls it from
// one goroutine only.
func (s *dialSession) receive(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	for {
		s.mu.Lock()
		if len(s.ready) > 0 {
			dc := s.ready[0]
			s.ready = s.ready[1:]
			s.mu.Unlock()
			n := min(dc.n, len(packets))
			for i := range n {
				m := &dc.ms[i]
				sizes[i] = copy(packets[i], m.Buffers[0][:m.N])
				eps[i] = dc.ep
			}
			dc.free <- struct{}{}
			return n, nil
		}
		p := s.primary
		s.mu.Unlock()
		if p == nil {
			select {
			case <-s.done:
				return 0, net.ErrClosed
			case <-s.changed:
				continue
			}
		}
		n, err := s.readPrimary(p, packets, sizes)
		if err == nil {
			for i := range n {
				eps[i] = p.ep
			}
			return n, nil
		}
		select {
		case <-s.done:
			return 0, net.ErrClosed
		default:
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// A secondary socket queued a batch. The deadline is cleared
			// before ready is looked at, so a batch queued after that look
			// moves it again and the next read returns at once. It fails
			// only on a closed socket, whose next read says so.
			_ = p.c.SetReadDeadline(time.Time{})
		case transientReadError(err):
		default:
			// The socket is broken; it is no longer read (as a secondary
			// socket's reader ends) and the next dial becomes primary.
			s.mu.Lock()
			if s.primary == p {
				s.primary = nil
			}
			s.mu.Unlock()
		}
	}
}

// readPrimary reads one batch from p into packets.
func (s *dialSession) readPrimary(p *dialConn, packets [][]byte, sizes []int) (int, error) {
	k := min(len(packets), bindBatchSize)
	if len(s.ms) < k {
		s.ms = *newMessages(k)
	}
	ms := s.ms[:k]
	for i := range ms {
		ms[i].Buffers[0] = packets[i]
	}
	n, err := p.bc.ReadBatch(ms, 0)
	for i := range n {
		sizes[i] = ms[i].N
	}
	clearMessages(ms)
	return n, err
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
	dc := &dialConn{ep: ep, c: c, bc: newBatchConn(c, ap.Addr().Is4()), off: newOffload(c, s.noOffload, false)}
	s.conns[ap] = dc
	if s.primary == nil {
		s.primary = dc
		s.signal()
		return dc, nil
	}
	dc.ms, dc.free = *newMessages(dialReadBatch), make(chan struct{}, 1)
	for i := range dc.ms {
		dc.ms[i].Buffers[0] = make([]byte, maxDatagram)
	}
	s.wg.Add(1)
	go s.read(dc)
	return dc, nil
}

// signal wakes a receive waiting without a primary socket.
func (s *dialSession) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// maxDatagram is the largest datagram a secondary socket reads, and
// dialReadBatch how many one read takes: together they bound the memory of
// a socket.
const (
	maxDatagram   = 1 << 16
	dialReadBatch = 16
)

// read reads batches from the secondary socket dc until the session
// closes, queueing each for receive and interrupting the primary's read.
// A connected socket reports ICMP errors (ECONNREFUSED while the peer is
// down) as read errors; those are skipped, so a peer that comes back is
// heard again.
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
		s.mu.Lock()
		s.ready = append(s.ready, dc)
		p := s.primary
		s.mu.Unlock()
		if p != nil {
			// It fails only on a closed primary, which receive no
			// longer reads: it takes the batch after its read fails.
			_ = p.c.SetReadDeadline(aLongTimeAgo)
		}
		s.signal()
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
