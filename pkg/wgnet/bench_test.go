package wgnet

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Benchmarks for the tunnel alone: two Nodes on 127.0.0.1 with real
// WireGuard handshakes. Run with
//
//	go test -run '^$' -bench . -benchtime 3s ./pkg/wgnet

// benchConn returns a TCP connection from a to a server on b that the
// caller's serve function handles.
func benchConn(tb testing.TB, a, b *Node, port uint16, serve func(net.Conn)) func() net.Conn {
	tb.Helper()
	l, err := b.Listen(port)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return func() net.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := a.DialContext(ctx, "tcp", netip.AddrPortFrom(b.Addr(), port).String())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		return c
	}
}

func BenchmarkTCPBulk(b *testing.B) {
	na, nb := pair(b)
	done := make(chan int64, 1)
	dial := benchConn(b, na, nb, 9000, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		done <- n
	})
	c := dial()
	buf := make([]byte, 128<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	got := <-done
	el := time.Since(start)
	b.StopTimer()
	if want := int64(b.N) * int64(len(buf)); got != want {
		b.Fatalf("received %d bytes, want %d", got, want)
	}
	b.ReportMetric(float64(got)/(1<<20)/el.Seconds(), "MiB/s")
}

func echo64(c net.Conn) {
	buf := make([]byte, 64)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

func roundTrip(tb testing.TB, c net.Conn, buf []byte) {
	if _, err := c.Write(buf); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkTCPRoundTrip(b *testing.B) {
	na, nb := pair(b)
	dial := benchConn(b, na, nb, 9001, echo64)
	c := dial()
	buf := make([]byte, 64)
	roundTrip(b, c, buf)
	b.ResetTimer()
	for range b.N {
		roundTrip(b, c, buf)
	}
}

func BenchmarkTCPRoundTripParallel(b *testing.B) {
	na, nb := pair(b)
	dial := benchConn(b, na, nb, 9002, echo64)
	// 16 goroutines per CPU: 32 concurrent connections on two cores, the
	// product's concurrency target.
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := dial()
		buf := make([]byte, 64)
		for pb.Next() {
			roundTrip(b, c, buf)
		}
	})
}
