package wgnet

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgkey"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// newNodeWith starts a node with key k and bind (nil for a UDPBind on
// 127.0.0.1:port).
func newNodeWith(tb testing.TB, k wgkey.Private, bind conn.Bind, port uint16) *Node {
	tb.Helper()
	n, err := New(Config{PrivateKey: k, Bind: bind, ListenAddr: netip.AddrPortFrom(loopback, port)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

func genKey(tb testing.TB) wgkey.Private {
	tb.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// connectTo makes client know server at server's UDP port and server know
// client by key only.
func connectTo(tb testing.TB, client, server *Node) {
	tb.Helper()
	if err := server.AddPeer(Peer{PublicKey: client.PublicKey()}); err != nil {
		tb.Fatal(err)
	}
	ep := netip.AddrPortFrom(loopback, server.ListenPort())
	if err := client.AddPeer(Peer{PublicKey: server.PublicKey(), Endpoint: ep}); err != nil {
		tb.Fatal(err)
	}
}

// pingUntil pings peer from n until it answers or the deadline passes.
func pingUntil(tb testing.TB, n *Node, peer wgkey.Public, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err = n.Ping(ctx, peer)
		cancel()
		if err == nil {
			return
		}
	}
	tb.Fatalf("ping %s: got %v, want an answer within %v", peer.Short(), err, within)
}

// echoServer accepts connections on port of n and echoes them.
func echoServer(tb testing.TB, n *Node, port uint16) {
	tb.Helper()
	l, err := n.Listen(port)
	if err != nil {
		tb.Fatal(err)
	}
	testkit.Serve(tb, l, func(c net.Conn) { io.Copy(c, c) })
}

// echoOnce dials n's echo server on to and checks one message comes back.
func echoOnce(tb testing.TB, from *Node, to netip.Addr, port uint16) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := from.DialContext(ctx, "tcp", netip.AddrPortFrom(to, port).String())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("over the tunnel")
	if _, err := c.Write(msg); err != nil {
		tb.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		tb.Fatal(err)
	}
	if string(got) != string(msg) {
		tb.Fatalf("got %q, want %q", got, msg)
	}
}

// udpSocket is one line of /proc/net/udp{,6}.
type udpSocket struct {
	localPort  uint16
	remote     string // hex address
	remotePort uint16
}

func readProcUDP(tb testing.TB) []udpSocket {
	tb.Helper()
	var out []udpSocket
	for _, path := range []string{"/proc/self/net/udp", "/proc/self/net/udp6"} {
		f, err := os.Open(path)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			lp, err1 := parseHexPort(fields[1])
			rp, err2 := parseHexPort(fields[2])
			if err1 != nil || err2 != nil {
				f.Close()
				tb.Fatalf("parse %s line %q", path, sc.Text())
			}
			remote, _, _ := strings.Cut(fields[2], ":")
			out = append(out, udpSocket{localPort: lp, remote: remote, remotePort: rp})
		}
		f.Close()
	}
	return out
}

func parseHexPort(addrPort string) (uint16, error) {
	_, p, ok := strings.Cut(addrPort, ":")
	if !ok {
		return 0, fmt.Errorf("no port in %q", addrPort)
	}
	v, err := strconv.ParseUint(p, 16, 16)
	return uint16(v), err
}

func TestDialBindOpensOnlyConnectedSockets(t *testing.T) {
	mesh := newNodeWith(t, genKey(t), nil, 0)
	bind := NewDialBind()
	connector := newNodeWith(t, genKey(t), bind, 0)
	if got := connector.ListenPort(); got != 0 {
		t.Fatalf("dial bind listen port: got %d, want 0", got)
	}
	if got := bind.localPorts(); len(got) != 0 {
		t.Fatalf("sockets before any peer: got %v, want none", got)
	}
	connectTo(t, connector, mesh)
	echoServer(t, mesh, 80)
	echoServer(t, connector, 81)
	echoOnce(t, connector, mesh.Addr(), 80)
	echoOnce(t, mesh, connector.Addr(), 81)

	ports := bind.localPorts()
	if len(ports) != 1 {
		t.Fatalf("dial bind sockets: got %v, want one", ports)
	}
	var seen int
	for _, s := range readProcUDP(t) {
		if !slices.Contains(ports, s.localPort) {
			continue
		}
		seen++
		if strings.Trim(s.remote, "0") == "" || s.remotePort == 0 {
			t.Errorf("socket on local port %d: got remote %s:%d, want a connected peer", s.localPort, s.remote, s.remotePort)
		}
		if s.remotePort != mesh.ListenPort() {
			t.Errorf("socket on local port %d: got remote port %d, want %d", s.localPort, s.remotePort, mesh.ListenPort())
		}
	}
	if seen != len(ports) {
		t.Fatalf("sockets of the dial bind in /proc: got %d, want %d", seen, len(ports))
	}
}

func TestDialBindCloseUnblocksReceive(t *testing.T) {
	b := NewDialBind()
	fns, port, err := b.Open(1234)
	if err != nil {
		t.Fatal(err)
	}
	if port != 0 || len(fns) != 1 {
		t.Fatalf("open: got port %d and %d receivers, want 0 and 1", port, len(fns))
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ep, err := b.ParseEndpoint(pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Send([][]byte{[]byte("hi")}, ep); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		bufs := [][]byte{make([]byte, 1500)}
		_, err := fns[0](bufs, make([]int, 1), make([]conn.Endpoint, 1))
		errc <- err
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != net.ErrClosed {
			t.Fatalf("receive after close: got %v, want %v", err, net.ErrClosed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("receive still blocked after close")
	}
	if err := b.Send([][]byte{[]byte("hi")}, ep); err != net.ErrClosed {
		t.Fatalf("send after close: got %v, want %v", err, net.ErrClosed)
	}
	if _, _, err := b.Open(0); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	b.Close()
}

func TestPeerRestartIsReachableAgain(t *testing.T) {
	tests := []struct {
		name string
		bind func() conn.Bind
	}{
		{"udp bind", func() conn.Bind { return nil }},
		{"dial bind", func() conn.Bind { return NewDialBind() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := newNodeWith(t, genKey(t), tt.bind(), 0)
			serverKey := genKey(t)
			server := newNodeWith(t, serverKey, nil, 0)
			port := server.ListenPort()
			connectTo(t, client, server)
			pingUntil(t, client, server.PublicKey(), 10*time.Second)

			server.Close()
			// While the server is down, the client's datagrams draw ICMP
			// errors; its bind must survive them.
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			client.Ping(ctx, server.PublicKey())
			cancel()

			server2 := newNodeWith(t, serverKey, nil, port)
			if err := client.RemovePeer(server2.PublicKey()); err != nil {
				t.Fatal(err)
			}
			connectTo(t, client, server2)
			pingUntil(t, client, server2.PublicKey(), 10*time.Second)
			echoServer(t, server2, 80)
			echoOnce(t, client, server2.Addr(), 80)
		})
	}
}

func TestConcurrentStreams(t *testing.T) {
	const streams, size = 8, 4 << 20
	a, b := pair(t)
	l, err := b.Listen(90)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h := sha256.New()
				io.Copy(h, c)
				c.Write(h.Sum(nil))
			}()
		}
	}()
	// The streams get the test's own time (32 MiB through userspace
	// WireGuard took over 30 s on a loaded 2-core machine), ending a
	// minute before the test binary's deadline so that a hang is reported
	// as timed out, with the stream that hung.
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Minute))
		defer cancel()
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sendAndCheck(ctx, a, b.Addr(), 90, size, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// sendAndCheck sends size random bytes to port on to and compares the
// SHA-256 the server returns with its own, within ctx's deadline.
func sendAndCheck(ctx context.Context, from *Node, to netip.Addr, port uint16, size, id int) error {
	c, err := from.DialContext(ctx, "tcp", netip.AddrPortFrom(to, port).String())
	if err != nil {
		return fmt.Errorf("stream %d: %w", id, err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for sent := 0; sent < size; sent += len(buf) {
		rand.Read(buf)
		h.Write(buf)
		if _, err := c.Write(buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("stream %d: timed out after %d of %d bytes: %w", id, sent, size, err)
			}
			return fmt.Errorf("stream %d: write: %w", id, err)
		}
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		return fmt.Errorf("stream %d: close write: %w", id, err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("stream %d: read digest: %w", id, err)
	}
	if want := h.Sum(nil); string(got) != string(want) {
		return fmt.Errorf("stream %d: got digest %x, want %x", id, got, want)
	}
	return nil
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	leaks := testkit.Goroutines()
	func() {
		mesh := newNodeWith(t, genKey(t), nil, 0)
		connector := newNodeWith(t, genKey(t), NewDialBind(), 0)
		connectTo(t, connector, mesh)
		echoServer(t, mesh, 80)
		echoOnce(t, connector, mesh.Addr(), 80)
		pingUntil(t, mesh, connector.PublicKey(), 10*time.Second)
		for _, n := range []*Node{mesh, connector} {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			if err := n.Close(); err != nil {
				t.Fatalf("second close: got %v, want nil", err)
			}
		}
	}()
	leaks(t)
}
