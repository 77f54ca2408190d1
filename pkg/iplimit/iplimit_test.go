package iplimit

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestLimiterPerClient(t *testing.T) {
	l := NewLimiter(1, 3, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if ok, _ := l.Allow(a, t0); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.Allow(a, t0)
	if ok || wait < time.Second {
		t.Fatalf("past the burst: got ok=%v wait=%v, want refused with a wait of at least 1s", ok, wait)
	}
	if ok, _ := l.Allow(b, t0); !ok {
		t.Fatal("another address refused while the first is limited")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("::ffff:192.0.2.1"), t0); ok {
		t.Fatal("the IPv4-mapped spelling of a limited address got a fresh bucket")
	}
	if ok, _ := l.Allow(a, t0.Add(time.Second)); !ok {
		t.Fatal("a token did not come back after a second")
	}
	// One IPv6 /64 is one client; the next /64 is another.
	v6 := netip.MustParseAddr("2001:db8:1:2::1")
	for range 3 {
		l.Allow(v6, t0)
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:1:2:ffff::9"), t0); ok {
		t.Fatal("another address of the same /64 got a fresh bucket")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:1:3::1"), t0); !ok {
		t.Fatal("the next /64 was refused")
	}
	if ok, _ := NewLimiter(rate.Inf, 0, 0).Allow(a, t0); !ok {
		t.Fatal("rate.Inf refused a request")
	}
}

// TestLimiterBoundedAgainstSpraying sprays many addresses at a small
// limiter while one busy address stays limited: the table never grows past
// its bound and the busy address never gets a fresh burst back.
func TestLimiterBoundedAgainstSpraying(t *testing.T) {
	const max = 64
	l := NewLimiter(0.1, 2, max)
	hot := netip.MustParseAddr("198.51.100.7")
	l.Allow(hot, t0)
	l.Allow(hot, t0)
	now := t0
	for i := range 20000 {
		now = now.Add(time.Millisecond)
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Allow(a, now)
		if i%7 == 0 {
			if ok, _ := l.Allow(hot, now); ok && now.Sub(t0) < 10*time.Second {
				t.Fatalf("after %d sprayed addresses the busy address got a token back", i)
			}
		}
		if n := l.Len(); n > max {
			t.Fatalf("table grew to %d entries, bound %d", n, max)
		}
	}
}

func TestConns(t *testing.T) {
	c := NewConns()
	a, b := Key(netip.MustParseAddr("192.0.2.1")), Key(netip.MustParseAddr("192.0.2.2"))
	for i := range 3 {
		if !c.Acquire(a, 3) {
			t.Fatalf("connection %d refused", i)
		}
	}
	if c.Acquire(a, 3) {
		t.Fatal("fourth connection accepted past a cap of 3")
	}
	if !c.Acquire(b, 3) {
		t.Fatal("another address refused")
	}
	for range 3 {
		c.Release(a)
	}
	c.Release(b)
	if Exact(netip.MustParseAddr("fd70:6f73::1")) == Exact(netip.MustParseAddr("fd70:6f73::2")) {
		t.Fatal("Exact put two tunnel addresses of one /64 together")
	}
	if conns, clients := c.Open(); conns != 0 || clients != 0 {
		t.Fatalf("got %d connections of %d clients after all closed, want none", conns, clients)
	}
}

// TestListenerCapsPerClient dials a capped listener on loopback from two
// source addresses.
func TestListenerCapsPerClient(t *testing.T) {
	for _, grace := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("grace ", grace), func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := Listen(raw, ListenConfig{PerClient: func(netip.Addr) int { return 2 }, ExcessGrace: grace})
			defer l.Close()
			accepted := make(chan net.Conn, 8)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						close(accepted)
						return
					}
					accepted <- c
				}
			}()
			dial := func(from string) net.Conn {
				t.Helper()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
				c, err := d.DialContext(t.Context(), "tcp", raw.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			var server []net.Conn
			for range 2 {
				dial("127.0.0.1")
				server = append(server, <-accepted)
			}
			third := dial("127.0.0.1")
			if grace == 0 {
				third.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := third.Read(make([]byte, 1)); err != io.EOF {
					t.Fatalf("third connection: got %v, want it closed (EOF)", err)
				}
			} else {
				sc := <-accepted
				if !Excess(ConnContext(context.Background(), sc)) {
					t.Fatal("the third connection was not marked excess")
				}
				if Excess(ConnContext(context.Background(), server[0])) {
					t.Fatal("a connection within the cap was marked excess")
				}
				sc.Close()
			}
			dial("127.0.0.2")
			if c := <-accepted; Excess(ConnContext(context.Background(), c)) {
				t.Fatal("a connection from another address was marked excess")
			}
			if conns, clients := l.Conns().Open(); conns != 3 || clients != 2 {
				t.Fatalf("got %d connections of %d clients, want 3 of 2", conns, clients)
			}
			server[0].Close()
			server[0].Close() // idempotent
			if conns, _ := l.Conns().Open(); conns != 2 {
				t.Fatalf("after a close got %d connections, want 2", conns)
			}
		})
	}
}
