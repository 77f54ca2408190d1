package simnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// roundTrip draws the two legs of one round trip on l (loss ignored: a
// connection's handshake is retried, not lost).
func (n *Network) roundTrip(l Link) time.Duration {
	a, _ := n.sample(l)
	b, _ := n.sample(l)
	return a + b
}

// delayConn is a connection whose writes take the one-way delay and whose
// first read after a write takes it again (the reply's way back), so each
// request/response exchange costs one RTT. It models latency, not bandwidth.
type delayConn struct {
	net.Conn
	net    *Network
	region string
	self   func(netip.AddrPort) bool
	dst    netip.AddrPort

	wmu     sync.Mutex  // serialises writes so delayed writes keep their order
	replied atomic.Bool // false after a write until a read has paid the way back
	closed  chan struct{}
	once    sync.Once

	tmu    sync.Mutex  // guards the following
	idle   []fineTimer // timers no wait uses now
	timers []fineTimer // every timer made, closed by Close
	done   bool        // Close has closed the timers
}

func newDelayConn(c net.Conn, n *Network, region string, self func(netip.AddrPort) bool, dst netip.AddrPort) *delayConn {
	return &delayConn{Conn: c, net: n, region: region, self: self, dst: dst, closed: make(chan struct{})}
}

// wait sleeps one sampled one-way delay, or less if the conn is closed.
func (c *delayConn) wait(l Link) {
	d, _ := c.net.sample(l)
	if d <= 0 {
		return
	}
	t := c.takeTimer()
	if t == nil {
		return // closed
	}
	sleepFine(t, &c.net.lead, d, c.closed)
	c.tmu.Lock()
	c.idle = append(c.idle, t)
	c.tmu.Unlock()
}

// takeTimer returns an idle timer, or a new one (a write and a read may
// wait at once); nil once the conn is closed.
func (c *delayConn) takeTimer() fineTimer {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	if c.done {
		return nil
	}
	if n := len(c.idle); n > 0 {
		t := c.idle[n-1]
		c.idle = c.idle[:n-1]
		return t
	}
	t := newFineTimer()
	c.timers = append(c.timers, t)
	return t
}

// Write waits the one-way delay, then fails with ErrPartitioned if the path
// is cut by now, else writes.
func (c *delayConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p := c.net.route(c.region, c.self, c.dst)
	c.wait(p.link)
	if p = c.net.route(c.region, c.self, c.dst); p.blocked {
		return 0, fmt.Errorf("simnet write to %s: %w", c.dst, ErrPartitioned)
	}
	c.replied.Store(false)
	return c.Conn.Write(b)
}

// Read reads; the first data after a write waits the one-way delay of the
// way back. A cut path fails the read with ErrPartitioned.
func (c *delayConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.replied.Swap(true) {
		c.wait(c.net.route(c.region, c.self, c.dst).link)
	}
	if p := c.net.route(c.region, c.self, c.dst); p.blocked {
		return 0, fmt.Errorf("simnet read from %s: %w", c.dst, ErrPartitioned)
	}
	return n, err
}

// Close closes the connection and wakes any delayed write. It is idempotent
// as far as the wrapper goes; the inner Close error is returned each time.
func (c *delayConn) Close() error {
	c.once.Do(func() {
		close(c.closed) // a wait in progress returns at once
		c.tmu.Lock()
		c.done = true
		ts := c.timers
		c.tmu.Unlock()
		for _, t := range ts {
			t.Close()
		}
	})
	return c.Conn.Close()
}

// DialFunc is the shape of net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer decorates dial (nil means a zero net.Dialer's DialContext) for a
// client in region, for HTTP legs such as user → mesh or connector → mesh
// API. A cut path fails the dial with ErrPartitioned. After a successful
// dial it waits one RTT (the TCP handshake) and returns a connection whose
// every write takes the one-way delay and whose first read after a write
// takes it again, so a request/response exchange costs one RTT. It models
// latency, not bandwidth: a body written in many writes pays the delay on
// each. Destinations that are not registered pass through untouched.
func (n *Network) Dialer(region string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dst, ok := parseAddrPort(addr); ok && n.route(region, nil, dst).blocked {
			return nil, fmt.Errorf("simnet dial %s: %w", addr, ErrPartitioned)
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		dst, ok := parseAddrPort(c.RemoteAddr().String())
		if !ok {
			return c, nil
		}
		p := n.route(region, nil, dst)
		if p.blocked {
			c.Close()
			return nil, fmt.Errorf("simnet dial %s: %w", addr, ErrPartitioned)
		}
		if p.link.zero() {
			return c, nil
		}
		t := time.NewTimer(n.roundTrip(p.link))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("simnet dial %s: %w", addr, ctx.Err())
		}
		return newDelayConn(c, n, region, nil, dst), nil
	}
}
