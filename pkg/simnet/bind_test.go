package simnet

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// arrival is one received packet and when it came.
type arrival struct {
	data []byte
	at   time.Time
}

// bindPair opens a sender Bind in region from (decorated) and a plain
// receiving StdNetBind registered in region to; it returns the sender, the
// endpoint of the receiver and a channel of arrivals.
func bindPair(tb testing.TB, n *Network, from, to string) (conn.Bind, conn.Endpoint, netip.AddrPort, <-chan arrival) {
	tb.Helper()
	sender := n.Bind(conn.NewStdNetBind(), from)
	if _, _, err := sender.Open(0); err != nil {
		tb.Fatalf("open sender: %v", err)
	}
	recv := conn.NewStdNetBind()
	fns, port, err := recv.Open(0)
	if err != nil {
		tb.Fatalf("open receiver: %v", err)
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	if to != "" {
		if err := n.Register(dst, to); err != nil {
			tb.Fatal(err)
		}
	}
	ep, err := sender.ParseEndpoint(dst.String())
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan arrival, 1024)
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			size := recv.BatchSize()
			bufs := make([][]byte, size)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			sizes := make([]int, size)
			eps := make([]conn.Endpoint, size)
			for {
				k, err := fn(bufs, sizes, eps)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				now := time.Now()
				for i := range k {
					select {
					case ch <- arrival{data: bytes.Clone(bufs[i][:sizes[i]]), at: now}:
					default:
					}
				}
			}
		}()
	}
	tb.Cleanup(func() {
		sender.Close()
		recv.Close()
		wg.Wait()
	})
	return sender, ep, dst, ch
}

// expectNone fails if anything arrives within d (a bounded wait for an
// absence, not a synchronisation sleep).
func expectNone(tb testing.TB, ch <-chan arrival, d time.Duration) {
	tb.Helper()
	select {
	case a := <-ch:
		tb.Errorf("got packet %q, want none", a.data)
	case <-time.After(d):
	}
}

func receive(tb testing.TB, ch <-chan arrival) arrival {
	tb.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(5 * time.Second):
		tb.Fatalf("no packet within 5s")
		return arrival{}
	}
}

func TestBindDelay(t *testing.T) {
	const rtt = 100 * time.Millisecond
	n := NewNetwork(tinyMatrix(t, "100"), 1)
	sender, ep, _, ch := bindPair(t, n, "near", "far")
	// Send returns at once, and the packets arrive after half the RTT
	// (applied once, not twice); a busy machine delays some rounds, so
	// the upper bounds are asked of the best of a few.
	round := func() (send, arrival time.Duration, err error) {
		payload := [][]byte{[]byte("one"), []byte("two")}
		start := time.Now()
		if err := sender.Send(payload, ep); err != nil {
			return 0, 0, err
		}
		send = time.Since(start)
		payload[0][0] = 'X' // Send's buffers are the caller's again: the copy must be sent
		for _, want := range []string{"one", "two"} {
			a := receive(t, ch)
			if string(a.data) != want {
				t.Errorf("payload: got %q, want %q", a.data, want)
			}
			arrival = a.at.Sub(start)
		}
		return send, arrival, nil
	}
	inBand(t, "Send (must not wait for the delay)", 0, rtt/4, func() (time.Duration, error) {
		send, _, err := round()
		return send, err
	})
	inBand(t, "arrival of both packets", rtt/2, rtt/2+200*time.Millisecond, func() (time.Duration, error) {
		_, arrival, err := round()
		return arrival, err
	})
}

func TestBindZeroDelay(t *testing.T) {
	tests := []struct {
		name   string
		region string // of the receiver; "" leaves it unregistered
	}{
		{"same region without intra rtt", "near"},
		{"unregistered destination", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NewNetwork(tinyMatrix(t, "10000"), 1) // 10s: any delay would time out
			sender, ep, _, ch := bindPair(t, n, "near", tt.region)
			if err := sender.Send([][]byte{[]byte("now")}, ep); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if a := receive(t, ch); string(a.data) != "now" {
				t.Errorf("payload: got %q, want %q", a.data, "now")
			}
		})
	}
}

func TestBindPartitionAndIsolate(t *testing.T) {
	n := NewNetwork(tinyMatrix(t, "2"), 1)
	sender, ep, dst, ch := bindPair(t, n, "near", "far")
	send := func(s string) {
		t.Helper()
		if err := sender.Send([][]byte{[]byte(s)}, ep); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	n.Partition([]string{"far"}, []string{"near"})
	send("cut")
	expectNone(t, ch, 100*time.Millisecond)
	n.Heal()
	send("healed")
	if a := receive(t, ch); string(a.data) != "healed" {
		t.Errorf("after Heal: got %q, want %q", a.data, "healed")
	}
	n.Isolate(dst)
	send("isolated")
	expectNone(t, ch, 100*time.Millisecond)
	n.Heal()
	send("back")
	if a := receive(t, ch); string(a.data) != "back" {
		t.Errorf("after Heal: got %q, want %q", a.data, "back")
	}
}

func TestBindReopen(t *testing.T) {
	n := NewNetwork(tinyMatrix(t, "20"), 1)
	sender, ep, _, ch := bindPair(t, n, "near", "far")
	if err := sender.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sender.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := sender.Send([][]byte{[]byte("closed")}, ep); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: got %v, want net.ErrClosed", err)
	}
	if _, _, err := sender.Open(0); err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := sender.Send([][]byte{[]byte("again")}, ep); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if a := receive(t, ch); string(a.data) != "again" {
		t.Errorf("after reopen: got %q, want %q", a.data, "again")
	}
}

func BenchmarkBindSend(b *testing.B) {
	for _, bc := range []struct {
		name, rtt string
	}{
		{"zero_delay", "0"},
		{"delayed_1ms", "2"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := NewNetwork(tinyMatrix(b, bc.rtt), 1)
			sender, ep, _, _ := bindPair(b, n, "near", "far")
			pkt := [][]byte{make([]byte, 1280)}
			b.SetBytes(1280)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := sender.Send(pkt, ep); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
