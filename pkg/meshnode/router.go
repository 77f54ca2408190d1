package meshnode

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/route"
)

// meshGroup is the pool group of the relay paths: one entry per other mesh
// node, probed through the mesh tunnel like a connector.
const meshGroup = "mesh"

// router is the edge.Router of a node in a cluster: it reads the route
// table that the mesh loop rebuilds and picks, per request, the least
// loaded usable path of the chosen tier, then the other eligible paths by
// cost, then any local connector (one attached since the last rebuild).
type router struct {
	local    *pool.Pool
	peers    *pool.Pool
	strategy atomic.Value // route.Strategy
	table    atomic.Pointer[map[string]*groupRoute]
	choices  *prometheus.CounterVec // by kind: local, relay
}

var _ edge.Router = (*router)(nil)

// groupRoute is one group's decision with its paths resolved to pool
// entries, index for index with decision.Candidates.
type groupRoute struct {
	decision route.Decision
	paths    []*pool.Connector
}

func newRouter(local, peers *pool.Pool, s route.Strategy) *router {
	r := &router{local: local, peers: peers,
		choices: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_mesh_route_choices_total",
			Help: "Paths picked for request attempts, by kind (local connector or relay through another mesh node)."}, []string{"kind"})}
	r.strategy.Store(s)
	empty := map[string]*groupRoute{}
	r.table.Store(&empty)
	return r
}

func (r *router) strategyNow() route.Strategy { return r.strategy.Load().(route.Strategy) }

// Pick prefers, at every step, the paths that are not suspect (see
// pool.Connector.Suspect), and takes a suspect one only when no other is
// left.
func (r *router) Pick(group string, exclude []*pool.Connector) *pool.Connector {
	if c := r.pick(group, exclude, (*pool.Connector).Healthy); c != nil {
		return r.count(c)
	}
	if c := r.pick(group, exclude, (*pool.Connector).Usable); c != nil {
		return r.count(c)
	}
	return nil
}

// pick returns the path for the next attempt among those that ok accepts.
func (r *router) pick(group string, exclude []*pool.Connector, ok func(*pool.Connector) bool) *pool.Connector {
	gr := (*r.table.Load())[group]
	if gr != nil {
		d := &gr.decision
		if c := r.pickTier(gr, d.Tier, exclude, ok); c != nil {
			return c
		}
		for i := d.Tier; i < len(d.Candidates) && d.Candidates[i].Eligible; i++ {
			if c := r.resolve(gr, i); c != nil && ok(c) && !excluded(exclude, c) {
				return c
			}
		}
	}
	if c := r.local.Pick(group, exclude); c != nil && ok(c) {
		return c
	}
	return nil
}

func (r *router) pickTier(gr *groupRoute, tier int, exclude []*pool.Connector, ok func(*pool.Connector) bool) *pool.Connector {
	var best *pool.Connector
	var bestLoad int64
	seen := 0
	for i := 0; i < tier; i++ {
		c := r.resolve(gr, i)
		if c == nil || !ok(c) || excluded(exclude, c) {
			continue
		}
		seen++
		if r.strategyNow() == route.Random {
			if rand.IntN(seen) == 0 { // reservoir sampling: uniform over the usable ones
				best = c
			}
			continue
		}
		if load := c.Outstanding(); best == nil || load < bestLoad {
			best, bestLoad = c, load
		}
	}
	return best
}

// resolve returns the current pool entry of candidate i: the pool replaces
// an entry when a connector comes back, so a stale one is looked up again.
func (r *router) resolve(gr *groupRoute, i int) *pool.Connector {
	c := gr.paths[i]
	if c == nil || c.Lost().Err() == nil {
		return c
	}
	p := r.local
	if c.Group == meshGroup {
		p = r.peers
	}
	return p.Get(c.Key)
}

func (r *router) count(c *pool.Connector) *pool.Connector {
	kind := "local"
	if c.Group == meshGroup {
		kind = "relay"
	}
	r.choices.WithLabelValues(kind).Inc()
	return c
}

func (r *router) MarkDead(c *pool.Connector, reason string) {
	if c.Group == meshGroup {
		r.peers.MarkDead(c, reason)
		return
	}
	r.local.MarkDead(c, reason)
}

func excluded(cs []*pool.Connector, c *pool.Connector) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}
