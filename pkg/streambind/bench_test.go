package streambind

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Benchmarks of the tunnel over each carrier, the same shapes as pkg/wgnet's
// BenchmarkTCPBulk and BenchmarkTCPRoundTrip, with the connector's binds on
// both sides (ClientBind over a DialBind; Server over a UDP bind behind an
// HTTPS server). Both carriers run in the same invocation so their ratio
// is measured on the same machine state:
//
//	go test -run '^$' -bench Carrier -benchtime 3s ./pkg/streambind

var carriers = []Carrier{CarrierUDP, CarrierStream}

// benchFixture returns a connected fixture on carrier c.
func benchFixture(b *testing.B, c Carrier) *fixture {
	b.Helper()
	f := newFixture(b, nil)
	if c == CarrierStream {
		f.useStream(b)
	}
	f.ping(b, 10*time.Second)
	return f
}

// benchConn serves port on the mesh with serve and returns a dialler from
// the connector.
func benchConn(tb testing.TB, f *fixture, port uint16, serve func(net.Conn)) func() net.Conn {
	tb.Helper()
	l, err := f.mesh.Listen(port)
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
		c, err := f.conn.DialContext(ctx, "tcp", netip.AddrPortFrom(f.mesh.Addr(), port).String())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		return c
	}
}

func BenchmarkCarrierBulk(b *testing.B) {
	for _, c := range carriers {
		b.Run(string(c), func(b *testing.B) {
			f := benchFixture(b, c)
			done := make(chan int64, 1)
			dial := benchConn(b, f, 9000, func(c net.Conn) {
				n, _ := io.Copy(io.Discard, c)
				done <- n
			})
			conn := dial()
			buf := make([]byte, 128<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			conn.Close()
			got := <-done
			el := time.Since(start)
			b.StopTimer()
			if want := int64(b.N) * int64(len(buf)); got != want {
				b.Fatalf("received %d bytes, want %d", got, want)
			}
			b.ReportMetric(float64(got)/(1<<20)/el.Seconds(), "MiB/s")
		})
	}
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

func BenchmarkCarrierRoundTrip(b *testing.B) {
	for _, c := range carriers {
		b.Run(string(c), func(b *testing.B) {
			f := benchFixture(b, c)
			conn := benchConn(b, f, 9001, echo64)()
			buf := make([]byte, 64)
			roundTrip(b, conn, buf)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				roundTrip(b, conn, buf)
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/rt")
		})
	}
}

// BenchmarkCarrierRoundTripParallel runs 32 connections at once on two
// cores, the product's concurrency target (c=32).
func BenchmarkCarrierRoundTripParallel(b *testing.B) {
	for _, c := range carriers {
		b.Run(string(c), func(b *testing.B) {
			f := benchFixture(b, c)
			dial := benchConn(b, f, 9002, echo64)
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				conn := dial()
				buf := make([]byte, 64)
				for pb.Next() {
					roundTrip(b, conn, buf)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rt/s")
		})
	}
}
