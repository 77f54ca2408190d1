package wgnet

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/wgkey"
)

// TestRunLength checks how writeSegmented groups datagrams: a run is
// equal-sized datagrams and at most one shorter one at its end, within
// the kernel's 64 segments and one IP datagram of payload.
func TestRunLength(t *testing.T) {
	sized := func(sizes ...int) [][]byte {
		var b [][]byte
		for _, s := range sizes {
			b = append(b, make([]byte, s))
		}
		return b
	}
	repeat := func(size, n int) []int {
		var s []int
		for range n {
			s = append(s, size)
		}
		return s
	}
	for _, c := range []struct {
		name string
		bufs [][]byte
		want int
	}{
		{"one", sized(100), 1},
		{"equal", sized(100, 100, 100), 3},
		{"shorter last", sized(100, 100, 40, 100), 3},
		{"longer breaks", sized(100, 120, 100), 1},
		{"shorter first", sized(40, 100), 1},
		{"empty first", sized(0, 100), 1},
		{"empty inside", sized(100, 0, 100), 1},
		{"64 segments", sized(repeat(100, 70)...), 64},
		{"byte limit", sized(repeat(1400, 64)...), maxGSOBytes / 1400},
		{"byte limit exactly", sized(repeat(65507/7, 8)...), 7},
	} {
		if got := runLength(c.bufs); got != c.want {
			t.Errorf("%s: run of %d, want %d", c.name, got, c.want)
		}
	}
}

// countingConn counts a batchConn's readings and datagrams, and can
// refuse segmented sends as a kernel without GSO does.
type countingConn struct {
	batchConn
	refuseSegmented bool
	readings        int
	segmented       int
}

func (c *countingConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	n, err := c.batchConn.ReadBatch(ms, flags)
	c.readings += n
	return n, err
}

func (c *countingConn) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	for _, m := range ms {
		if len(m.OOB) > 0 {
			if c.refuseSegmented {
				return 0, syscall.EIO
			}
			c.segmented++
		}
	}
	return c.batchConn.WriteBatch(ms, flags)
}

// udpPair returns a sending and a receiving loopback socket.
func udpPair(t *testing.T) (tx, rx *net.UDPConn) {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	tx, err = net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	setSocketBuffers(rx)
	return tx, rx
}

// datagrams returns n datagrams of size bytes (the last one shorter),
// each filled with its index.
func datagrams(n, size int) [][]byte {
	var out [][]byte
	for i := range n {
		s := size
		if i == n-1 {
			s = size / 3
		}
		out = append(out, bytes.Repeat([]byte{byte(i)}, s))
	}
	return out
}

// receiveAll reads want datagrams through recv and checks them against
// sent, in order.
func receiveAll(t *testing.T, recv conn.ReceiveFunc, sent [][]byte) {
	t.Helper()
	packets := make([][]byte, bindBatchSize)
	for i := range packets {
		packets[i] = make([]byte, maxDatagram)
	}
	sizes := make([]int, len(packets))
	eps := make([]conn.Endpoint, len(packets))
	got := 0
	for got < len(sent) {
		n, err := recv(packets[:7], sizes, eps) // a short batch: readings are cut across calls
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !bytes.Equal(packets[i][:sizes[i]], sent[got]) {
				t.Fatalf("datagram %d: got %d bytes of %d, want %d of %d", got, sizes[i], packets[i][0], len(sent[got]), sent[got][0])
			}
			if _, ok := eps[i].(Endpoint); !ok {
				t.Fatalf("datagram %d: endpoint %T", got, eps[i])
			}
			got++
		}
	}
}

// TestSegmentedSendCoalescedRead sends 100 datagrams of 1,000 bytes (a run of 64 and
// one of 36, the last shorter) with UDP_SEGMENT and reads them with UDP_GRO: every
// datagram arrives intact and in order, cut from far fewer readings, and
// handed over in short batches. Where the kernel lacks the options the
// test says so and is skipped.
func TestSegmentedSendCoalescedRead(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("UDP segmentation offload is Linux's")
	}
	tx, rx := udpPair(t)
	txOff, rxOff := newOffload(tx, false, true), newOffload(rx, false, true)
	if !txOff.gso.Load() || !rxOff.gro {
		t.Skipf("kernel offers GSO %t, GRO %t", txOff.gso.Load(), rxOff.gro)
	}
	txc := &countingConn{batchConn: newBatchConn(tx, true)}
	rxc := &countingConn{batchConn: newBatchConn(rx, true)}
	sent := datagrams(100, 1000)
	if err := txOff.send(txc, sent, nil); err != nil {
		t.Fatal(err)
	}
	if txc.segmented != 2 || !txOff.gso.Load() {
		t.Fatalf("%d segmented messages (gso still on: %t), want 2 (64 + 36 datagrams)", txc.segmented, txOff.gso.Load())
	}
	receiveAll(t, groReceiver(rxc), sent)
	if rxc.readings >= len(sent)/2 {
		t.Fatalf("%d readings for %d datagrams: the kernel did not coalesce", rxc.readings, len(sent))
	}
	t.Logf("100 datagrams in %d segmented sends and %d readings", txc.segmented, rxc.readings)
}

// TestSegmentedSendRefusedFallsBack plays a kernel that refuses the first
// segmented send (EIO, as without checksum offload): the batch goes out
// unsegmented, segmentation stays off, and every datagram arrives.
func TestSegmentedSendRefusedFallsBack(t *testing.T) {
	tx, rx := udpPair(t)
	off := &offload{}
	off.gso.Store(true)
	txc := &countingConn{batchConn: newBatchConn(tx, true), refuseSegmented: true}
	sent := datagrams(20, 1000)
	if err := off.send(txc, sent, nil); err != nil {
		t.Fatal(err)
	}
	if off.gso.Load() {
		t.Fatal("segmentation still on after the kernel refused it")
	}
	if err := off.send(txc, sent[:2], nil); err != nil {
		t.Fatal(err)
	}
	b := &UDPBind{}
	receiveAll(t, b.receiver(newBatchConn(rx, true)), append(sent, sent[:2]...))
}

// TestOffloadOnOrOff streams 8 MiB through the tunnel each way in turn
// (TestEchoBothWaysDialBind runs both ways at once) between two nodes whose binds use segmentation offload
// where the kernel has it (the UDP bind on the server's side, the dial
// bind a connector uses on the client's), and between two that have it
// turned off, and checks every byte, and that offload stayed as the
// kernel offers it.
func TestOffloadOnOrOff(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(map[bool]string{false: "offload", true: "without"}[off], func(t *testing.T) {
			var udp *UDPBind
			var dial *DialBind
			if udp, dial = NewUDPBind(netip.MustParseAddr("127.0.0.1")), NewDialBind(); off {
				udp, dial = udp.WithoutOffload(), dial.WithoutOffload()
			}
			server := bindNode(t, udp, netip.MustParseAddrPort("127.0.0.1:0"))
			client := bindNode(t, dial, netip.AddrPort{})
			if err := server.AddPeer(Peer{PublicKey: client.PublicKey()}); err != nil {
				t.Fatal(err)
			}
			ep := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), server.ListenPort())
			if err := client.AddPeer(Peer{PublicKey: server.PublicKey(), Endpoint: ep, Keepalive: 5 * time.Second}); err != nil {
				t.Fatal(err)
			}
			const size = 8 << 20
			payload := make([]byte, size)
			for i := range payload {
				payload[i] = byte(i*31 + i>>10)
			}
			oneWay(t, server, client, 83, payload)
			oneWay(t, client, server, 84, payload)
			// What this kernel offers, on a fresh socket; off, nothing.
			var wantGSO, wantGRO bool
			if !off {
				probe, _ := udpPair(t)
				wantGSO, wantGRO = probeOffload(probe, true)
			}
			udp.mu.Lock()
			offs := []*offload{udp.off}
			udp.mu.Unlock()
			dial.mu.Lock()
			dial.open.mu.Lock()
			for _, dc := range dial.open.conns {
				offs = append(offs, dc.off)
			}
			dial.open.mu.Unlock()
			dial.mu.Unlock()
			for i, o := range offs {
				// The dial bind (i > 0) reads one datagram per message.
				if o.gso.Load() != wantGSO || o.gro != (wantGRO && i == 0) {
					t.Errorf("bind %d after the stream: GSO %t GRO %t, want %t and %t", i, o.gso.Load(), o.gro, wantGSO, wantGRO && i == 0)
				}
			}
			if len(offs) != 2 {
				t.Errorf("%d sockets, want the UDP bind's and one of the dial bind's", len(offs))
			}
		})
	}
}

// oneWay sends payload from one node to the other over a tunnel TCP
// connection to port on to, and checks that every byte arrived.
func oneWay(t *testing.T, from, to *Node, port uint16, payload []byte) {
	t.Helper()
	l, err := to.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sendOver(t, from, to, l, port, payload)
}

// sendOver sends payload from one node to l, to's listener on port, and
// checks that every byte arrived.
func sendOver(t *testing.T, from, to *Node, l net.Listener, port uint16, payload []byte) {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c)
		got <- data
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // only a hang ends here
	defer cancel()
	c, err := from.DialContext(ctx, "tcp", netip.AddrPortFrom(to.Addr(), port).String())
	if err != nil {
		t.Fatal(err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() }) // a stalled stream fails the test instead of hanging it
	defer stop()
	if _, err := c.Write(payload); err != nil {
		for name, nd := range map[string]*Node{"from": from, "to": to} {
			t.Logf("%s: %s; link drops %d; peers %+v", name, tcpStats(nd), nd.link.drops.Load(), nd.Peers())
		}
		t.Fatalf("write: %v", err)
	}
	c.Close()
	if data := <-got; !bytes.Equal(data, payload) {
		t.Fatalf("port %d: received %d bytes of %d, or other bytes", port, len(data), len(payload))
	}
}

// bindNode starts a node on bind.
func bindNode(t testing.TB, bind conn.Bind, listen netip.AddrPort) *Node {
	t.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{PrivateKey: k, Bind: bind, ListenAddr: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// pairWithoutOffload is pair with UDP binds that do not use segmentation
// offload.
func pairWithoutOffload(tb testing.TB) (a, b *Node) {
	tb.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	a = bindNode(tb, NewUDPBind(lo).WithoutOffload(), netip.AddrPortFrom(lo, 0))
	b = bindNode(tb, NewUDPBind(lo).WithoutOffload(), netip.AddrPortFrom(lo, 0))
	if err := b.AddPeer(Peer{PublicKey: a.PublicKey()}); err != nil {
		tb.Fatal(err)
	}
	ep := netip.AddrPortFrom(lo, b.ListenPort())
	if err := a.AddPeer(Peer{PublicKey: b.PublicKey(), Endpoint: ep, Keepalive: 5 * time.Second}); err != nil {
		tb.Fatal(err)
	}
	return a, b
}
