package simnet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Network places loopback addresses in simulated regions and decides, per
// packet, how long it is delayed and whether it is dropped. It is safe for
// concurrent use. Traffic to an address that is not registered is neither
// delayed nor dropped (unless the address is isolated).
type Network struct {
	m *Matrix

	mu       sync.RWMutex // guards the following
	where    map[netip.AddrPort]string
	cut      map[[2]string]struct{} // partitioned region pairs, both orders
	isolated map[netip.AddrPort]struct{}

	rngMu sync.Mutex // guards rng
	rng   *rand.Rand

	lead lead // how early its waits arm their timers (see lead)
}

// NewNetwork returns a network over matrix m with no registered address and
// no partition; seed makes jitter and loss reproducible (math/rand/v2 PCG).
func NewNetwork(m *Matrix, seed uint64) *Network {
	return &Network{
		m:        m,
		where:    make(map[netip.AddrPort]string),
		cut:      make(map[[2]string]struct{}),
		isolated: make(map[netip.AddrPort]struct{}),
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// Matrix returns the matrix the network was built with.
func (n *Network) Matrix() *Matrix { return n.m }

// norm unmaps v4-in-v6 addresses so that ::ffff:127.0.0.1 and 127.0.0.1 are
// one host.
func norm(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// Register places addr in region; registering again moves it. It returns an
// error wrapping ErrUnknownRegion, and changes nothing, for a region the
// matrix does not name.
func (n *Network) Register(addr netip.AddrPort, region string) error {
	if !n.m.Has(region) {
		return fmt.Errorf("register %s: %w %q", addr, ErrUnknownRegion, region)
	}
	if !addr.IsValid() {
		return fmt.Errorf("register: invalid address %v", addr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.where[norm(addr)] = region
	return nil
}

// Unregister forgets addr; traffic to it is no longer delayed.
func (n *Network) Unregister(addr netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.where, norm(addr))
}

// RegionOf returns the region addr is registered in.
func (n *Network) RegionOf(addr netip.AddrPort) (string, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	r, ok := n.where[norm(addr)]
	return r, ok
}

// Partition drops all traffic, both ways, between any region in a and any
// region in b, until Heal. A region listed in both cuts its own internal
// traffic.
func (n *Network) Partition(a, b []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			n.cut[[2]string{x, y}] = struct{}{}
			n.cut[[2]string{y, x}] = struct{}{}
		}
	}
}

// Isolate drops all traffic to and from addrs (a dead or cut-off host) until
// Heal. A decorator counts as sending from an isolated address when the
// address is its own (Bind: any isolated address with the Bind's port, since
// every simulated host shares loopback; Transport: its advertised address).
func (n *Network) Isolate(addrs ...netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range addrs {
		n.isolated[norm(a)] = struct{}{}
	}
}

// Heal removes every partition and isolation.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	clear(n.isolated)
}

// Sample draws one packet's fate from region from to region to: its one-way
// delay (RTT/2 plus jitter, never negative) and whether it is dropped by loss
// or by a partition. Unknown regions give no delay and no drop.
func (n *Network) Sample(from, to string) (delay time.Duration, drop bool) {
	n.mu.RLock()
	_, cut := n.cut[[2]string{from, to}]
	n.mu.RUnlock()
	if cut {
		return 0, true
	}
	return n.sample(n.m.Link(from, to))
}

// sample draws one one-way delay and drop decision on link l.
func (n *Network) sample(l Link) (time.Duration, bool) {
	if l.zero() {
		return 0, false
	}
	d := float64(l.RTT) / 2
	n.rngMu.Lock()
	if l.Jitter > 0 {
		d += n.rng.NormFloat64() * float64(l.Jitter) / math.Sqrt2
	}
	drop := l.Loss > 0 && n.rng.Float64() < l.Loss
	n.rngMu.Unlock()
	return time.Duration(max(d, 0)), drop
}

// path is what a decorator needs to know about one destination.
type path struct {
	link    Link
	blocked bool // partitioned or isolated: drop everything
}

// route looks up the path from a decorator in region from (with own-address
// test self) to dst.
func (n *Network) route(from string, self func(netip.AddrPort) bool, dst netip.AddrPort) path {
	dst = norm(dst)
	n.mu.RLock()
	defer n.mu.RUnlock()
	if _, ok := n.isolated[dst]; ok {
		return path{blocked: true}
	}
	if self != nil {
		for a := range n.isolated {
			if self(a) {
				return path{blocked: true}
			}
		}
	}
	to, ok := n.where[dst]
	if !ok {
		return path{}
	}
	if _, cut := n.cut[[2]string{from, to}]; cut {
		return path{blocked: true}
	}
	return path{link: n.m.Link(from, to)}
}

// parseAddrPort parses "ip:port" (or a net.Addr's String form) into an
// AddrPort; host names give ok == false.
func parseAddrPort(s string) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return norm(ap), true
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return norm(netip.AddrPortFrom(a.WithZone(""), uint16(p))), true
}
