package harness

import (
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/simnet"
)

// TestSuspectConnectorResendsWaitingGETs kills a connector while GETs wait
// on it, with probes that never declare it dead: the GETs must not wait
// for a death that does not come, but go to the other connector as soon
// as the dead one fails a probe; and new requests must avoid it.
func TestSuspectConnectorResendsWaitingGETs(t *testing.T) {
	h := start(t, Options{Connectors: 2, Pool: pool.Config{DeadAfter: 1 << 20}})
	l := startGETLoad(t, h.MeshClient(0), h.AppURL(0, ""), "/slow?delay=100ms", 8)
	l.waitOK(t, 40)
	h.KillConnector(0)
	l.waitOK(t, 80)
	l.halt()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d GETs failed after a connector died: %v", f, first(l.errors(), 5))
	}
}

// TestFailoverStalls measures how long the GETs in flight on a connector
// wait when it dies (killed) or stops answering (paused: its packets are
// dropped both ways), with the default probe settings; none may fail.
func TestFailoverStalls(t *testing.T) {
	h := start(t, Options{Connectors: 3})
	for i, how := range []string{"killed", "paused"} {
		l := startGETLoad(t, h.MeshClient(0), h.AppURL(0, ""), "/slow?delay=50ms", 16)
		l.waitOK(t, 100)
		at := time.Now()
		if how == "killed" {
			h.KillConnector(i)
		} else {
			h.SetUDPBlocked(i, true)
		}
		l.waitOK(t, 200)
		l.halt()
		p50, max, n := l.stalls(at)
		t.Logf("connector %s: %d GETs in flight, they ended %v (p50), %v (max) after it", how, n, p50.Round(time.Millisecond), max.Round(time.Millisecond))
		if f := l.failed.Load(); f != 0 {
			t.Fatalf("connector %s: %d GETs failed: %v", how, f, first(l.errors(), 5))
		}
	}
	h.SetUDPBlocked(1, false)
}

// twoRelayTopology is node A in region a with the user, and nodes B1 and
// B2 in region b, where the group's two connectors are, each attached to
// both: node A relays through B1 or B2, at random, so that both carry
// requests whatever the latency estimates say.
func twoRelayTopology() *Topology {
	return &Topology{Net: simnet.NewNetwork(ZeroMatrix(), 1), Strategy: route.Random,
		Nodes:      []NodeSpec{{ID: "A", Region: RelayRegionA}, {ID: "B1", Region: RelayRegionB}, {ID: "B2", Region: RelayRegionB}},
		Groups:     []GroupSpec{{ID: RelayGroup, Region: RelayRegionB, Pin: true}},
		Connectors: []ConnectorSpec{{Group: RelayGroup, Region: RelayRegionB}, {Group: RelayGroup, Region: RelayRegionB}},
		AttachK:    2}
}

// relaysServed returns how many relayed requests mesh node i served.
func relaysServed(tb testing.TB, h *Harness, i int) int {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.Meshes()[i].Node.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "postern_mesh_relays_served_total "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// TestRelayNodeFailover kills relay node B1 while GETs flow through it
// from node A: none may fail, and those in flight go through B2 without
// waiting for B1 to be declared dead. Then B1 restarts, and node A must
// relay through it again as soon as it serves.
func TestRelayNodeFailover(t *testing.T) {
	h := start(t, Options{Topology: twoRelayTopology()})
	if err := h.WaitConverged(t.Context(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	b1 := h.MeshIndex("B1")
	l := startGETLoad(t, h.UserClient(0), "https://"+GroupHost(RelayGroup)+":"+portOf(h, 0), "/slow?delay=50ms", 16)
	if err := WaitFor(t.Context(), 20*time.Second, func() bool { return relaysServed(t, h, b1) > 20 }); err != nil {
		t.Fatal("node A does not relay through B1")
	}
	at := time.Now()
	h.KillMesh(b1)
	l.waitOK(t, 200)
	l.halt()
	p50, max, n := l.stalls(at)
	t.Logf("relay node killed: %d GETs in flight, they ended %v (p50), %v (max) after it", n, p50.Round(time.Millisecond), max.Round(time.Millisecond))
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d GETs failed when a relay node died: %v", f, first(l.errors(), 5))
	}
	// Restart B1 once its loss is known everywhere and the connectors have
	// been retrying it for a while; then kill and restart it at once,
	// before the cluster notices. Each time, A must relay through it again
	// as soon as it serves.
	err := WaitFor(t.Context(), 30*time.Second, func() bool {
		for _, c := range h.Connectors() {
			if slices.Contains(c.C.AttachedNodes(), "B1") {
				return false
			}
		}
		for _, m := range h.Meshes()[0].Node.Status().Mesh.Nodes {
			if m.ID == "B1" && m.State != "dead" && m.State != "left" {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal("B1's loss was not noticed")
	}
	t.Logf("B1's loss known everywhere %v after the kill", time.Since(at).Round(time.Millisecond))
	time.Sleep(5 * time.Second) // down a while: the connectors back off
	l = startGETLoad(t, h.UserClient(0), "https://"+GroupHost(RelayGroup)+":"+portOf(h, 0), "/hello", 4)
	defer l.halt()
	for _, how := range []string{"after 5s down", "at once"} {
		if how == "at once" {
			h.KillMesh(b1)
		}
		if err := h.StartMesh(b1); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		if err := WaitFor(t.Context(), 30*time.Second, func() bool { return relaysServed(t, h, b1) > 0 }); err != nil {
			t.Fatalf("restarted %s: node A never relayed through B1 again", how)
		}
		t.Logf("restarted %s: node A relayed through B1 %v after it started", how, time.Since(restarted).Round(time.Millisecond))
	}
}
