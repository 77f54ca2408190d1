package wgnet

import (
	"context"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/postern/postern/pkg/wgkey"
)

// maxTunnelBuffer is the most a tunnel TCP connection may buffer each way
// (send buffer, receive buffer, data in flight). WireGuard carries every
// packet of data in flight in a 64 KiB buffer of its own whatever the
// packet's size, so this bounds its memory too: 1 MiB in flight at the
// MSS of the default MTU is some 780 packets, 49 MiB of WireGuard
// buffers at worst. At gVisor's former 8 MiB it was 390 MiB, which is
// how a mesh node reached 200 MiB in one download (issue 16).
const maxTunnelBuffer = 1 << 20

// TestTCPBufferCaps checks the stack's configured TCP buffer ranges: the
// maxima that receive-buffer moderation and send-buffer auto-tuning grow
// towards are at most maxTunnelBuffer.
func TestTCPBufferCaps(t *testing.T) {
	n := newTestNode(t)
	var rcv tcpip.TCPReceiveBufferSizeRangeOption
	var snd tcpip.TCPSendBufferSizeRangeOption
	if err := n.stack.TransportProtocolOption(tcp.ProtocolNumber, &rcv); err != nil {
		t.Fatal(err)
	}
	if err := n.stack.TransportProtocolOption(tcp.ProtocolNumber, &snd); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		name              string
		min, def, highest int
	}{{"receive", rcv.Min, rcv.Default, rcv.Max}, {"send", snd.Min, snd.Default, snd.Max}} {
		if r.highest > maxTunnelBuffer || r.def > r.highest || r.min > r.def || r.min <= 0 {
			t.Errorf("%s buffer range %d..%d (default %d): want 0 < min ≤ default ≤ max ≤ %d", r.name, r.min, r.highest, r.def, maxTunnelBuffer)
		}
	}
}

// inFlightLog records, over every segment a stack's endpoints handle, the
// most data a sender had in flight and the most a receiver held unread.
type inFlightLog struct {
	mu                 sync.Mutex
	inFlight, rcvBuf   int
	sndBuf, sndBufUsed int
}

func (l *inFlightLog) probe(s *tcp.TCPEndpointState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight = max(l.inFlight, int(s.Sender.SndNxt-s.Sender.SndUna))
	l.rcvBuf = max(l.rcvBuf, s.RcvBufState.RcvBufUsed)
	l.sndBuf = max(l.sndBuf, s.SndBufState.SndBufSize)
	l.sndBufUsed = max(l.sndBufUsed, s.SndBufState.SndBufUsed)
}

// TestTCPBuffersStayCapped streams 32 MiB through the tunnel to a reader
// that takes it in small reads (receive-buffer moderation grows the
// buffer as the reader keeps up, send-buffer auto-tuning as the window
// opens) and then to one that stops reading for a while, and checks on
// every segment either stack handled that no sender ever had more than
// maxTunnelBuffer in flight or buffered and no receiver held more unread.
func TestTCPBuffersStayCapped(t *testing.T) {
	logs := [2]*inFlightLog{{}, {}}
	var nodes [2]*Node
	for i := range nodes {
		k, err := wgkey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(Config{PrivateKey: k, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"), tcpProbe: logs[i].probe})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	connectTo(t, nodes[0], nodes[1])
	l, err := nodes[1].Listen(81)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const size = 32 << 20
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		// Half read as it comes, in small reads; then a pause of a
		// quarter of the stream's bytes' worth of reads not taken, so
		// both buffers fill to what they may hold; then the rest.
		buf := make([]byte, 4<<10)
		var n int64
		for n < size/2 {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				got <- n
				return
			}
		}
		waitFull(logs[1])
		k, _ := io.CopyBuffer(io.Discard, c, buf)
		got <- n + k
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // only a hang ends here
	defer cancel()
	c, err := nodes[0].DialContext(ctx, "tcp", netip.AddrPortFrom(nodes[1].Addr(), 81).String())
	if err != nil {
		t.Fatal(err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() }) // a stalled stream fails the test instead of hanging it
	defer stop()
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if n := <-got; n != size {
		t.Fatalf("received %d bytes, want %d", n, size)
	}
	for i, l := range logs {
		l.mu.Lock()
		t.Logf("node %d: at most %d bytes in flight, %d unread, send buffer %d (%d used)", i, l.inFlight, l.rcvBuf, l.sndBuf, l.sndBufUsed)
		for _, v := range []int{l.inFlight, l.rcvBuf, l.sndBuf, l.sndBufUsed} {
			if v > maxTunnelBuffer {
				t.Errorf("node %d: a connection buffered %d bytes, over the cap of %d", i, v, maxTunnelBuffer)
			}
		}
		l.mu.Unlock()
	}
	if logs[1].rcvBuf < header.TCPDefaultMSS {
		t.Errorf("the receiver never held data unread (%d bytes): the pause did not fill its buffer, and the test shows nothing", logs[1].rcvBuf)
	}
}

// waitFull returns once the receiver's unread data has stopped growing
// for a few consecutive segments' worth of checks, or after a bound on
// the checks: it only lets the buffers fill before the reader resumes.
func waitFull(l *inFlightLog) {
	last, same := -1, 0
	for range 400 {
		time.Sleep(5 * time.Millisecond)
		l.mu.Lock()
		v := l.rcvBuf
		l.mu.Unlock()
		if v == last {
			same++
			if same >= 20 {
				return
			}
		} else {
			same = 0
		}
		last = v
	}
}
