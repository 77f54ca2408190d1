package wgnet

import (
	"fmt"
	"net"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

// TestDialBindReceivesFromEverySocket opens three connected sockets (the
// first is read by the receive goroutine itself, the others by readers)
// and checks that every datagram each peer sends arrives once, with its
// peer's endpoint: when only a secondary socket has traffic (receive is
// blocked on the idle primary), when only the primary has, and when all
// three interleave.
func TestDialBindReceivesFromEverySocket(t *testing.T) {
	b := NewDialBind()
	fns, _, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const peers = 3
	pcs := make([]*net.UDPConn, peers)
	eps := make([]conn.Endpoint, peers)
	from := make([]*net.UDPAddr, peers) // each peer's view of its bind socket
	for i := range pcs {
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		pcs[i] = pc
		if eps[i], err = b.ParseEndpoint(pc.LocalAddr().String()); err != nil {
			t.Fatal(err)
		}
		if err := b.Send([][]byte{[]byte("hello")}, eps[i]); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		_, addr, err := pc.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		from[i] = addr
	}

	type got struct {
		payload string
		ep      conn.Endpoint
	}
	results := make(chan got, 1024)
	errc := make(chan error, 1)
	go func() {
		bufs := make([][]byte, bindBatchSize)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes, reps := make([]int, len(bufs)), make([]conn.Endpoint, len(bufs))
		for {
			n, err := fns[0](bufs, sizes, reps)
			if err != nil {
				errc <- err
				return
			}
			for i := range n {
				results <- got{string(bufs[i][:sizes[i]]), reps[i]}
			}
		}
	}()
	send := func(peer, seq int) {
		t.Helper()
		if _, err := pcs[peer].WriteToUDP(fmt.Appendf(nil, "%d/%d", peer, seq), from[peer]); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want map[string]int) {
		t.Helper()
		for len(want) > 0 {
			var g got
			select {
			case g = <-results:
			case err := <-errc:
				t.Fatalf("receive: %v (still waiting for %v)", err, want)
			}
			peer, ok := want[g.payload]
			if !ok {
				t.Fatalf("received %q, not expected (or twice)", g.payload)
			}
			if g.ep != eps[peer] {
				t.Fatalf("received %q from endpoint %v, want %v", g.payload, g.ep.DstToString(), eps[peer].DstToString())
			}
			delete(want, g.payload)
		}
	}

	// Only the last secondary socket: receive sits in the idle primary's read.
	send(2, 0)
	expect(map[string]int{"2/0": 2})
	// Only the primary.
	send(0, 0)
	expect(map[string]int{"0/0": 0})
	// All three, interleaved, several rounds.
	want := map[string]int{}
	for seq := 1; seq <= 50; seq++ {
		for p := range peers {
			send(p, seq)
			want[fmt.Sprintf("%d/%d", p, seq)] = p
		}
	}
	expect(want)
	select {
	case g := <-results:
		t.Fatalf("extra datagram %q", g.payload)
	default:
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != net.ErrClosed {
		t.Fatalf("receive after close: got %v, want %v", err, net.ErrClosed)
	}
}
