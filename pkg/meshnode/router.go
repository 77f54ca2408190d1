package meshnode

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/edge"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/route"
)

// path is the router's choice: one of two kinds, each of which carries
// its own rules of use. A *pool.Connector is attached to this node; it is
// usable while it answers probes and is not draining. A *pool.Relay goes
// through another mesh node; it is usable while that node answers probes
// through the mesh tunnel, and its node's drain is a route rule (the path
// of last resort, see route.Candidate.Draining). Either is healthy when
// usable and not suspect.
type path interface {
	edge.Path
	// Usable reports whether the path takes new requests.
	Usable() bool
	// Healthy reports whether the path is usable and not suspect.
	Healthy() bool
	// Outstanding returns the requests in flight on the path.
	Outstanding() int64
}

var (
	_ path               = (*pool.Connector)(nil)
	_ path               = (*pool.Relay)(nil)
	_ edge.ConnectorPath = (*pool.Connector)(nil)
)

// router is the edge.Router of a node in a cluster: it reads the route
// table that the mesh loop rebuilds and picks, per request, the least
// loaded usable path of the chosen tier, then the other eligible paths by
// cost, then any local connector (one attached since the last rebuild).
type router struct {
	local    *pool.Pool
	relays   *pool.Relays
	strategy atomic.Value // route.Strategy
	table    atomic.Pointer[map[string]*groupRoute]
	choices  *prometheus.CounterVec // by kind: local, relay
}

var _ edge.Router = (*router)(nil)

// groupRoute is one group's decision with its paths, index for index with
// decision.Candidates; a nil path is a relay node that is no relay path
// (yet).
type groupRoute struct {
	decision route.Decision
	paths    []path
}

// lineUp pairs the decision d, made over cands, with their paths
// (paths[i] is cands[i]'s): route.Decide reorders the candidates.
func lineUp(d route.Decision, cands []route.Candidate, paths []path) *groupRoute {
	byKey := make(map[string]path, len(cands))
	for i, c := range cands {
		byKey[c.Key()] = paths[i]
	}
	gr := &groupRoute{decision: d, paths: make([]path, len(d.Candidates))}
	for i, c := range d.Candidates {
		gr.paths[i] = byKey[c.Key()]
	}
	return gr
}

func newRouter(local *pool.Pool, relays *pool.Relays, s route.Strategy) *router {
	r := &router{local: local, relays: relays,
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
func (r *router) Pick(group string, exclude []edge.Path) edge.Path {
	if p := r.pick(group, exclude, path.Healthy); p != nil {
		return r.count(p)
	}
	if p := r.pick(group, exclude, path.Usable); p != nil {
		return r.count(p)
	}
	return nil
}

// pick returns the path for the next attempt among those that ok accepts.
func (r *router) pick(group string, exclude []edge.Path, ok func(path) bool) path {
	gr := (*r.table.Load())[group]
	if gr != nil {
		d := &gr.decision
		if p := r.pickTier(gr, d.Tier, exclude, ok); p != nil {
			return p
		}
		for i := d.Tier; i < len(d.Candidates) && d.Candidates[i].Eligible; i++ {
			if p := r.resolve(gr, i); p != nil && ok(p) && !slices.Contains(exclude, edge.Path(p)) {
				return p
			}
		}
	}
	if c := r.local.Pick(group, localOnly(exclude)); c != nil && ok(c) {
		return c
	}
	return nil
}

func (r *router) pickTier(gr *groupRoute, tier int, exclude []edge.Path, ok func(path) bool) path {
	var best path
	var bestLoad int64
	seen := 0
	for i := 0; i < tier; i++ {
		p := r.resolve(gr, i)
		if p == nil || !ok(p) || slices.Contains(exclude, edge.Path(p)) {
			continue
		}
		seen++
		if r.strategyNow() == route.Random {
			if rand.IntN(seen) == 0 { // reservoir sampling: uniform over the usable ones
				best = p
			}
			continue
		}
		if load := p.Outstanding(); best == nil || load < bestLoad {
			best, bestLoad = p, load
		}
	}
	return best
}

// resolve returns the current instance of candidate i's path: a path that
// comes back after it was declared dead is a new instance, so a stale one
// is looked up again in its own set.
func (r *router) resolve(gr *groupRoute, i int) path {
	p := gr.paths[i]
	if p == nil || p.Lost().Err() == nil {
		return p
	}
	switch p := p.(type) {
	case *pool.Connector:
		if c := r.local.Get(p.Key); c != nil {
			return c
		}
	case *pool.Relay:
		if rl := r.relays.Get(p.Key); rl != nil {
			return rl
		}
	}
	return nil
}

func (r *router) count(p path) edge.Path {
	kind := "local"
	if _, ok := p.(*pool.Relay); ok {
		kind = "relay"
	}
	r.choices.WithLabelValues(kind).Inc()
	return p
}

// MarkDead declares p dead in its own set.
func (r *router) MarkDead(p edge.Path, reason string) {
	switch p := p.(type) {
	case *pool.Connector:
		r.local.MarkDead(p, reason)
	case *pool.Relay:
		r.relays.MarkDead(p, reason)
	}
}

// localOnly returns the connectors among exclude; nil (no allocation) on
// a request's first attempt.
func localOnly(exclude []edge.Path) []*pool.Connector {
	var out []*pool.Connector
	for _, p := range exclude {
		if c, ok := p.(*pool.Connector); ok {
			out = append(out, c)
		}
	}
	return out
}

// localRouter is the edge.Router over this node's own connectors: the
// whole Router of a lone node, and the one relayed requests take.
type localRouter struct{ pool *pool.Pool }

var _ edge.Router = localRouter{}

func (l localRouter) Pick(group string, exclude []edge.Path) edge.Path {
	if c := l.pool.Pick(group, localOnly(exclude)); c != nil {
		return c
	}
	return nil
}

func (l localRouter) MarkDead(p edge.Path, reason string) {
	if c, ok := p.(*pool.Connector); ok {
		l.pool.MarkDead(c, reason)
	}
}
