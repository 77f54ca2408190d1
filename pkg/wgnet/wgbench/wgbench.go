// Package wgbench holds the bodies of the tunnel benchmarks, so that the
// tunnel alone (pkg/wgnet: two Nodes over UDP on loopback) and the tunnel
// over each carrier (pkg/streambind: UDP, or WireGuard in an HTTPS stream)
// are measured by the same code and their figures compare: bulk transfer
// (MiB/s), one connection's round trip (µs/rt) and 32 connections' round
// trips at once on two cores (rt/s), with 64-byte messages. It is for
// benchmarks only; nothing in a daemon imports it.
package wgbench

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
	"github.com/postern/postern/pkg/wgnet"
)

// Bulk writes 128 KiB blocks from a to a server on b that discards them,
// checks every byte arrived and reports MiB/s. port is the server's port
// on b.
func Bulk(bb *testing.B, a, b *wgnet.Node, port uint16) {
	done := make(chan int64, 1)
	dial := Conn(bb, a, b, port, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		done <- n
	})
	c := dial()
	buf := make([]byte, 128<<10)
	bb.SetBytes(int64(len(buf)))
	bb.ResetTimer()
	start := time.Now()
	for range bb.N {
		if _, err := c.Write(buf); err != nil {
			bb.Fatal(err)
		}
	}
	c.Close()
	got := <-done
	el := time.Since(start)
	bb.StopTimer()
	if want := int64(bb.N) * int64(len(buf)); got != want {
		bb.Fatalf("received %d bytes, want %d", got, want)
	}
	bb.ReportMetric(float64(got)/(1<<20)/el.Seconds(), "MiB/s")
}

// RoundTrip sends 64 bytes from a to an echo server on b and reads them
// back, one connection, and reports µs/rt.
func RoundTrip(bb *testing.B, a, b *wgnet.Node, port uint16) {
	c := Conn(bb, a, b, port, Echo64)()
	buf := make([]byte, 64)
	roundTrip(bb, c, buf)
	bb.ResetTimer()
	start := time.Now()
	for range bb.N {
		roundTrip(bb, c, buf)
	}
	bb.ReportMetric(float64(time.Since(start).Microseconds())/float64(bb.N), "µs/rt")
}

// RoundTripParallel is RoundTrip on 16 connections per CPU at once: 32 on
// two cores, the product's concurrency target. It reports rt/s.
func RoundTripParallel(bb *testing.B, a, b *wgnet.Node, port uint16) {
	dial := Conn(bb, a, b, port, Echo64)
	bb.SetParallelism(16)
	bb.ResetTimer()
	start := time.Now()
	bb.RunParallel(func(pb *testing.PB) {
		c := dial()
		buf := make([]byte, 64)
		for pb.Next() {
			roundTrip(bb, c, buf)
		}
	})
	bb.ReportMetric(float64(bb.N)/time.Since(start).Seconds(), "rt/s")
}

// Conn serves port on b with serve (testkit.Serve) until the benchmark
// ends, and returns a dialler of that port from a.
func Conn(tb testing.TB, a, b *wgnet.Node, port uint16, serve func(net.Conn)) func() net.Conn {
	tb.Helper()
	l, err := b.Listen(port)
	if err != nil {
		tb.Fatal(err)
	}
	testkit.Serve(tb, l, serve)
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

// Echo64 echoes 64-byte messages until the connection ends.
func Echo64(c net.Conn) {
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
