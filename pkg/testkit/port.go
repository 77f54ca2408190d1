package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreeAddr returns "127.0.0.1:port" for a port that was free a moment ago
// (see [FreePort]).
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}

// FreePort returns a loopback port, free for both TCP and UDP a moment
// ago, for a child process that takes its port on the command line. The
// port lies outside the kernel's ephemeral range, so that between this
// call and the child's bind no outgoing connection and no ":0" listener
// of this machine can be given it: only another explicit bind could take
// it, which is what a port read from the ephemeral range could not
// promise on a busy machine.
func FreePort(tb testing.TB) int {
	tb.Helper()
	lo, hi := fixedPortRange(ephemeralRange())
	for range 200 {
		p := lo + rand.IntN(hi-lo+1)
		if portFree(p) {
			return p
		}
	}
	tb.Fatalf("testkit: no free loopback port in %d-%d after 200 tries", lo, hi)
	return 0
}

// ephemeralRange returns the kernel's range for ports it picks itself
// (Linux's net.ipv4.ip_local_port_range; the IANA range elsewhere).
func ephemeralRange() (lo, hi int) {
	lo, hi = 49152, 65535
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	var l, h int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &l, &h); err != nil || l < 1 || h < l || h > 65535 {
		return lo, hi
	}
	return l, h
}

// fixedPortRange returns the larger of the ranges below and above the
// ephemeral range [elo, ehi], above the privileged ports and the usual
// fixed service ports below 10000.
func fixedPortRange(elo, ehi int) (lo, hi int) {
	const floor = 10000
	below := elo - 1 - floor
	above := 65535 - (ehi + 1)
	if below >= above && below > 0 {
		return floor, elo - 1
	}
	if above > 0 {
		return ehi + 1, 65535
	}
	return floor, 65535 // no room outside: any unprivileged port
}

// portFree says whether port p binds on 127.0.0.1 for TCP and for UDP.
func portFree(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	return pc.Close() == nil
}
