package wgnet

import (
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/conn"
)

// UDP segmentation offload (Linux): a bind hands the kernel a run of
// equal-sized datagrams to one destination as one message with a
// UDP_SEGMENT control message (GSO), which the kernel cuts as late as it
// can, and asks the kernel with UDP_GRO to hand back runs of datagrams
// from one sender coalesced into one reading, which the bind cuts again.
// A bulk stream through the tunnel then costs one system call and one
// trip through the kernel's UDP path per up to 64 datagrams instead of
// per datagram. (The dial bind sends segmented but does not ask for
// UDP_GRO: its primary socket is read straight into WireGuard's buffers,
// one datagram each.) Where the kernel lacks either option, or the first
// segmented send is refused, the bind sends and reads one datagram per
// message, as before.

// Limits of one segmented send: the kernel takes at most 64 segments
// (UDP_MAX_SEGMENTS until Linux 6.9) and one IP datagram's worth of
// payload (IPv4's, the smaller).
const (
	maxGSOSegments = 64
	maxGSOBytes    = 1<<16 - 1 - 20 - 8
)

// groReadBatch is how many readings a bind with UDP_GRO takes per system
// call; each may hold up to 64 datagrams.
const groReadBatch = 8

// offload is a socket's use of segmentation offload.
type offload struct {
	gso atomic.Bool // send runs as one message; cleared on the first refusal
	gro bool        // UDP_GRO is on: a reading may hold several datagrams
}

// newOffload probes c's offload options, or turns them off if off;
// UDP_GRO only if gro (the socket's reader cuts coalesced readings).
func newOffload(c *net.UDPConn, off, gro bool) *offload {
	o := &offload{}
	if off {
		return o
	}
	gso, gro := probeOffload(c, gro)
	o.gso.Store(gso)
	o.gro = gro
	return o
}

// send sends bufs to addr (nil on a connected socket), segmented if the
// socket may. A refused segmented send turns segmentation off for good
// and sends the whole batch again unsegmented; datagrams that went out
// twice are dropped by the receiver's WireGuard replay check.
func (o *offload) send(c batchConn, bufs [][]byte, addr net.Addr) error {
	if o != nil && o.gso.Load() && len(bufs) > 1 {
		err := writeSegmented(c, bufs, addr)
		if err == nil || !offloadRefused(err) {
			return err
		}
		o.gso.Store(false)
	}
	return writeAll(c, bufs, addr)
}

// gsoMessages is one segmented send's messages and their control
// messages.
type gsoMessages struct {
	ms  []ipv4.Message
	oob [][]byte
}

var gsoPool = sync.Pool{New: func() any {
	g := &gsoMessages{ms: make([]ipv4.Message, bindBatchSize), oob: make([][]byte, bindBatchSize)}
	for i := range g.oob {
		g.oob[i] = make([]byte, gsoOOBSize)
	}
	return g
}}

// writeSegmented sends bufs as runs of equal-sized datagrams (the last of
// a run may be shorter), one message per run.
func writeSegmented(c batchConn, bufs [][]byte, addr net.Addr) error {
	g := gsoPool.Get().(*gsoMessages)
	defer gsoPool.Put(g)
	defer func() {
		for i := range g.ms {
			g.ms[i] = ipv4.Message{}
		}
	}()
	for len(bufs) > 0 {
		k := 0
		for len(bufs) > 0 && k < len(g.ms) {
			n := runLength(bufs)
			m := &g.ms[k]
			m.Buffers, m.Addr, m.OOB = bufs[:n:n], addr, nil
			if n > 1 {
				m.OOB = putSegmentSize(g.oob[k], len(bufs[0]))
			}
			bufs = bufs[n:]
			k++
		}
		for sent := 0; sent < k; {
			n, err := c.WriteBatch(g.ms[sent:k], 0)
			if err != nil {
				return err
			}
			sent += n
		}
	}
	return nil
}

// runLength returns how many datagrams from the start of bufs one
// segmented send carries: all of the first one's size, then at most one
// shorter, within the kernel's limits.
func runLength(bufs [][]byte) int {
	size := len(bufs[0])
	if size == 0 {
		return 1
	}
	n, total := 1, size
	for n < len(bufs) && n < maxGSOSegments && len(bufs[n]) <= size && len(bufs[n]) > 0 && total+len(bufs[n]) <= maxGSOBytes {
		total += len(bufs[n])
		n++
		if len(bufs[n-1]) < size {
			break
		}
	}
	return n
}

// splitter hands out the datagrams of a batch of readings, any of which
// may hold several coalesced ones (UDP_GRO), into WireGuard's buffers,
// resuming where it stopped when they were full.
type splitter struct {
	msg, off int // the next datagram: its reading and its offset in it
}

// next copies datagrams from ms[:n] into packets, with sizes and
// endpoints (ep of their reading); it returns how many and whether the
// batch is used up.
func (p *splitter) next(ms []ipv4.Message, n int, packets [][]byte, sizes []int, eps []conn.Endpoint,
	ep func(*ipv4.Message) conn.Endpoint) (int, bool) {
	k := 0
	for p.msg < n && k < len(packets) {
		m := &ms[p.msg]
		data := m.Buffers[0][:m.N]
		seg := segmentSize(m.OOB[:m.NN])
		if seg <= 0 || seg > len(data) {
			seg = len(data)
		}
		e := ep(m)
		for p.off < len(data) && k < len(packets) {
			end := min(p.off+seg, len(data))
			sizes[k] = copy(packets[k], data[p.off:end])
			eps[k] = e
			k++
			p.off = end
		}
		if p.off >= len(data) {
			p.msg, p.off = p.msg+1, 0
		}
	}
	if p.msg >= n {
		*p = splitter{}
		return k, true
	}
	return k, false
}

// newReadMessages returns n messages with buffers of maxDatagram bytes
// and room for a UDP_GRO control message each.
func newReadMessages(n int) []ipv4.Message {
	ms := *newMessages(n)
	for i := range ms {
		ms[i].Buffers[0] = make([]byte, maxDatagram)
		ms[i].OOB = make([]byte, groOOBSize)
	}
	return ms
}
