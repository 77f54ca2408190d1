package streambind

import (
	"testing"
	"time"

	"github.com/postern/postern/pkg/wgnet/wgbench"
)

// Benchmarks of the tunnel over each carrier, the same bodies (wgbench) as
// pkg/wgnet's BenchmarkTCPBulk and BenchmarkTCPRoundTrip, with the connector's binds on
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

func BenchmarkCarrierBulk(b *testing.B) {
	for _, c := range carriers {
		b.Run(string(c), func(b *testing.B) {
			f := benchFixture(b, c)
			wgbench.Bulk(b, f.conn, f.mesh, 9000)
		})
	}
}

func BenchmarkCarrierRoundTrip(b *testing.B) {
	for _, c := range carriers {
		b.Run(string(c), func(b *testing.B) {
			f := benchFixture(b, c)
			wgbench.RoundTrip(b, f.conn, f.mesh, 9001)
		})
	}
}

// BenchmarkCarrierRoundTripParallel runs 32 connections at once on two
// cores, the product's concurrency target (c=32).
func BenchmarkCarrierRoundTripParallel(b *testing.B) {
	for _, c := range carriers {
		b.Run(string(c), func(b *testing.B) {
			f := benchFixture(b, c)
			wgbench.RoundTripParallel(b, f.conn, f.mesh, 9002)
		})
	}
}
