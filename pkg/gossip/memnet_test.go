package gossip

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNet is an in-memory network of memberlist transports, the loopback
// network's twin for tests under testing/synctest: packets go through
// buffered channels (dropped, as UDP, when the receiver is gone, blocked
// or its queue full), streams through net.Pipe. Unlike memberlist's
// MockNetwork, a closed node cannot block its peers.
type memNet struct {
	mu    sync.Mutex // guards the following
	nodes map[string]*memTransport
	next  int
	drain bool // a cleanup lets memberlist's goroutines end

	// delay is every packet's one-way latency; zero delivers at once.
	// Set it before the first node starts.
	delay time.Duration
}

// transport returns a new node's transport at a fresh address.
func (n *memNet) transport() *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes == nil {
		n.nodes = map[string]*memTransport{}
	}
	n.next++
	t := &memTransport{net: n, addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10000 + n.next},
		packets: make(chan *memberlist.Packet, 1024), streams: make(chan net.Conn, 64), done: make(chan struct{})}
	n.nodes[t.addr.String()] = t
	return t
}

// opt makes a test node use a new transport of n. Call it inside
// synctest.Test: when the test ends, after its nodes closed, the bubble's
// clock runs on for a minute, so that memberlist's probe goroutines (which
// its Shutdown does not wait for) time out and end.
func (n *memNet) opt(tb testing.TB) nodeOpts {
	n.mu.Lock()
	if !n.drain {
		n.drain = true
		tb.Cleanup(func() { time.Sleep(time.Minute) })
	}
	n.mu.Unlock()
	return func(c *Config) { c.Transport = n.transport() }
}

// peer returns the live transport at addr, or nil.
func (n *memNet) peer(addr string) *memTransport {
	n.mu.Lock()
	t := n.nodes[addr]
	n.mu.Unlock()
	if t == nil || t.isClosed() {
		return nil
	}
	return t
}

// memTransport is one node's attachment to a memNet.
type memTransport struct {
	net     *memNet
	addr    *net.UDPAddr
	packets chan *memberlist.Packet
	streams chan net.Conn
	blocked atomic.Bool // drops everything in and out, as a partition
	once    sync.Once
	done    chan struct{}
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

// Addr returns the transport's address.
func (t *memTransport) Addr() string { return t.addr.String() }

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.addr.IP, t.addr.Port, nil
}

// WriteTo implements memberlist.Transport.
func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport: the packet is
// queued at the receiver, or lost.
func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	dest := t.net.peer(a.Addr)
	if dest == nil || t.blocked.Load() || dest.blocked.Load() {
		return now, nil
	}
	buf := slices.Clone(b)
	deliver := func() {
		select {
		case dest.packets <- &memberlist.Packet{Buf: buf, From: t.addr, Timestamp: time.Now()}:
		default: // queue full: lost
		}
	}
	if t.net.delay > 0 {
		time.AfterFunc(t.net.delay, deliver)
	} else {
		deliver()
	}
	return now, nil
}

// PacketCh implements memberlist.Transport.
func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout implements memberlist.Transport.
func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *memTransport) DialAddressTimeout(a memberlist.Address, _ time.Duration) (net.Conn, error) {
	dest := t.net.peer(a.Addr)
	if dest == nil || t.blocked.Load() || dest.blocked.Load() {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errRefused)
	}
	local, remote := net.Pipe()
	select {
	case dest.streams <- remote:
		return local, nil
	default:
		local.Close()
		remote.Close()
		return nil, fmt.Errorf("dial %s: backlog full: %w", a.Addr, errRefused)
	}
}

var errRefused = errors.New("connection refused")

// StreamCh implements memberlist.Transport.
func (t *memTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport: the node is gone; streams
// queued for it are closed.
func (t *memTransport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		for {
			select {
			case c := <-t.streams:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (t *memTransport) isClosed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}
