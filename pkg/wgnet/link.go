package wgnet

import (
	"os"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// linkBatchSize is how many packets one tun Read or Write carries at most.
// WireGuard sizes every batch buffer at 64 KiB whatever the packet, and
// its reader holds a full batch of them for good, so the batch bounds
// fixed memory (64 × 64 KiB = 4 MiB, against 8 MiB at conn.IdealBatchSize)
// at no cost in speed that the benchmarks show. A GSO segment cut into
// more packets than a batch holds (at an MSS below 1,030 bytes, which a
// peer may advertise) goes out over several Reads.
const linkBatchSize = 64

// linkQueueLen bounds the packets the stack may queue towards WireGuard
// before further writes fail with ErrNoBufferSpace (TCP then backs off and
// retransmits, as on a full NIC queue).
const linkQueueLen = 4096

// gsoMaxSize is the largest TCP segment the stack hands to the link
// endpoint; Read cuts it into MTU-sized packets.
const gsoMaxSize = 1<<16 - 1

// linkTUN joins a gVisor stack to a WireGuard device. It is the stack's
// link endpoint (stack.LinkEndpoint) and WireGuard's TUN device
// (tun.Device) at once:
//
//   - The stack's WritePackets appends packets, by reference, to a bounded
//     queue and wakes the reader; it never blocks and never switches
//     goroutine. Large TCP segments (host GSO) stay whole in the queue.
//   - WireGuard's Read takes as many queued packets as fit into its batch,
//     cuts GSO segments into MTU-sized packets with their checksums, and
//     copies them straight into WireGuard's buffers. Every TCP segment
//     leaves with one window unit less than the stack chose, so that the
//     stack accepts all that its peer may send (see window.go: two-way
//     streams stalled for good without it).
//   - WireGuard's Write wraps each decrypted packet in a PacketBuffer and
//     delivers it into the stack in the calling goroutine. (gVisor's GRO
//     engine was tried here: it gained nothing measurable and one stream in
//     a dozen race-enabled runs stalled, so it is left out.)
//
// WireGuard authenticates every packet, so receive checksums are not
// verified again (RX checksum offload). Read must not be called
// concurrently with itself; Write may be.
type linkTUN struct {
	mtu    uint32
	events chan tun.Event
	ready  chan struct{} // one token: the queue may be non-empty
	done   chan struct{} // closed by Close

	mu         sync.Mutex // guards the following
	queue      []*stack.PacketBuffer
	closed     bool
	dispatcher stack.NetworkDispatcher

	// partial is a GSO packet of which a Read wrote the first sent
	// packets (it had more than a batch holds: a peer advertised a tiny
	// MSS); the next Read writes the rest. Read takes it under mu, and
	// shut releases it.
	partial *stack.PacketBuffer
	sent    int

	taken   []*stack.PacketBuffer
	scratch []byte
	drops   atomic.Int64 // packets Read could not write (malformed, too big)

	inbound func(pkt []byte) bool // test hook: see Config.inbound
}

// tunDevice is linkTUN seen from WireGuard: its tun.Device methods.
type tunDevice linkTUN

var (
	_ stack.LinkEndpoint = (*linkTUN)(nil)
	_ stack.GSOEndpoint  = (*linkTUN)(nil)
	_ tun.Device         = (*tunDevice)(nil)
)

// device returns l's WireGuard side.
func (l *linkTUN) device() *tunDevice { return (*tunDevice)(l) }

func newLinkTUN(mtu int) *linkTUN {
	l := &linkTUN{
		mtu:     uint32(mtu),
		events:  make(chan tun.Event, 1),
		ready:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		scratch: make([]byte, gsoMaxSize),
	}
	l.events <- tun.EventUp
	return l
}

// --- stack.LinkEndpoint: the gVisor side ---

// WritePackets queues outbound packets for WireGuard. It may be called
// concurrently.
func (l *linkTUN) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, &tcpip.ErrClosedForSend{}
	}
	n := 0
	for _, pkt := range pkts.AsSlice() {
		if len(l.queue) >= linkQueueLen {
			break
		}
		l.queue = append(l.queue, pkt.IncRef())
		n++
	}
	l.mu.Unlock()
	if n > 0 {
		select {
		case l.ready <- struct{}{}:
		default:
		}
	}
	if n == 0 && pkts.Len() > 0 {
		return 0, &tcpip.ErrNoBufferSpace{}
	}
	return n, nil
}

// MTU implements stack.LinkEndpoint.
func (l *linkTUN) MTU() uint32 { return l.mtu }

// SetMTU implements stack.LinkEndpoint; the MTU is fixed at creation.
func (l *linkTUN) SetMTU(uint32) {}

// MaxHeaderLength implements stack.LinkEndpoint; there is no link header.
func (l *linkTUN) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.LinkEndpoint; there is no link address.
func (l *linkTUN) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.LinkEndpoint and does nothing.
func (l *linkTUN) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint.
func (l *linkTUN) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

// Attach implements stack.LinkEndpoint.
func (l *linkTUN) Attach(d stack.NetworkDispatcher) {
	l.mu.Lock()
	l.dispatcher = d
	l.mu.Unlock()
}

// IsAttached implements stack.LinkEndpoint.
func (l *linkTUN) IsAttached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dispatcher != nil
}

// Wait implements stack.LinkEndpoint; the endpoint has no goroutines.
func (l *linkTUN) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (l *linkTUN) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.LinkEndpoint; there is no link header.
func (l *linkTUN) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.LinkEndpoint; there is no link header.
func (l *linkTUN) ParseHeader(*stack.PacketBuffer) bool { return true }

// SetOnCloseAction implements stack.LinkEndpoint.
func (l *linkTUN) SetOnCloseAction(func()) {}

// Close implements stack.LinkEndpoint; it is called when the NIC is
// removed and shuts the WireGuard side too.
func (l *linkTUN) Close() { l.shut() }

// GSOMaxSize implements stack.GSOEndpoint.
func (l *linkTUN) GSOMaxSize() uint32 { return gsoMaxSize }

// SupportedGSO implements stack.GSOEndpoint: TCP hands over large
// segments with a partial checksum, and Read segments them.
func (l *linkTUN) SupportedGSO() stack.SupportedGSO { return stack.HostGSOSupported }

// --- tun.Device: the WireGuard side ---

// File implements tun.Device; there is no file.
func (t *tunDevice) File() *os.File { return nil }

// Name implements tun.Device.
func (t *tunDevice) Name() (string, error) { return "wgnet", nil }

// Events implements tun.Device.
func (t *tunDevice) Events() <-chan tun.Event { return t.events }

// BatchSize implements tun.Device.
func (t *tunDevice) BatchSize() int { return linkBatchSize }

// Read blocks until the stack has queued packets, then copies as many as
// fit into bufs (at offset), cutting GSO segments into packets. It returns
// os.ErrClosed after Close.
func (t *tunDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	l := (*linkTUN)(t)
	for {
		if n, ok, err := l.continuePartial(bufs, sizes, offset); ok || err != nil {
			return n, err
		}
		taken, err := l.take(len(bufs))
		if err != nil {
			return 0, err
		}
		if len(taken) == 0 {
			select {
			case <-l.ready:
			case <-l.done:
			}
			continue
		}
		n := 0
		for i, pkt := range taken {
			m, done, err := l.copyOut(pkt, 0, bufs[n:], sizes[n:], offset)
			taken[i] = nil
			if err == nil {
				n += m
			} else {
				l.drops.Add(1)
			}
			if err == nil && !done {
				// Only a packet taken alone outgrows the batch (see
				// take): the rest of it goes with the next Read.
				l.keepPartial(pkt, m)
				continue
			}
			pkt.DecRef()
		}
		if n > 0 {
			return n, nil
		}
	}
}

// continuePartial writes on the packet an earlier Read could not finish,
// if any; ok reports that there was one and n of its packets were written.
func (l *linkTUN) continuePartial(bufs [][]byte, sizes []int, offset int) (n int, ok bool, err error) {
	l.mu.Lock()
	pkt, from, closed := l.partial, l.sent, l.closed
	l.partial, l.sent = nil, 0
	l.mu.Unlock()
	if closed {
		return 0, false, os.ErrClosed // shut released partial
	}
	if pkt == nil {
		return 0, false, nil
	}
	m, done, err := l.copyOut(pkt, from, bufs, sizes, offset)
	if err != nil || done {
		if err != nil {
			l.drops.Add(1) // a packet that cannot be cut is dropped, as in Read
		}
		pkt.DecRef()
		return m, m > 0, nil
	}
	l.keepPartial(pkt, from+m)
	return m, true, nil
}

// keepPartial keeps pkt, of which sent packets are written, for the next
// Read; after shut it releases it instead.
func (l *linkTUN) keepPartial(pkt *stack.PacketBuffer, sent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		pkt.DecRef()
		return
	}
	l.partial, l.sent = pkt, sent
}

// take removes from the queue the packets whose pieces fit into max
// buffers.
func (l *linkTUN) take(max int) ([]*stack.PacketBuffer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, os.ErrClosed
	}
	l.taken = l.taken[:0]
	room := max
	k := 0
	for ; k < len(l.queue); k++ {
		need := segments(l.queue[k])
		if need > room && k > 0 {
			break
		}
		room -= need
		l.taken = append(l.taken, l.queue[k])
	}
	rest := copy(l.queue, l.queue[k:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	if rest > 0 {
		select {
		case l.ready <- struct{}{}:
		default:
		}
	}
	return l.taken, nil
}

// segments returns how many packets pkt becomes on the wire.
func segments(pkt *stack.PacketBuffer) int {
	g := pkt.GSOOptions
	if g.Type != stack.GSOTCPv4 && g.Type != stack.GSOTCPv6 || g.MSS == 0 {
		return 1
	}
	n := (pkt.Data().Size() + int(g.MSS) - 1) / int(g.MSS)
	return max(n, 1)
}

// copyOut writes pkt, from its from'th packet on, into bufs as one or
// more packets; it returns how many and whether they were its last.
func (l *linkTUN) copyOut(pkt *stack.PacketBuffer, from int, bufs [][]byte, sizes []int, offset int) (int, bool, error) {
	g := pkt.GSOOptions
	if segments(pkt) == 1 {
		out := bufs[0][offset:]
		n := 0
		for _, s := range pkt.AsSlices() {
			n += copy(out[n:], s)
		}
		if n != pkt.Size() {
			return 0, false, errPacketTooBig
		}
		partial := g.Type != stack.GSONone && g.NeedsCsum
		shrinkWindow(out[:n], !partial)
		if partial {
			finishChecksum(out[:n], int(g.L3HdrLen), int(g.CsumOffset))
		}
		sizes[0] = n
		return 1, true, nil
	}
	in := l.scratch[:0]
	for _, s := range pkt.AsSlices() {
		in = append(in, s...)
	}
	shrinkWindow(in, false) // splitTCP computes every packet's checksum
	return splitTCP(in, len(pkt.NetworkHeader().Slice()), int(g.MSS), from, bufs, sizes, offset)
}

// Write delivers a batch of decrypted packets (each at offset in its
// buffer) into the stack. It may be called concurrently.
func (t *tunDevice) Write(bufs [][]byte, offset int) (int, error) {
	l := (*linkTUN)(t)
	l.mu.Lock()
	d := l.dispatcher
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return 0, os.ErrClosed
	}
	if d == nil {
		return len(bufs), nil
	}
	for _, b := range bufs {
		p := b[offset:]
		if len(p) == 0 || l.inbound != nil && !l.inbound(p) {
			continue
		}
		var proto tcpip.NetworkProtocolNumber
		switch p[0] >> 4 {
		case 4:
			proto = header.IPv4ProtocolNumber
		case 6:
			proto = header.IPv6ProtocolNumber
		default:
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		d.DeliverNetworkPacket(proto, pkt)
		pkt.DecRef()
	}
	return len(bufs), nil
}

// MTU implements tun.Device.
func (t *tunDevice) MTU() (int, error) { return int(t.mtu), nil }

// Close implements tun.Device: it drops queued packets, unblocks Read and
// closes the event channel. It is idempotent.
func (t *tunDevice) Close() error {
	(*linkTUN)(t).shut()
	return nil
}

func (l *linkTUN) shut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	if l.partial != nil {
		l.partial.DecRef()
		l.partial = nil
	}
	for i, pkt := range l.queue {
		pkt.DecRef()
		l.queue[i] = nil
	}
	l.queue = nil
	close(l.done)
	close(l.events)
}
