package simnet

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

var _ conn.Bind = (*Bind)(nil)

// Bind decorates a wireguard-go conn.Bind so that what it sends takes the
// simulated one-way delay, loss and partitions from its region to the
// destination's. Receiving is untouched: the sender applies the delay once.
// It is safe for concurrent use, as conn.Bind requires.
type Bind struct {
	net    *Network
	inner  conn.Bind
	region string

	mu    sync.Mutex // guards the following
	port  uint16     // from the last successful Open
	sched *scheduler[packet]
}

// packet is one delayed datagram; buf is the Bind's own copy.
type packet struct {
	dst netip.AddrPort
	ep  conn.Endpoint
	buf []byte
}

// Bind returns inner decorated to send from region. A region the matrix does
// not name sends without delay (partitions naming it still apply).
func (n *Network) Bind(inner conn.Bind, region string) conn.Bind {
	return &Bind{net: n, inner: inner, region: region}
}

// Open opens the inner bind and starts the delay scheduler. Open after Close
// works, as wireguard-go's BindUpdate needs.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.inner.Open(port)
	if err != nil {
		return nil, 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.port = actual
	if b.sched == nil {
		b.sched = newScheduler(b.deliver, &b.net.lead)
	}
	if actual != 0 {
		// Everything in the simulation shares loopback: the bind's own port
		// is where the other hosts reach it, so it lives in its region. A
		// bind without a port of its own (wgnet.DialBind) is not placed.
		for _, a := range []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()} {
			_ = b.net.Register(netip.AddrPortFrom(a, actual), b.region)
		}
	}
	return fns, actual, nil
}

// Close stops the scheduler, dropping packets still in flight, waits for it
// and closes the inner bind. It is idempotent.
func (b *Bind) Close() error {
	b.mu.Lock()
	s := b.sched
	b.sched = nil
	b.mu.Unlock()
	if s != nil {
		s.close()
	}
	return b.inner.Close()
}

// SetMark delegates to the inner bind.
func (b *Bind) SetMark(mark uint32) error { return b.inner.SetMark(mark) }

// ParseEndpoint delegates to the inner bind.
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) { return b.inner.ParseEndpoint(s) }

// BatchSize delegates to the inner bind.
func (b *Bind) BatchSize() int { return b.inner.BatchSize() }

// Send samples every packet's fate: dropped packets vanish (Send still
// returns nil, like a router dropping them), the rest are copied and sent by
// the scheduler when due, so Send never waits for the delay. When the path
// has no delay, no loss and no partition, bufs go to the inner bind inline.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	dst, ok := parseAddrPort(ep.DstToString())
	if !ok {
		return b.inner.Send(bufs, ep) // not an address we can place
	}
	b.mu.Lock()
	port, s := b.port, b.sched
	b.mu.Unlock()
	p := b.net.route(b.region, func(a netip.AddrPort) bool { return a.Port() == port }, dst)
	if p.blocked {
		return nil
	}
	if p.link.zero() {
		return b.inner.Send(bufs, ep)
	}
	if s == nil {
		return net.ErrClosed
	}
	now := time.Now()
	for _, buf := range bufs {
		d, drop := b.net.sample(p.link)
		if drop {
			continue
		}
		s.push(now.Add(d), packet{dst: dst, ep: ep, buf: slices.Clone(buf)})
	}
	return nil
}

// deliver sends due packets, batching consecutive packets to one
// destination up to BatchSize. Errors are dropped, as a lost datagram.
func (b *Bind) deliver(due []packet) {
	limit := max(b.inner.BatchSize(), 1)
	bufs := make([][]byte, 0, limit)
	for i := 0; i < len(due); {
		j := i
		bufs = bufs[:0]
		for j < len(due) && due[j].dst == due[i].dst && len(bufs) < limit {
			bufs = append(bufs, due[j].buf)
			j++
		}
		_ = b.inner.Send(bufs, due[i].ep)
		i = j
	}
}
