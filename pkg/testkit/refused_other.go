//go:build !unix

package testkit

import (
	"net"
	"testing"
)

// RefusedAddr returns a loopback TCP address that refused connections when
// it was returned (a listener's, closed); on Unix the port stays held until
// the test ends.
func RefusedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testkit: refused address: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
