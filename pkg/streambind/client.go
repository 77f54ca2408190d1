package streambind

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/backoff"
	"github.com/postern/postern/pkg/wgnet"
)

// Carrier names how WireGuard packets travel between a connector and a
// mesh node.
type Carrier string

// Carriers.
const (
	// CarrierAuto tries UDP first and falls back to the stream.
	CarrierAuto Carrier = "auto"
	// CarrierUDP sends WireGuard over UDP only.
	CarrierUDP Carrier = "udp"
	// CarrierStream sends WireGuard over the HTTPS stream only.
	CarrierStream Carrier = "stream"
)

// ParseCarrier parses "auto", "udp" or "stream"; the empty string means
// CarrierAuto.
func ParseCarrier(s string) (Carrier, error) {
	switch c := Carrier(s); c {
	case "":
		return CarrierAuto, nil
	case CarrierAuto, CarrierUDP, CarrierStream:
		return c, nil
	}
	return "", fmt.Errorf("streambind: carrier %q: want auto, udp or stream", s)
}

// ClientConfig configures a ClientBind.
type ClientConfig struct {
	// UDP is the connector's UDP bind, which the ClientBind wraps; nil
	// means wgnet.NewDialBind(). Its endpoints must be wgnet.Endpoint.
	UDP conn.Bind
	// MaxPacket is the largest WireGuard packet accepted from a stream;
	// zero means DefaultMaxPacket.
	MaxPacket int
	// SendQueueBytes bounds the frames queued on each stream; zero means
	// DefaultSendQueueBytes.
	SendQueueBytes int
	// BackoffMin and BackoffMax bound the jittered delay between stream
	// dials; zero means 200ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// ClientBind is the connector's conn.Bind. It wraps the UDP bind and sends
// to each mesh node, named by its UDP endpoint, over the carrier set with
// SetCarrier: over UDP, or over a stream that it dials, keeps open and
// re-dials with jittered backoff while the carrier is CarrierStream and
// the bind is open. Packets from a stream are reported as coming from the
// mesh node's UDP endpoint, so switching carriers is invisible to
// WireGuard. Its methods are safe for concurrent use.
type ClientBind struct {
	cfg    ClientConfig
	udp    conn.Bind
	logger *slog.Logger
	inbox  *inbox
	routes atomic.Pointer[map[netip.AddrPort]*route] // copy of byEP for Send and receive

	mu   sync.Mutex // guards the following
	byEP map[netip.AddrPort]*route
	sess *clientSession
}

var _ conn.Bind = (*ClientBind)(nil)

// route is the carrier state of one mesh node.
type route struct {
	ep     wgnet.Endpoint
	target Target
	rt     http.RoundTripper
	stream atomic.Bool // the carrier is the stream
	cancel context.CancelFunc
	probe  atomic.Bool
	udpRx  atomic.Uint64
	cur    atomic.Pointer[clientStream]
	dials  atomic.Uint64
}

// clientStream is one connected stream.
type clientStream struct {
	q *sendQueue
}

// clientSession is the state of one Open..Close.
type clientSession struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewClientBind returns a closed ClientBind; WireGuard opens it.
func NewClientBind(cfg ClientConfig) *ClientBind {
	if cfg.UDP == nil {
		cfg.UDP = wgnet.NewDialBind()
	}
	cfg.MaxPacket = min(cmp(cfg.MaxPacket, DefaultMaxPacket), MaxFrame)
	cfg.SendQueueBytes = max(cmp(cfg.SendQueueBytes, DefaultSendQueueBytes), cfg.MaxPacket+FrameHeader)
	cfg.BackoffMin = cmp(cfg.BackoffMin, 200*time.Millisecond)
	cfg.BackoffMax = max(cmp(cfg.BackoffMax, 30*time.Second), cfg.BackoffMin)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &ClientBind{cfg: cfg, udp: cfg.UDP, logger: logger, inbox: newInbox(cfg.MaxPacket),
		byEP: make(map[netip.AddrPort]*route)}
	b.publishLocked()
	return b
}

// publishLocked makes the current routes visible to Send and receive.
func (b *ClientBind) publishLocked() {
	m := make(map[netip.AddrPort]*route, len(b.byEP))
	for k, v := range b.byEP {
		m[k] = v
	}
	b.routes.Store(&m)
}

// SetTarget says where the stream to the mesh node at UDP endpoint ep is
// dialled. A route starts on CarrierUDP; setting the target of an existing
// route keeps its carrier and takes effect on the next dial.
func (b *ClientBind) SetTarget(ep netip.AddrPort, t Target) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.byEP[ep]; r != nil {
		r.target, r.rt = t, streamTransport(t.Transport)
		return
	}
	b.byEP[ep] = &route{ep: wgnet.Endpoint(ep), target: t, rt: streamTransport(t.Transport)}
	b.publishLocked()
}

// RemoveTarget forgets the route to ep and closes its stream.
func (b *ClientBind) RemoveTarget(ep netip.AddrPort) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.byEP[ep]; r != nil {
		b.stopLocked(r)
		delete(b.byEP, ep)
		b.publishLocked()
	}
}

// SetCarrier sends to ep over UDP (CarrierUDP) or over its stream
// (CarrierStream), dialling the stream if the bind is open. Leaving the
// stream closes it. ep must have a target.
func (b *ClientBind) SetCarrier(ep netip.AddrPort, c Carrier) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.byEP[ep]
	if r == nil {
		return fmt.Errorf("streambind: set carrier of %s: no target", ep)
	}
	switch c {
	case CarrierUDP:
		r.stream.Store(false)
		b.stopLocked(r)
	case CarrierStream:
		r.stream.Store(true)
		b.startLocked(r)
	default:
		return fmt.Errorf("streambind: set carrier of %s: %q is not udp or stream", ep, c)
	}
	return nil
}

// SetProbe, while ep is on the stream, also sends a copy of every packet
// over UDP: if UDP works, the mesh node moves to it and answers over UDP,
// which UDPReceived shows. WireGuard discards the duplicates.
func (b *ClientBind) SetProbe(ep netip.AddrPort, on bool) {
	if r := (*b.routes.Load())[ep]; r != nil {
		r.probe.Store(on)
	}
}

// UDPReceived returns how many packets have arrived from ep over UDP.
func (b *ClientBind) UDPReceived(ep netip.AddrPort) uint64 {
	if r := (*b.routes.Load())[ep]; r != nil {
		return r.udpRx.Load()
	}
	return 0
}

// StreamConnected reports whether ep's stream is connected.
func (b *ClientBind) StreamConnected(ep netip.AddrPort) bool {
	r := (*b.routes.Load())[ep]
	return r != nil && r.cur.Load() != nil
}

// StreamDials returns how many times ep's stream has been dialled.
func (b *ClientBind) StreamDials(ep netip.AddrPort) uint64 {
	if r := (*b.routes.Load())[ep]; r != nil {
		return r.dials.Load()
	}
	return 0
}

// startLocked starts r's stream loop if the bind is open and none runs.
func (b *ClientBind) startLocked(r *route) {
	if b.sess == nil || r.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(b.sess.ctx)
	r.cancel = cancel
	s := b.sess
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		b.streamLoop(ctx, r)
	}()
}

// stopLocked stops r's stream loop; the loop closes the stream.
func (b *ClientBind) stopLocked(r *route) {
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
}

// streamLoop keeps r's stream connected until ctx ends, re-dialling with
// jittered exponential backoff. A stream that lived a while resets the
// backoff; one cut soon after opening does not, so a node that keeps
// refusing frames is not hammered.
func (b *ClientBind) streamLoop(ctx context.Context, r *route) {
	bo := backoff.New(b.cfg.BackoffMin, b.cfg.BackoffMax)
	log := b.logger.With("mesh_url", r.target.URL)
	for ctx.Err() == nil {
		start := time.Now()
		connected, err := b.runStream(ctx, r)
		if ctx.Err() != nil {
			return
		}
		if connected && time.Since(start) > 10*time.Second {
			bo.Reset()
		}
		log.Warn("stream_down", "error", err, "retry_in_ms", bo.Delay().Milliseconds())
		if !bo.Wait(ctx) {
			return
		}
	}
}

// runStream dials r's stream and serves it until it ends.
func (b *ClientBind) runStream(ctx context.Context, r *route) (connected bool, err error) {
	b.mu.Lock()
	t, rt := r.target, r.rt
	b.mu.Unlock()
	r.dials.Add(1)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	rwc, err := dial(dctx, rt, t)
	cancel()
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { rwc.Close() })
	defer stop()
	cs := &clientStream{q: newSendQueue(b.cfg.SendQueueBytes)}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = cs.q.writeLoop(rwc, done)
		rwc.Close()
	}()
	r.cur.Store(cs)
	b.logger.Info("stream_connected", "mesh_url", t.URL)
	err = b.inbox.readLoop(bufio.NewReaderSize(rwc, readBufferSize), r.ep, done)
	r.cur.CompareAndSwap(cs, nil)
	close(done)
	cs.q.close()
	rwc.Close()
	wg.Wait()
	if err == nil {
		err = io.EOF
	}
	return true, err
}

// Open implements conn.Bind: it opens the UDP bind, adds the streams'
// receive function, and dials the stream of every route on CarrierStream.
func (b *ClientBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	fns, actual, err := b.udp.Open(port)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.sess = &clientSession{ctx: ctx, cancel: cancel}
	out := make([]conn.ReceiveFunc, 0, len(fns)+1)
	for _, fn := range fns {
		out = append(out, b.countUDP(fn))
	}
	for _, r := range b.byEP {
		if r.stream.Load() {
			b.startLocked(r)
		}
	}
	return append(out, b.inbox.receiver(ctx.Done())), actual, nil
}

// countUDP wraps a UDP ReceiveFunc to count each route's UDP arrivals.
func (b *ClientBind) countUDP(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(packets, sizes, eps)
		routes := *b.routes.Load()
		if len(routes) == 0 {
			return n, err
		}
		var last *route
		for i := range n {
			e, ok := eps[i].(wgnet.Endpoint)
			if !ok {
				continue
			}
			if last == nil || last.ep != e {
				if last = routes[netip.AddrPort(e)]; last == nil {
					continue
				}
			}
			last.udpRx.Add(1)
		}
		return n, err
	}
}

// Close implements conn.Bind: it closes every stream and the UDP bind and
// waits for the stream goroutines. It is idempotent.
func (b *ClientBind) Close() error {
	b.mu.Lock()
	s := b.sess
	b.sess = nil
	for _, r := range b.byEP {
		r.cancel = nil
	}
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	s.cancel()
	err := b.udp.Close()
	s.wg.Wait()
	return err
}

// SetMark implements conn.Bind.
func (b *ClientBind) SetMark(mark uint32) error { return b.udp.SetMark(mark) }

// Send implements conn.Bind. A route on the stream queues the packets on
// its stream, or drops them while the stream is down (WireGuard retries
// handshakes itself, so nothing piles up for the reconnect); everything
// else goes to the UDP bind.
func (b *ClientBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(wgnet.Endpoint)
	if !ok {
		return b.udp.Send(bufs, ep)
	}
	r := (*b.routes.Load())[netip.AddrPort(e)]
	if r == nil {
		return b.udp.Send(bufs, ep)
	}
	if !r.stream.Load() {
		return b.udp.Send(bufs, ep)
	}
	if cs := r.cur.Load(); cs != nil {
		cs.q.push(bufs)
	}
	if r.probe.Load() {
		_ = b.udp.Send(bufs, ep) // a probe: its failure is the answer
	}
	return nil
}

// ParseEndpoint implements conn.Bind with the UDP bind's endpoints.
func (b *ClientBind) ParseEndpoint(s string) (conn.Endpoint, error) { return b.udp.ParseEndpoint(s) }

// BatchSize implements conn.Bind.
func (b *ClientBind) BatchSize() int { return b.udp.BatchSize() }
