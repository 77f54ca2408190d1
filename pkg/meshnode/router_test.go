package meshnode

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/wgkey"
)

// silentPinger answers every probe at once with a 1ms round trip, except
// those of the peers made silent, which never answer.
type silentPinger struct {
	mu     sync.Mutex
	silent map[wgkey.Public]bool
}

func (p *silentPinger) Ping(ctx context.Context, peer wgkey.Public) (time.Duration, error) {
	p.mu.Lock()
	silent := p.silent[peer]
	p.mu.Unlock()
	if silent {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return time.Millisecond, nil
}

func (p *silentPinger) set(peer wgkey.Public, silent bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent[peer] = silent
}

// routerEnv is a router over a real connector pool and a real set of relay
// paths, probed by a silentPinger; it runs in a synctest bubble.
type routerEnv struct {
	t      *testing.T
	ping   *silentPinger
	local  *pool.Pool
	relays *pool.Relays
	r      *router
}

var routerProbes = pool.Config{ProbeInterval: 10 * time.Millisecond, ProbeTimeout: time.Second, SuspectAfter: 50 * time.Millisecond, DeadAfter: 3,
	Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no dial in this test")
	}}

func newRouterEnv(t *testing.T) *routerEnv {
	e := &routerEnv{t: t, ping: &silentPinger{silent: map[wgkey.Public]bool{}}}
	cfg := routerProbes
	cfg.Pinger = e.ping
	e.local, e.relays = pool.New(cfg), pool.NewRelays(cfg)
	e.r = newRouter(e.local, e.relays, route.Latency)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { e.local.Run(ctx) })
	wg.Go(func() { e.relays.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); e.local.Close(); e.relays.Close() })
	return e
}

func (e *routerEnv) key() wgkey.Public {
	e.t.Helper()
	k, err := wgkey.Generate()
	if err != nil {
		e.t.Fatal(err)
	}
	return k.Public()
}

// relay adds the relay path to node and waits until its probes proved it.
func (e *routerEnv) relay(node string) *pool.Relay {
	e.t.Helper()
	k := e.key()
	if r := e.relays.Upsert(node, k); r.Usable() {
		e.t.Fatalf("relay path to %s usable before a probe answered", node)
	}
	e.settle()
	r := e.relays.Get(k)
	if !r.Healthy() {
		e.t.Fatalf("relay path to %s not healthy after its probes answered", node)
	}
	return r
}

// settle lets a few probe rounds pass.
func (e *routerEnv) settle() {
	time.Sleep(5 * routerProbes.ProbeInterval)
	synctest.Wait()
}

// decide makes the route table hold group's decision over cands, whose
// paths are paths, as the mesh loop does.
func (e *routerEnv) decide(group string, cands []route.Candidate, paths ...path) route.Decision {
	d := route.Decide(group, cands, route.Constraints{}, e.r.strategyNow(), nil, route.Options{})
	table := map[string]*groupRoute{}
	for g, gr := range *e.r.table.Load() {
		table[g] = gr
	}
	table[group] = lineUp(d, cands, paths)
	e.r.table.Store(&table)
	return d
}

// choices returns the router's choices counted so far, by kind.
func (e *routerEnv) choices() map[string]float64 {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.r.choices)
	mfs, err := reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

func localCand(c *pool.Connector) route.Candidate {
	return route.Candidate{Node: "self", Region: "eu", Local: true, Connector: c.ID, ConnectorRTT: time.Millisecond}
}

func relayCand(r *pool.Relay, draining bool) route.Candidate {
	return route.Candidate{Node: r.Node, Region: "us", Connector: "c-" + r.Node, NodeRTT: 20 * time.Millisecond, NodeRTTKnown: true,
		ConnectorRTT: time.Millisecond, Draining: draining}
}

// pickN picks n times for group and fails unless every pick is want.
func (e *routerEnv) pickN(n int, group string, exclude []edge.Path, want edge.Path, why string) {
	e.t.Helper()
	for range n {
		if got := e.r.Pick(group, exclude); got != want {
			e.t.Fatalf("%s: got %v, want %v", why, got, want)
		}
	}
}

// TestRouterChoice checks the router's choice between the two kinds of
// path, each judged by its own rules: a local connector when the decision
// ranks it first, a relay through another node next; an unproven or dead
// relay, a suspect connector and a relay through a draining node only when
// nothing better is left.
func TestRouterChoice(t *testing.T) {
	t.Run("local first, then relay", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newRouterEnv(t)
			a := e.local.Upsert("a", "hq", e.key())
			nb := e.relay("nb")
			d := e.decide("hq", []route.Candidate{localCand(a), relayCand(nb, false)}, a, nb)
			if d.Tier != 1 || !d.Candidates[0].Local {
				t.Fatalf("decision: got tier %d over %+v, want the local connector alone", d.Tier, d.Candidates)
			}
			e.pickN(10, "hq", nil, a, "the local connector ranks first")
			e.pickN(1, "hq", []edge.Path{a}, nb, "the local connector tried already")
			if got := e.r.Pick("hq", []edge.Path{a, nb}); got != nil {
				t.Fatalf("every path tried: got %v, want nil", got)
			}
			if got := e.r.Pick("nogroup", nil); got != nil {
				t.Fatalf("unknown group: got %v, want nil", got)
			}
			if got := e.choices(); got["local"] != 10 || got["relay"] != 1 {
				t.Fatalf("choices counted: got %v, want local 10, relay 1", got)
			}
			// A lone node's router, and the one relayed requests take,
			// know the local connectors only.
			lr := localRouter{e.local}
			if got := lr.Pick("hq", []edge.Path{a}); got != nil {
				t.Fatalf("local router with its connector tried: got %v, want nil (never a relay)", got)
			}
			if got := lr.Pick("hq", []edge.Path{nb}); got != a {
				t.Fatalf("local router: got %v, want a", got)
			}
		})
	})

	t.Run("relay not answering is skipped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newRouterEnv(t)
			nb, nc := e.relay("nb"), e.relay("nc")
			// Both in the tier; nb is less loaded but stops answering
			// before the next rebuild.
			d := e.decide("hq", []route.Candidate{relayCand(nb, false), relayCand(nc, false)}, nb, nc)
			if d.Tier != 2 {
				t.Fatalf("decision: got tier %d, want both relays", d.Tier)
			}
			nc.Acquire()
			defer nc.Release()
			e.pickN(5, "hq", nil, nb, "the least loaded relay")
			e.ping.set(nb.Key, true)
			time.Sleep(4 * routerProbes.ProbeTimeout)
			synctest.Wait()
			if nb.Alive() || nb.Lost().Err() == nil {
				t.Fatal("relay path nb not declared dead after its probes failed")
			}
			e.pickN(5, "hq", nil, nc, "relay nb is dead")
			// It answers again: a new instance, which the router finds
			// although its table still holds the dead one.
			e.ping.set(nb.Key, false)
			e.settle()
			back := e.relays.Get(nb.Key)
			if back == nb || !back.Healthy() {
				t.Fatal("relay path nb not back as a new instance")
			}
			e.pickN(5, "hq", nil, back, "relay nb is back and least loaded")
		})
	})

	t.Run("suspect connector skipped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newRouterEnv(t)
			s, h := e.local.Upsert("s", "pair", e.key()), e.local.Upsert("h", "pair", e.key())
			d := e.decide("pair", []route.Candidate{localCand(s), localCand(h)}, s, h)
			if d.Tier != 2 {
				t.Fatalf("decision: got tier %d, want both connectors", d.Tier)
			}
			for range 3 {
				h.Acquire()
			}
			defer func() {
				for range 3 {
					h.Release()
				}
			}()
			e.pickN(10, "pair", nil, s, "s is the least loaded")
			e.ping.set(s.Key, true)
			time.Sleep(routerProbes.ProbeInterval + 2*routerProbes.SuspectAfter)
			synctest.Wait()
			if !s.Suspected() || !s.Alive() {
				t.Fatalf("s: suspected %v alive %v, want suspect and not yet dead", s.Suspected(), s.Alive())
			}
			e.pickN(10, "pair", nil, h, "s is suspect, however less loaded")
			e.pickN(1, "pair", []edge.Path{h}, s, "a suspect connector is the last resort")
			// The probe in flight times out; the next one answers.
			e.ping.set(s.Key, false)
			time.Sleep(routerProbes.ProbeTimeout)
			e.settle()
			if s.Suspected() || !s.Alive() {
				t.Fatalf("s: suspected %v alive %v after a probe answered, want trusted", s.Suspected(), s.Alive())
			}
			e.pickN(10, "pair", nil, s, "s answers again")
		})
	})

	t.Run("draining relay is the last path", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newRouterEnv(t)
			nd := e.relay("nd")
			d := e.decide("far", []route.Candidate{relayCand(nd, true)}, nd)
			if d.Tier != 1 || !d.Candidates[0].Eligible {
				t.Fatalf("decision: got %+v, want the draining relay kept as the only path", d.Candidates)
			}
			e.pickN(5, "far", nil, nd, "a group with no other path keeps its draining relay")

			m, ne := e.local.Upsert("m", "mixed", e.key()), e.relay("ne")
			d = e.decide("mixed", []route.Candidate{localCand(m), relayCand(ne, true)}, m, ne)
			if d.Candidates[1].Eligible {
				t.Fatalf("decision: got %+v, want the draining relay left out while another path exists", d.Candidates)
			}
			e.pickN(10, "mixed", nil, m, "the draining relay is not used while another path exists")
			// m dies; the next rebuild sees it unusable and keeps the
			// draining relay as the last path.
			e.r.MarkDead(m, "test")
			if m.Alive() {
				t.Fatal("MarkDead did not reach the connector's pool")
			}
			dead := localCand(m)
			dead.Unusable = "connector not answering probes"
			e.decide("mixed", []route.Candidate{dead, relayCand(ne, true)}, m, ne)
			e.pickN(5, "mixed", nil, ne, "the draining relay is the last path left")
		})
	})

	// Relay paths once were connector entries of a group named "mesh",
	// told apart by that name: a real connector group of that name was
	// counted as a relay and, once revived, looked up among the relays.
	t.Run("a connector group named mesh is local", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newRouterEnv(t)
			c := e.local.Upsert("m1", "mesh", e.key())
			e.decide("mesh", []route.Candidate{localCand(c)}, c)
			e.r.MarkDead(c, "test")
			if c.Alive() {
				t.Fatal("MarkDead did not reach the connector's pool")
			}
			e.settle()
			back := e.local.Get(c.Key)
			if back == c || !back.Healthy() {
				t.Fatal("connector m1 not back as a new instance")
			}
			e.pickN(3, "mesh", nil, back, "the revived connector, found in the local pool")
			if got := e.choices(); got["local"] != 3 || got["relay"] != 0 {
				t.Fatalf("choices counted: got %v, want local 3, relay 0", got)
			}
		})
	})
}
