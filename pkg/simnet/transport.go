package simnet

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Transport decorates a memberlist transport so that gossip between regions
// takes the simulated delay, loss and partitions. Packets (WriteTo,
// WriteToAddress) are scheduled like Bind's; streams (DialTimeout,
// DialAddressTimeout) pay one RTT to connect and then run over a delayed
// connection (see Dialer). It is safe for concurrent use.
type Transport struct {
	memberlist.NodeAwareTransport // PacketCh, StreamCh delegate untouched

	net    *Network
	region string

	mu       sync.Mutex // guards the following
	self     netip.AddrPort
	sched    *scheduler[datagram]
	shutdown bool
}

// datagram is one delayed gossip packet; buf is the Transport's own copy.
type datagram struct {
	addr memberlist.Address
	buf  []byte
}

// Transport returns inner decorated to send from region. A region the matrix
// does not name sends without delay (partitions naming it still apply).
func (n *Network) Transport(inner memberlist.NodeAwareTransport, region string) memberlist.NodeAwareTransport {
	return &Transport{NodeAwareTransport: inner, net: n, region: region}
}

// FinalAdvertiseAddr delegates and remembers the result as this transport's
// own address, for Isolate.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	a, p, err := t.NodeAwareTransport.FinalAdvertiseAddr(ip, port)
	if err == nil {
		if addr, ok := netip.AddrFromSlice(a); ok && p > 0 && p <= 65535 {
			t.mu.Lock()
			t.self = norm(netip.AddrPortFrom(addr, uint16(p)))
			t.mu.Unlock()
		}
	}
	return a, p, err
}

// isSelf reports whether a is this transport's advertised address.
func (t *Transport) isSelf(a netip.AddrPort) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.self.IsValid() && a == t.self
}

// route looks up the path to a "host:port" address; names are not placed.
func (t *Transport) route(addr string) (netip.AddrPort, path, bool) {
	dst, ok := parseAddrPort(addr)
	if !ok {
		return dst, path{}, false
	}
	return dst, t.net.route(t.region, t.isSelf, dst), true
}

// WriteTo sends b to addr after the simulated one-way delay, without
// waiting for it; it returns the time of the call, so memberlist's RTT
// includes the delay.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.write(b, memberlist.Address{Addr: addr}, false)
}

// WriteToAddress is WriteTo for a named node.
func (t *Transport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return t.write(b, addr, true)
}

func (t *Transport) write(b []byte, addr memberlist.Address, named bool) (time.Time, error) {
	send := func(b []byte) (time.Time, error) {
		if named {
			return t.NodeAwareTransport.WriteToAddress(b, addr)
		}
		return t.NodeAwareTransport.WriteTo(b, addr.Addr)
	}
	_, p, ok := t.route(addr.Addr)
	if !ok || (!p.blocked && p.link.zero()) {
		return send(b)
	}
	now := time.Now()
	if p.blocked {
		return now, nil
	}
	d, drop := t.net.sample(p.link)
	if drop {
		return now, nil
	}
	s, err := t.scheduler()
	if err != nil {
		return time.Time{}, err
	}
	if !named {
		addr.Name = ""
	}
	s.push(now.Add(d), datagram{addr: addr, buf: slices.Clone(b)})
	return now, nil
}

// scheduler starts the delivery goroutine on first use.
func (t *Transport) scheduler() (*scheduler[datagram], error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shutdown {
		return nil, fmt.Errorf("simnet transport write: %w", net.ErrClosed)
	}
	if t.sched == nil {
		t.sched = newScheduler(t.deliver, &t.net.lead)
	}
	return t.sched, nil
}

func (t *Transport) deliver(due []datagram) {
	for _, d := range due {
		if d.addr.Name != "" {
			_, _ = t.NodeAwareTransport.WriteToAddress(d.buf, d.addr)
		} else {
			_, _ = t.NodeAwareTransport.WriteTo(d.buf, d.addr.Addr)
		}
	}
}

// DialTimeout dials addr; see DialAddressTimeout.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.dial(memberlist.Address{Addr: addr}, false, timeout)
}

// DialAddressTimeout fails with ErrPartitioned when the path is cut;
// otherwise it dials, waits one RTT (connection setup) and returns a
// connection whose writes take the one-way delay (see Dialer).
func (t *Transport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.dial(addr, true, timeout)
}

func (t *Transport) dial(addr memberlist.Address, named bool, timeout time.Duration) (net.Conn, error) {
	dst, p, ok := t.route(addr.Addr)
	if p.blocked {
		return nil, fmt.Errorf("simnet dial %s: %w", addr.Addr, ErrPartitioned)
	}
	start := time.Now()
	var c net.Conn
	var err error
	if named {
		c, err = t.NodeAwareTransport.DialAddressTimeout(addr, timeout)
	} else {
		c, err = t.NodeAwareTransport.DialTimeout(addr.Addr, timeout)
	}
	if err != nil || !ok || p.link.zero() {
		return c, err
	}
	rtt := t.net.roundTrip(p.link)
	if timeout > 0 && time.Since(start)+rtt > timeout {
		time.Sleep(max(timeout-time.Since(start), 0)) // the handshake would not finish in time
		c.Close()
		return nil, fmt.Errorf("simnet dial %s: connection setup takes %v, over the %v timeout: %w", addr.Addr, rtt, timeout, os.ErrDeadlineExceeded)
	}
	time.Sleep(rtt)
	return newDelayConn(c, t.net, t.region, t.isSelf, dst), nil
}

// Shutdown stops the delivery goroutine (dropping packets in flight), waits
// for it and shuts the inner transport down. It is idempotent.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	s := t.sched
	already := t.shutdown
	t.sched, t.shutdown = nil, true
	t.mu.Unlock()
	if s != nil {
		s.close()
	}
	if already {
		return nil
	}
	return t.NodeAwareTransport.Shutdown()
}
