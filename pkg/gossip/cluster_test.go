package gossip

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postern/postern/pkg/authority"
)

const waitLong = 15 * time.Second

// threeNodes starts a, b, c joined through a.
func threeNodes(tb testing.TB, opts ...nodeOpts) (a, b, c *Cluster) {
	tb.Helper()
	a = newNode(tb, "a", nil, opts...)
	b = newNode(tb, "b", []string{a.Addr()}, opts...)
	c = newNode(tb, "c", []string{a.Addr()}, opts...)
	for _, n := range []*Cluster{a, b, c} {
		waitFor(tb, waitLong, n.LocalID()+" sees 3 alive", func() bool { return aliveCount(n) == 3 })
	}
	return a, b, c
}

func TestThreeNodesMetaAndAttachments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		a, b, c := threeNodes(t, mn.opt(t))
		if m, _ := member(b, "a"); m.Region != "region-a" || m.PublicURL != "https://a.example:443" || m.Addr != a.Addr() {
			t.Errorf("b's view of a: got %+v, want region-a at %s", m, a.Addr())
		}
		if err := a.UpdateMeta(func(m *Meta) { m.Draining = true; m.Version = "v2" }); err != nil {
			t.Fatalf("UpdateMeta: %v", err)
		}
		for _, n := range []*Cluster{b, c} {
			waitFor(t, waitLong, n.LocalID()+" sees a draining", func() bool {
				m, _ := member(n, "a")
				return m.Draining && m.Version == "v2"
			})
		}
		// Broadcast path.
		if err := a.SetAttachments([]Attachment{{Connector: "k1", Group: "g", Alive: true, RTT: 5 * time.Millisecond}}); err != nil {
			t.Fatalf("SetAttachments: %v", err)
		}
		for _, n := range []*Cluster{b, c} {
			waitFor(t, waitLong, n.LocalID()+" sees a/k1", func() bool { return hasAttachment(n, "a", "k1", nil) })
		}
		// A significant change (alive flip) propagates.
		if err := a.SetAttachments([]Attachment{{Connector: "k1", Group: "g", Alive: false, RTT: 5 * time.Millisecond}}); err != nil {
			t.Fatalf("SetAttachments: %v", err)
		}
		waitFor(t, waitLong, "c sees a/k1 dead", func() bool {
			return hasAttachment(c, "a", "k1", func(x Attachment) bool { return !x.Alive })
		})
		// Removal propagates.
		if err := a.SetAttachments(nil); err != nil {
			t.Fatalf("SetAttachments: %v", err)
		}
		for _, n := range []*Cluster{b, c} {
			waitFor(t, waitLong, n.LocalID()+" loses a/k1", func() bool { return !hasAttachment(n, "a", "k1", nil) })
		}
		// Push-pull path: a node joining later learns b's entry with no
		// broadcast left in b's queue.
		if err := b.SetAttachments([]Attachment{{Connector: "k2", Alive: true}}); err != nil {
			t.Fatalf("SetAttachments: %v", err)
		}
		waitFor(t, waitLong, "a sees b/k2", func() bool { return hasAttachment(a, "b", "k2", nil) })
		for _, n := range []*Cluster{a, b, c} {
			n.queue.Reset()
		}
		d := newNode(t, "d", []string{c.Addr()}, mn.opt(t))
		waitFor(t, waitLong, "d sees b/k2 by push-pull", func() bool { return hasAttachment(d, "b", "k2", nil) })
		if got := len(d.Attachments()); got != 1 {
			t.Errorf("d attachments: got %d, want 1 (%v)", got, d.Attachments())
		}
	})
}

func TestInFlightRidesOnRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		a, b, _ := threeNodes(t, mn.opt(t))
		if err := a.SetAttachments([]Attachment{{Connector: "k", Alive: true, RTT: 10 * time.Millisecond}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, waitLong, "b sees a/k", func() bool { return hasAttachment(b, "a", "k", nil) })
		if err := a.SetAttachments([]Attachment{{Connector: "k", Alive: true, RTT: 10 * time.Millisecond, InFlight: 7}}); err != nil {
			t.Fatal(err)
		}
		a.mu.Lock()
		dirty := a.entries[attachKey{"a", "k"}].dirty
		a.mu.Unlock()
		if !dirty {
			t.Errorf("in-flight-only change: got dirty false, want true (not broadcast at once)")
		}
		waitFor(t, waitLong, "b sees in-flight 7", func() bool {
			return hasAttachment(b, "a", "k", func(x Attachment) bool { return x.InFlight == 7 })
		})
	})
}

// TestFirstRTTIsBroadcast: an attachment gossiped before its first probe
// carries RTT 0, which every other node's route prices as unknown; the
// first measurement is broadcast at once even when it is under 1 ms (a
// connector next to its node), not left for the refresh.
func TestFirstRTTIsBroadcast(t *testing.T) {
	cases := []struct {
		old, now time.Duration
		want     bool
	}{
		{0, 300 * time.Microsecond, true},                       // first measurement, tiny
		{0, 0, false},                                           // still unmeasured
		{300 * time.Microsecond, 0, true},                       // measurement lost
		{10 * time.Millisecond, 11 * time.Millisecond, false},   // 10%
		{10 * time.Millisecond, 13 * time.Millisecond, true},    // 30% and 3 ms
		{300 * time.Microsecond, 900 * time.Microsecond, false}, // under 1 ms
	}
	for _, c := range cases {
		if got := significantRTT(c.old, c.now); got != c.want {
			t.Errorf("significantRTT(%v, %v) = %v, want %v", c.old, c.now, got, c.want)
		}
	}
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		a, b, _ := threeNodes(t, mn.opt(t))
		if err := a.SetAttachments([]Attachment{{Connector: "k", Alive: true}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, waitLong, "b sees a/k", func() bool { return hasAttachment(b, "a", "k", nil) })
		start := time.Now()
		if err := a.SetAttachments([]Attachment{{Connector: "k", Alive: true, RTT: 300 * time.Microsecond}}); err != nil {
			t.Fatal(err)
		}
		a.mu.Lock()
		dirty := a.entries[attachKey{"a", "k"}].dirty
		a.mu.Unlock()
		if dirty {
			t.Errorf("first RTT: got dirty true, want it broadcast at once")
		}
		waitFor(t, waitLong, "b sees a/k's first RTT", func() bool {
			return hasAttachment(b, "a", "k", func(x Attachment) bool { return x.RTT == 300*time.Microsecond })
		})
		if took := time.Since(start); took >= a.timing.RefreshInterval {
			t.Errorf("b learned the first RTT after %v, not before the refresh (%v)", took, a.timing.RefreshInterval)
		}
	})
}

func TestLeaveAndDeath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		a, b, c := threeNodes(t, mn.opt(t))
		if err := c.Leave(2 * time.Second); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		for _, n := range []*Cluster{a, b} {
			waitFor(t, 3*time.Second, n.LocalID()+" sees c left", func() bool { return stateOf(n, "c") == StateLeft })
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		took := waitFor(t, waitLong, "a sees b dead", func() bool { return stateOf(a, "b") == StateDead })
		t.Logf("dead detected after %v (LocalTiming)", took)
		if got := stateOf(a, "c"); got != StateLeft {
			t.Errorf("a's view of c: got %v, want %v", got, StateLeft)
		}
		if err := b.UpdateMeta(func(m *Meta) { m.Load = 1 }); !errors.Is(err, ErrClosed) {
			t.Errorf("UpdateMeta after Close: got %v, want ErrClosed", err)
		}
	})
}

func TestRefusedJoin(t *testing.T) {
	a, _, _ := threeNodes(t)
	tests := []struct {
		name string
		opt  nodeOpts
	}{
		{"wrong key", func(c *Config) { c.Keys = [][]byte{[]byte(strings.Repeat("x", 32))} }},
		{"wrong label", func(c *Config) { c.Label = "other" }},
		{"unencrypted", func(c *Config) { c.Keys, c.Insecure = nil, true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newNode(t, "x-"+strings.ReplaceAll(tt.name, " ", "-"), nil, tt.opt)
			x.cfg.Seeds = []string{a.Addr()}
			n, err := x.Join(t.Context())
			if !errors.Is(err, ErrJoin) || n != 0 {
				t.Fatalf("Join: got (%d, %v), want (0, ErrJoin)", n, err)
			}
			t.Logf("join error: %v", err)
			if got := len(x.Members()); got != 1 {
				t.Errorf("x members: got %d, want 1", got)
			}
			if got := len(a.Members()); got != 3 {
				t.Errorf("a members: got %d, want 3", got)
			}
		})
	}
}

func TestTokensSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		stores := map[string]*memTokens{}
		withStore := func(c *Config) { s := newMemTokens(); stores[c.Meta.ID] = s; c.Tokens = s }
		a, _, _ := threeNodes(t, withStore, mn.opt(t))
		exp := time.Now().Add(time.Hour).Truncate(time.Second)
		a.TokenUsed(authority.UsedToken{ID: "jti-1", Expires: exp})
		for _, id := range []string{"b", "c"} {
			waitFor(t, waitLong, id+" has jti-1", func() bool { return stores[id].has("jti-1") })
		}
		// Push-pull carries the list to a late joiner.
		d := newNode(t, "d", []string{a.Addr()}, withStore, mn.opt(t))
		_ = d
		waitFor(t, waitLong, "d has jti-1", func() bool { return stores["d"].has("jti-1") })
	})
}

func TestStaleBootAndSelfEntries(t *testing.T) {
	a, b, _ := threeNodes(t)
	d := &delegate{c: a}
	send := func(w wireAttach) {
		signer := w.Node
		if signer == "a" {
			signer = "b" // a forgery about a, signed by another member
		}
		w.Sig = testIdentity(t, signer, "region-"+signer).sign("attach", attachSigned(w))
		msg, err := encodeMsg(kindAttachment, w)
		if err != nil {
			t.Fatal(err)
		}
		d.NotifyMsg(msg)
	}
	send(wireAttach{Node: "b", Connector: "old", Boot: 50, Version: 1, Alive: true})
	send(wireAttach{Node: "b", Connector: "cur", Boot: 100, Version: 1, Alive: true})
	send(wireAttach{Node: "a", Connector: "forged", Boot: 100, Version: 1 << 62, Alive: true})
	tests := []struct {
		node, connector string
		want            bool
	}{
		{"b", "old", false},
		{"b", "cur", true},
		{"a", "forged", false},
	}
	for _, tt := range tests {
		t.Run(tt.node+"/"+tt.connector, func(t *testing.T) {
			if got := hasAttachment(a, tt.node, tt.connector, nil); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// b restarts (new boot): its old entries vanish from a's view.
	_ = b
	d.NotifyUpdate(nodeWithMeta(t, b, Meta{ID: "b", Region: "region-b", Boot: 200}))
	if hasAttachment(a, "b", "cur", nil) {
		t.Errorf("after b's new boot: got b/cur visible, want dropped")
	}
	a.mu.Lock()
	_, kept := a.entries[attachKey{"b", "cur"}]
	a.mu.Unlock()
	if kept {
		t.Errorf("after b's new boot: got entry kept, want deleted")
	}
}

func TestPartitionHealsByRejoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		a := newNode(t, "a", nil, mn.opt(t))
		b := newNode(t, "b", []string{a.Addr()}, mn.opt(t))
		bt := mn.transport()
		c := newNode(t, "c", []string{a.Addr()}, func(cfg *Config) { cfg.Transport = bt })
		for _, n := range []*Cluster{a, b, c} {
			waitFor(t, waitLong, n.LocalID()+" sees 3 alive", func() bool { return aliveCount(n) == 3 })
		}
		bt.blocked.Store(true)
		waitFor(t, waitLong, "a sees c dead", func() bool { return stateOf(a, "c") == StateDead })
		waitFor(t, waitLong, "c sees a dead", func() bool { return stateOf(c, "a") == StateDead })
		// Stay apart past GossipToTheDeadTime so that memberlist forgets the
		// dead and only Run's rejoin can bring them back.
		deadline := time.Now().Add(LocalTiming().GossipToTheDeadTime + time.Second)
		waitFor(t, waitLong, "partition to age", func() bool { return time.Now().After(deadline) })
		bt.blocked.Store(false)
		took := waitFor(t, waitLong, "healed", func() bool {
			return aliveCount(a) == 3 && aliveCount(b) == 3 && aliveCount(c) == 3
		})
		t.Logf("partition healed %v after unblocking", took)
	})
}

func TestVivaldiEstimates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Every packet takes 5 ms, so a probe's round trip is 10 ms on
		// the bubble's clock.
		mn := memNet{delay: 5 * time.Millisecond}
		a, _, _ := threeNodes(t, mn.opt(t))
		if d, ok := a.EstimateRTT("a"); !ok || d != 0 {
			t.Errorf("EstimateRTT(self): got (%v, %v), want (0, true)", d, ok)
		}
		if _, ok := a.EstimateRTT("nobody"); ok {
			t.Errorf("EstimateRTT(nobody): got ok, want not ok")
		}
		waitFor(t, waitLong, "a has estimates for b and c", func() bool {
			_, okb := a.EstimateRTT("b")
			_, okc := a.EstimateRTT("c")
			return okb && okc
		})
		m, _ := member(a, "b")
		if !m.HasRTT || m.LastProbeRTT != 10*time.Millisecond {
			t.Errorf("member b: got HasRTT %v LastProbeRTT %v, want an estimate and a probe of 10ms", m.HasRTT, m.LastProbeRTT)
		}
	})
}

func TestChangesNotifies(t *testing.T) {
	a := newNode(t, "a", nil)
	for len(a.Changes()) > 0 {
		<-a.Changes()
	}
	if err := a.SetAttachments([]Attachment{{Connector: "k"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Changes():
	default:
		t.Errorf("Changes after SetAttachments: got nothing, want a signal")
	}
}

// TestInjectedClock: the cluster reads Config.Now, not the runtime's clock,
// where it stamps time: an attachment's version is the injected instant.
func TestInjectedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		at := time.Date(2031, 5, 4, 3, 2, 1, 0, time.UTC)
		a := newNode(t, "a", nil, mn.opt(t), func(c *Config) { c.Now = func() time.Time { return at } })
		if err := a.SetAttachments([]Attachment{{Connector: "k", Alive: true}}); err != nil {
			t.Fatal(err)
		}
		a.mu.Lock()
		got := a.entries[attachKey{"a", "k"}].w.Version
		a.mu.Unlock()
		if got != at.UnixNano() {
			t.Errorf("attachment version: got %v, want the injected clock's %v", time.Unix(0, got).UTC(), at)
		}
	})
}
