package wgnet

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"
)

func newTestNode(tb testing.TB) *Node {
	tb.Helper()
	return bindNode(tb, nil, netip.MustParseAddrPort("127.0.0.1:0"))
}

// pair returns two nodes that are peers; a knows b's endpoint, b learns a's.
func pair(tb testing.TB) (a, b *Node) {
	tb.Helper()
	a, b = newTestNode(tb), newTestNode(tb)
	if err := b.AddPeer(Peer{PublicKey: a.PublicKey()}); err != nil {
		tb.Fatal(err)
	}
	ep := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.ListenPort())
	if err := a.AddPeer(Peer{PublicKey: b.PublicKey(), Endpoint: ep, Keepalive: 5 * time.Second}); err != nil {
		tb.Fatal(err)
	}
	return a, b
}

func TestDialListenOverTunnel(t *testing.T) {
	a, b := pair(t)
	l, err := b.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", netip.AddrPortFrom(b.Addr(), 80).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("hello over wireguard")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(msg) {
		t.Fatalf("got %q, want %q", got, msg)
	}
	if c.RemoteAddr().String() != netip.AddrPortFrom(b.Addr(), 80).String() {
		t.Fatalf("remote addr: got %v", c.RemoteAddr())
	}
	var found bool
	for _, p := range a.Peers() {
		if p.PublicKey == b.PublicKey() {
			found = true
			if p.LastHandshake.IsZero() || p.TxBytes == 0 || p.RxBytes == 0 {
				t.Fatalf("stats not filled: %+v", p)
			}
		}
	}
	if !found {
		t.Fatal("peer b not in a's stats")
	}
}

func TestPingAndRemovePeer(t *testing.T) {
	a, b := pair(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rtt, err := a.Ping(ctx, b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if rtt <= 0 {
		t.Fatalf("rtt %v", rtt)
	}
	if got := a.Peers()[0].RTT; got != rtt {
		t.Fatalf("recorded rtt: got %v, want %v", got, rtt)
	}
	if err := b.RemovePeer(a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if len(b.Peers()) != 0 {
		t.Fatal("peer not removed")
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel2()
	if _, err := a.Ping(ctx2, b.PublicKey()); err == nil {
		t.Fatal("ping through a removed peer succeeded")
	}
}

// TestReceivedCounts: the receive counter of a peer grows with what
// arrives from it, and an unknown peer has none.
func TestReceivedCounts(t *testing.T) {
	a, b := pair(t)
	if _, ok := a.Received(a.PublicKey()); ok {
		t.Fatal("a counter for a key that is no peer")
	}
	before, ok := a.Received(b.PublicKey())
	if !ok {
		t.Fatal("no counter for a peer")
	}
	if _, err := a.Ping(t.Context(), b.PublicKey()); err != nil {
		t.Fatal(err)
	}
	// The counter is read at most rxSnapshotAge late.
	for range 100 {
		if after, _ := a.Received(b.PublicKey()); after > before {
			return
		}
		time.Sleep(rxSnapshotAge)
	}
	t.Fatal("the counter did not grow after the peer answered a ping")
}

func TestAddPeerRejectsOwnAndZeroKey(t *testing.T) {
	a := newTestNode(t)
	if err := a.AddPeer(Peer{PublicKey: a.PublicKey()}); err == nil {
		t.Fatal("own key accepted")
	}
	if err := a.AddPeer(Peer{}); err == nil {
		t.Fatal("zero key accepted")
	}
}
