// Package route chooses, for each connector group, the paths a mesh node
// sends the group's requests along: a connector attached to this node, or a
// relay through another mesh node that has one attached. It is pure: the
// mesh node feeds it candidates built from its own connector pool, the
// gossiped attachments of the other nodes and the Vivaldi RTT estimates,
// and it returns a Decision that the request path reads (which paths may
// take the next request) and that the explain endpoint prints.
//
// It sits at step 5 of the request path ("route") in DESIGN.md, between the
// policy check and the tunnel.
package route

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Strategy is how a Decision ranks the candidates.
type Strategy string

const (
	// Latency picks the least expected RTT(this node → relay node) +
	// RTT(relay node → connector). It is the production strategy.
	Latency Strategy = "latency"
	// Nearest always uses a connector attached to this node when there is
	// one, and otherwise the first node (by id) that holds one, whatever
	// the latency: the behaviour of a connector group pinned to one home.
	// bench compares against it.
	Nearest Strategy = "nearest"
	// Random spreads requests uniformly over every usable path. bench
	// compares against it.
	Random Strategy = "random"
)

// ParseStrategy parses a strategy name; empty means Latency.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case "", Latency:
		return Latency, nil
	case Nearest, Random:
		return Strategy(s), nil
	}
	return "", fmt.Errorf("route: unknown strategy %q (want latency, nearest or random)", s)
}

// Candidate is one path to a connector group.
type Candidate struct {
	// Node is the mesh node the path ends at: this node for a local
	// connector, the relay node otherwise.
	Node string
	// Region is Node's region.
	Region string
	// Local reports that Connector is attached to this node, so the path
	// has no relay hop.
	Local bool
	// Connector is the connector's id (local), or that of the relay node's
	// best connector of the group.
	Connector string
	// NodeRTT is the estimated RTT from this node to Node; zero for a
	// local path. NodeRTTKnown is false while no estimate exists yet.
	NodeRTT      time.Duration
	NodeRTTKnown bool
	// ConnectorRTT is Node's measured RTT to the connector through the
	// tunnel; zero when not measured yet.
	ConnectorRTT time.Duration
	// Load is the number of requests in flight on the path.
	Load int64
	// Unusable, when not empty, says why the path takes no request now
	// ("connector draining", "node unreachable", ...).
	Unusable string
	// Draining reports that Node announced it is shutting down. It still
	// serves until it is gone, so its path is used only when no other
	// path is eligible.
	Draining bool
}

// Key identifies a path across decisions: "local/<connector>" or
// "node/<node>".
func (c Candidate) Key() string {
	if c.Local {
		return "local/" + c.Connector
	}
	return "node/" + c.Node
}

// Constraints restrict where a group's requests may go, from the
// catalogue's connector group.
type Constraints struct {
	// PinRegion, when set, allows only paths that end at a node of this
	// region.
	PinRegion string
	// ExcludeRegions lists regions whose nodes are never used.
	ExcludeRegions []string
}

// Options tune Decide. The zero value means the defaults documented on each
// field.
type Options struct {
	// Tolerance is how much costlier than the best a path may be and still
	// share the requests with it (balanced by load); zero means 5%.
	Tolerance float64
	// Hysteresis is how much costlier than the best a path that shared the
	// requests before may become before it is dropped; zero means 10%. It
	// keeps estimates that wobble around the Tolerance from flapping.
	Hysteresis float64
	// Slack is an absolute margin added to both, so that sub-millisecond
	// noise between equal paths does not split them; zero means 200µs.
	Slack time.Duration
	// RelayCost is the processing time a relay hop adds on top of the
	// RTTs; zero means 500µs.
	RelayCost time.Duration
	// UnknownRTT is the cost assumed for a node without an RTT estimate
	// yet; zero means 1s, so such paths are used only as a last resort.
	UnknownRTT time.Duration
}

func (o Options) withDefaults() Options {
	o.Tolerance = cmp.Or(o.Tolerance, 0.05)
	o.Hysteresis = cmp.Or(o.Hysteresis, 0.10)
	o.Slack = cmp.Or(o.Slack, 200*time.Microsecond)
	o.RelayCost = cmp.Or(o.RelayCost, 500*time.Microsecond)
	o.UnknownRTT = cmp.Or(o.UnknownRTT, time.Second)
	return o
}

// Scored is a candidate with its expected cost and whether it may be used.
type Scored struct {
	Candidate
	// Cost is the expected latency of the path: NodeRTT + RelayCost (relay
	// only) + ConnectorRTT.
	Cost time.Duration
	// Eligible reports whether the path may take requests at all.
	Eligible bool
	// Why explains an ineligible path, or notes how an eligible one was
	// costed.
	Why string
}

// Decision is the outcome for one group: the scored candidates, best
// first, and how many of the leading ones share the group's requests.
type Decision struct {
	Group    string
	Strategy Strategy
	// Candidates holds the eligible paths by increasing cost, then the
	// ineligible ones.
	Candidates []Scored
	// Tier is the number of leading Candidates that take requests,
	// balanced by load (or uniformly, for Random); zero when none may.
	Tier int
	// Held lists the paths kept in the tier by hysteresis only.
	Held []string
}

// Chosen returns the paths that take requests.
func (d *Decision) Chosen() []Scored {
	if d == nil {
		return nil
	}
	return d.Candidates[:d.Tier]
}

// Decide scores cands for group under the constraints and strategy. prev is
// the previous decision for the group (nil at first); its tier members get
// the benefit of Options.Hysteresis.
func Decide(group string, cands []Candidate, c Constraints, s Strategy, prev *Decision, o Options) Decision {
	o = o.withDefaults()
	d := Decision{Group: group, Strategy: s, Candidates: make([]Scored, 0, len(cands))}
	for _, cand := range cands {
		d.Candidates = append(d.Candidates, score(cand, c, o))
	}
	lastResort(d.Candidates)
	slices.SortStableFunc(d.Candidates, func(a, b Scored) int {
		if a.Eligible != b.Eligible {
			if a.Eligible {
				return -1
			}
			return 1
		}
		if a.Cost != b.Cost {
			return cmp.Compare(a.Cost, b.Cost)
		}
		return cmp.Compare(a.Key(), b.Key())
	})
	eligible := 0
	for eligible < len(d.Candidates) && d.Candidates[eligible].Eligible {
		eligible++
	}
	if eligible == 0 {
		return d
	}
	switch s {
	case Random:
		d.Tier = eligible
	case Nearest:
		d.Tier = nearestTier(d.Candidates[:eligible])
	default:
		d.latencyTier(eligible, prev, o)
	}
	return d
}

func score(cand Candidate, c Constraints, o Options) Scored {
	sc := Scored{Candidate: cand, Eligible: true}
	switch {
	case cand.Unusable != "":
		sc.Eligible, sc.Why = false, cand.Unusable
	case c.PinRegion != "" && cand.Region != c.PinRegion:
		sc.Eligible, sc.Why = false, "group pinned to region "+c.PinRegion
	case slices.Contains(c.ExcludeRegions, cand.Region):
		sc.Eligible, sc.Why = false, "region "+cand.Region+" excluded for the group"
	}
	sc.Cost = cand.ConnectorRTT
	if !cand.Local {
		rtt := cand.NodeRTT
		if !cand.NodeRTTKnown {
			rtt = o.UnknownRTT
			if sc.Eligible {
				sc.Why = "no RTT estimate to the node yet"
			}
		}
		sc.Cost += rtt + o.RelayCost
	}
	return sc
}

// lastResort keeps the paths through a draining node eligible only when no
// other path is: a draining node still serves until it is gone, so a group
// with no other path keeps being served through it.
func lastResort(cs []Scored) {
	other := false
	for _, c := range cs {
		other = other || (c.Eligible && !c.Draining)
	}
	for i := range cs {
		switch {
		case !cs[i].Eligible || !cs[i].Draining:
		case other:
			cs[i].Eligible, cs[i].Why = false, "node draining"
		default:
			cs[i].Why = "node draining; the only path left"
		}
	}
}

// nearestTier moves to the front every local path, or else the eligible
// relay whose node id sorts first, and returns how many it moved.
func nearestTier(cs []Scored) int {
	var front, rest []Scored
	for _, c := range cs {
		if c.Local {
			front = append(front, c)
		} else {
			rest = append(rest, c)
		}
	}
	if len(front) == 0 {
		first := 0
		for i, c := range rest {
			if c.Node < rest[first].Node {
				first = i
			}
		}
		front = append(front, rest[first])
		rest = slices.Delete(rest, first, first+1)
	}
	copy(cs, append(front, rest...))
	return len(front)
}

// latencyTier moves to the front the eligible paths within Tolerance of the
// best, plus those of prev's tier still within Hysteresis.
func (d *Decision) latencyTier(eligible int, prev *Decision, o Options) {
	cs := d.Candidates[:eligible]
	best := cs[0].Cost
	enter := time.Duration(float64(best)*(1+o.Tolerance)) + o.Slack
	stay := time.Duration(float64(best)*(1+o.Hysteresis)) + o.Slack
	was := map[string]bool{}
	for _, c := range prev.Chosen() {
		was[c.Key()] = true
	}
	in := make([]Scored, 0, len(cs))
	out := make([]Scored, 0, len(cs))
	for _, c := range cs {
		switch {
		case c.Cost <= enter:
			in = append(in, c)
		case was[c.Key()] && c.Cost <= stay:
			in = append(in, c)
			d.Held = append(d.Held, c.Key())
		default:
			out = append(out, c)
		}
	}
	d.Tier = len(in)
	copy(cs, append(in, out...))
}
