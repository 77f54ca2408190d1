package wgnet_test

import (
	"testing"

	"github.com/postern/postern/pkg/wgnet"
	"github.com/postern/postern/pkg/wgnet/wgbench"
)

// Benchmarks for the tunnel alone: two Nodes on 127.0.0.1 with real
// WireGuard handshakes; pkg/streambind runs the same bodies (wgbench) over
// each carrier. Run with
//
//	go test -run '^$' -bench . -benchtime 3s ./pkg/wgnet

func BenchmarkTCPBulk(b *testing.B) {
	na, nb := wgnet.PairNodes(b)
	wgbench.Bulk(b, na, nb, 9000)
}

// BenchmarkTCPBulkWithoutOffload is BenchmarkTCPBulk with UDP binds that
// send and read one datagram per message (no GSO/GRO).
func BenchmarkTCPBulkWithoutOffload(b *testing.B) {
	na, nb := wgnet.PairNodesWithoutOffload(b)
	wgbench.Bulk(b, na, nb, 9003)
}

func BenchmarkTCPRoundTrip(b *testing.B) {
	na, nb := wgnet.PairNodes(b)
	wgbench.RoundTrip(b, na, nb, 9001)
}

func BenchmarkTCPRoundTripParallel(b *testing.B) {
	na, nb := wgnet.PairNodes(b)
	wgbench.RoundTripParallel(b, na, nb, 9002)
}
