package simnet

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// tinyMatrix is two regions 100ms apart, no jitter, no loss, scaled by f.
func tinyMatrix(tb testing.TB, rttMS string) *Matrix {
	tb.Helper()
	m, err := ParseMatrix([]byte("regions: [{name: near}, {name: far}]\nlinks:\n  - between: [near, far]\n    rtt_ms: " + rttMS + "\n"))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestNetworkRegister(t *testing.T) {
	n := NewNetwork(tinyMatrix(t, "100"), 1)
	a := netip.MustParseAddrPort("127.0.0.1:1000")
	if err := n.Register(a, "nowhere"); !errors.Is(err, ErrUnknownRegion) {
		t.Errorf("Register(unknown): got %v, want ErrUnknownRegion", err)
	}
	if _, ok := n.RegionOf(a); ok {
		t.Errorf("RegionOf after failed Register: got ok, want nothing registered")
	}
	if err := n.Register(a, "far"); err != nil {
		t.Fatal(err)
	}
	mapped := netip.MustParseAddrPort("[::ffff:127.0.0.1]:1000")
	if got, ok := n.RegionOf(mapped); !ok || got != "far" {
		t.Errorf("RegionOf(v4-in-v6): got %q, %v, want far, true", got, ok)
	}
	n.Unregister(mapped)
	if _, ok := n.RegionOf(a); ok {
		t.Errorf("RegionOf after Unregister: got ok, want not registered")
	}
}

func TestNetworkSample(t *testing.T) {
	n := NewNetwork(tinyMatrix(t, "100"), 1)
	tests := []struct {
		name      string
		from, to  string
		wantDelay time.Duration
	}{
		{"between regions", "near", "far", 50 * time.Millisecond},
		{"reverse", "far", "near", 50 * time.Millisecond},
		{"intra zero", "near", "near", 0},
		{"unknown", "near", "mars", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, drop := n.Sample(tt.from, tt.to)
			if d != tt.wantDelay || drop {
				t.Errorf("Sample: got %v, %v, want %v, false", d, drop, tt.wantDelay)
			}
		})
	}
	n.Partition([]string{"near"}, []string{"far"})
	if _, drop := n.Sample("far", "near"); !drop {
		t.Errorf("Sample across partition: got no drop, want drop")
	}
	if _, drop := n.Sample("near", "near"); drop {
		t.Errorf("Sample inside a region during partition: got drop, want none")
	}
	n.Heal()
	if _, drop := n.Sample("far", "near"); drop {
		t.Errorf("Sample after Heal: got drop, want none")
	}
}

func TestNetworkSampleJitterLoss(t *testing.T) {
	m, err := ParseMatrix([]byte("regions: [{name: a}, {name: b}]\nlinks: [{between: [a, b], rtt_ms: 10, jitter_ms: 4, loss: 0.25}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := NewNetwork(m, 42)
	const count = 20000
	var drops int
	var sum time.Duration
	for range count {
		d, drop := n.Sample("a", "b")
		if d < 0 {
			t.Fatalf("Sample: got negative delay %v", d)
		}
		if drop {
			drops++
		}
		sum += d
	}
	if rate := float64(drops) / count; rate < 0.22 || rate > 0.28 {
		t.Errorf("loss rate: got %.3f, want about 0.25", rate)
	}
	if mean := sum / count; mean < 4800*time.Microsecond || mean > 5200*time.Microsecond {
		t.Errorf("mean one-way delay: got %v, want about 5ms", mean)
	}
	// Same seed, same draws.
	x, y := NewNetwork(m, 7), NewNetwork(m, 7)
	for range 100 {
		dx, px := x.Sample("a", "b")
		dy, py := y.Sample("a", "b")
		if dx != dy || px != py {
			t.Fatalf("same seed: got %v/%v and %v/%v, want equal", dx, px, dy, py)
		}
	}
}

func TestNetworkIsolate(t *testing.T) {
	n := NewNetwork(tinyMatrix(t, "100"), 1)
	a := netip.MustParseAddrPort("127.0.0.1:1000")
	other := netip.MustParseAddrPort("127.0.0.1:2000")
	n.Isolate(a)
	if p := n.route("near", nil, a); !p.blocked {
		t.Errorf("route to isolated: got %+v, want blocked", p)
	}
	if p := n.route("near", func(s netip.AddrPort) bool { return s == a }, other); !p.blocked {
		t.Errorf("route from isolated: got %+v, want blocked", p)
	}
	if p := n.route("near", nil, other); p.blocked || !p.link.zero() {
		t.Errorf("route to unregistered: got %+v, want open and no delay", p)
	}
	n.Heal()
	if p := n.route("near", nil, a); p.blocked {
		t.Errorf("route after Heal: got blocked, want open")
	}
}
