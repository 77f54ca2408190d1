package testkit

import (
	"net"
	"testing"
)

func TestFixedPortRange(t *testing.T) {
	for _, c := range []struct{ elo, ehi, lo, hi int }{
		{32768, 60999, 10000, 32767}, // Linux's default: below is larger
		{49152, 65535, 10000, 49151}, // IANA
		{10000, 40000, 40001, 65535}, // nothing below 10000+: above
		{1024, 65535, 10000, 65535},  // no room outside: anything unprivileged
	} {
		if lo, hi := fixedPortRange(c.elo, c.ehi); lo != c.lo || hi != c.hi {
			t.Errorf("fixedPortRange(%d, %d) = %d-%d, want %d-%d", c.elo, c.ehi, lo, hi, c.lo, c.hi)
		}
	}
}

// TestFreePortOutsideEphemeral checks that FreePort's ports lie outside the
// kernel's ephemeral range, bind for TCP and UDP, and that a taken port is
// not handed out.
func TestFreePortOutsideEphemeral(t *testing.T) {
	elo, ehi := ephemeralRange()
	lo, hi := fixedPortRange(elo, ehi)
	for range 20 {
		p := FreePort(t)
		if p < lo || p > hi || (p >= elo && p <= ehi && (lo > ehi || hi < elo)) {
			t.Fatalf("port %d outside %d-%d or inside the ephemeral range %d-%d", p, lo, hi, elo, ehi)
		}
		if !portFree(p) {
			t.Fatalf("port %d not free", p)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if portFree(l.Addr().(*net.TCPAddr).Port) {
		t.Fatal("a port with a listener counted as free")
	}
}
