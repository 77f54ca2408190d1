package wgnet

import (
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"
)

// BlockBind is a decorator over a UDP conn.Bind with a switch that, while
// on, drops every datagram in both directions, as a firewall that blocks
// UDP would: sends succeed and go nowhere, and nothing is received. Tests
// and bench use it to make a connector fall back to the stream carrier.
// It also counts the datagrams that pass, so benchmarks can report
// WireGuard packets per request, a figure a loaded machine does not blur.
// Its methods are safe for concurrent use.
type BlockBind struct {
	conn.Bind
	blocked        atomic.Bool
	sent, received atomic.Uint64
}

var _ conn.Bind = (*BlockBind)(nil)

// NewBlockBind returns inner behind an open switch.
func NewBlockBind(inner conn.Bind) *BlockBind { return &BlockBind{Bind: inner} }

// SetBlocked turns the block on or off.
func (b *BlockBind) SetBlocked(on bool) { b.blocked.Store(on) }

// Blocked reports whether the block is on.
func (b *BlockBind) Blocked() bool { return b.blocked.Load() }

// Packets returns how many datagrams were sent and received through the
// bind so far, not counting those the block dropped.
func (b *BlockBind) Packets() (sent, received uint64) { return b.sent.Load(), b.received.Load() }

// Open implements conn.Bind, filtering what the inner bind receives.
func (b *BlockBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, p, err := b.Bind.Open(port)
	for i, fn := range fns {
		fns[i] = b.filter(fn)
	}
	return fns, p, err
}

// filter drops received batches while the block is on.
func (b *BlockBind) filter(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		for {
			n, err := fn(packets, sizes, eps)
			if n == 0 || err != nil || !b.blocked.Load() {
				b.received.Add(uint64(max(n, 0)))
				return n, err
			}
		}
	}
}

// Send implements conn.Bind; while the block is on it drops bufs.
func (b *BlockBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if b.blocked.Load() {
		return nil
	}
	b.sent.Add(uint64(len(bufs)))
	return b.Bind.Send(bufs, ep)
}
