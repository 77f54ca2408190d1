package simnet

import (
	"errors"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/postern/postern/pkg/testkit"
)

// pingRecorder is a memberlist.PingDelegate keeping the RTTs it is told.
type pingRecorder struct {
	mu   sync.Mutex
	rtts []time.Duration
}

func (p *pingRecorder) AckPayload() []byte { return nil }
func (p *pingRecorder) NotifyPingComplete(_ *memberlist.Node, rtt time.Duration, _ []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rtts = append(p.rtts, rtt)
}
func (p *pingRecorder) all() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.rtts...)
}

// startMember starts a memberlist on 127.0.0.1 in region, over the simnet
// Transport decorator.
func startMember(tb testing.TB, n *Network, name, region string) (*memberlist.Memberlist, *pingRecorder, netip.AddrPort) {
	tb.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		tb.Fatal(err)
	}
	port := nt.GetAutoBindPort()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	if err := n.Register(addr, region); err != nil {
		tb.Fatal(err)
	}
	conf := memberlist.DefaultLocalConfig()
	conf.Name = name
	conf.BindAddr, conf.BindPort = "127.0.0.1", port
	conf.AdvertiseAddr, conf.AdvertisePort = "127.0.0.1", port
	conf.Transport = n.Transport(nt, region)
	conf.LogOutput = io.Discard
	rec := &pingRecorder{}
	conf.Ping = rec
	ml, err := memberlist.Create(conf)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ml.Shutdown() })
	return ml, rec, addr
}

func alive(ml *memberlist.Memberlist, name string) bool {
	for _, m := range ml.Members() {
		if m.Name == name {
			return m.State == memberlist.StateAlive
		}
	}
	return false
}

func TestTransportMemberlist(t *testing.T) {
	const rtt = 100 * time.Millisecond
	n := NewNetwork(tinyMatrix(t, "100"), 1)
	a, recA, _ := startMember(t, n, "a", "near")
	b, _, addrB := startMember(t, n, "b", "far")
	if _, err := a.Join([]string{addrB.String()}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	testkit.WaitFor(t, 5*time.Second, "both alive", func() bool { return alive(a, "b") && alive(b, "a") })
	// No ping can beat the simulated RTT; a busy machine delays some, so
	// the upper bound (the latency applied once each way, not twice) is
	// asked of the best ping seen within the deadline, not of every one.
	const most = rtt + rtt/2
	testkit.WaitFor(t, 30*time.Second, "a ping to b within [rtt, 1.5 rtt]", func() bool {
		return slices.ContainsFunc(recA.all(), func(d time.Duration) bool { return d <= most })
	})
	for _, got := range recA.all() {
		if got < rtt {
			t.Errorf("ping RTT: got %v, want at least %v", got, rtt)
		}
	}

	n.Partition([]string{"near"}, []string{"far"})
	testkit.WaitFor(t, 15*time.Second, "partitioned members see each other dead", func() bool { return !alive(a, "b") && !alive(b, "a") })
	if _, err := a.Join([]string{addrB.String()}); err == nil {
		t.Errorf("Join across partition: got nil error, want failure")
	}

	n.Heal()
	if _, err := a.Join([]string{addrB.String()}); err != nil {
		t.Fatalf("Join after Heal: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, "alive again after Heal and Join", func() bool { return alive(a, "b") && alive(b, "a") })
}

func TestTransportDialPartition(t *testing.T) {
	n := NewNetwork(tinyMatrix(t, "40"), 1)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	tr := n.Transport(nt, "near")
	t.Cleanup(func() {
		if err := tr.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := tr.Shutdown(); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
	})
	dst := netip.MustParseAddrPort(testkit.Listen(t, func(c net.Conn) { _, _ = io.Copy(c, c) }))
	if err := n.Register(dst, "far"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := tr.DialTimeout(dst.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("DialTimeout: %v", err)
	}
	defer c.Close()
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("dial took %v, want at least one RTT (40ms)", took)
	}
	echo(t, c, 40*time.Millisecond)
	n.Partition([]string{"near"}, []string{"far"})
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrPartitioned) {
		t.Errorf("Write across partition: got %v, want ErrPartitioned", err)
	}
	if _, err := tr.DialTimeout(dst.String(), time.Second); !errors.Is(err, ErrPartitioned) {
		t.Errorf("DialTimeout across partition: got %v, want ErrPartitioned", err)
	}
}

// echo writes a line to an echoing conn and checks it comes back after at
// least rtt.
func echo(tb testing.TB, c net.Conn, rtt time.Duration) {
	tb.Helper()
	start := time.Now()
	if _, err := c.Write([]byte("ping")); err != nil {
		tb.Fatalf("Write: %v", err)
	}
	buf := make([]byte, 4)
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		tb.Fatalf("Read: %v", err)
	}
	if string(buf) != "ping" {
		tb.Errorf("echo: got %q, want %q", buf, "ping")
	}
	if took := time.Since(start); took < rtt || took > rtt+200*time.Millisecond {
		tb.Errorf("request/response took %v, want between %v and %v", took, rtt, rtt+200*time.Millisecond)
	}
}
