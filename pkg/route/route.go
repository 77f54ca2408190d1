// Package route chooses, for each connector group, the paths a mesh node
// sends the group's requests along: a connector attached to this node, or a
// relay through another mesh node that has one attached. It is pure: the
// mesh node feeds it candidates built from its own connector pool, the
// gossiped attachments of the other nodes, the RTT its relay paths'
// probes measure through the mesh tunnel and the Vivaldi RTT estimates,
// and it returns a Decision that the request path reads (which paths may
// take the next request) and that the explain endpoint prints.
//
// # The RTT to a relay node
//
// A relay path's cost starts from the RTT to its node. A fresh measurement
// through the tunnel (the relay path's own probes, younger than
// Options.MeasuredMaxAge) is used first: it is the path requests really
// take, and it is right from the first probe, where the Vivaldi
// coordinates start out low (about 40% on the default matrix) and take
// tens of seconds to settle. Without a fresh measurement the coordinates'
// estimate is used, so a path whose probes stopped answering is not held
// to an old figure; then a stale measurement; then Options.UnknownRTT.
// Scored.RTTSource says which. A relay node that has not measured its
// connector yet (it just attached; ConnectorRTT zero) costs UnknownRTT
// more: a path is not free because nothing is known of it. The
// hysteresis of the latency tier
// (Options.Hysteresis) keeps a measurement that wobbles from flapping the
// route.
//
// # Estimate error
//
// The estimate error of a path is |Scored.RTT − true RTT| / true RTT,
// where the true RTT is that of the network alone (this node → relay node
// → connector, or this node → connector for a local path): how far the
// route's view of the path is from the path. EstimateError computes it.
//
// It sits at step 5 of the request path ("route") in DESIGN.md, between the
// policy check and the tunnel.
package route

import (
	"cmp"
	"fmt"
	"math"
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
	// MeasuredRTT is the RTT to Node measured through the mesh tunnel by
	// the relay path's probes (smoothed); zero when never measured.
	// MeasuredAge is how long ago the last probe that measured it
	// answered.
	MeasuredRTT time.Duration
	MeasuredAge time.Duration
	// ConnectorRTT is Node's measured RTT to the connector through the
	// tunnel; zero when not measured yet, which costs a relay path
	// Options.UnknownRTT more (a last resort until it is measured).
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
	// yet, and added for a relay node's connector it has not measured yet;
	// zero means 1s, so such paths are used only as a last resort.
	UnknownRTT time.Duration
	// MeasuredMaxAge is how old a tunnel measurement of a relay node's
	// RTT (Candidate.MeasuredRTT) may be and still be preferred to the
	// Vivaldi estimate; zero means 2s (eight probes at the default
	// interval).
	MeasuredMaxAge time.Duration
}

func (o Options) withDefaults() Options {
	o.Tolerance = cmp.Or(o.Tolerance, 0.05)
	o.Hysteresis = cmp.Or(o.Hysteresis, 0.10)
	o.Slack = cmp.Or(o.Slack, 200*time.Microsecond)
	o.RelayCost = cmp.Or(o.RelayCost, 500*time.Microsecond)
	o.UnknownRTT = cmp.Or(o.UnknownRTT, time.Second)
	o.MeasuredMaxAge = cmp.Or(o.MeasuredMaxAge, 2*time.Second)
	return o
}

// RTTSource says where a relay path's node RTT came from (see the
// package documentation).
type RTTSource string

const (
	// SourceLocal: a local path has no relay hop.
	SourceLocal RTTSource = "local"
	// SourceMeasured: a fresh measurement through the mesh tunnel.
	SourceMeasured RTTSource = "measured"
	// SourceCoordinates: the Vivaldi estimate.
	SourceCoordinates RTTSource = "coordinates"
	// SourceStale: a measurement older than Options.MeasuredMaxAge, for
	// want of coordinates.
	SourceStale RTTSource = "stale measurement"
	// SourceUnknown: nothing yet; Options.UnknownRTT.
	SourceUnknown RTTSource = "unknown"
)

// Scored is a candidate with its expected cost and whether it may be used.
type Scored struct {
	Candidate
	// RTT is the path's estimated round trip: the node RTT from RTTSource
	// (zero for a local path) + ConnectorRTT; zero when the node RTT is
	// unknown (SourceUnknown) or a relay's ConnectorRTT is not measured
	// yet, whose cost (UnknownRTT) is no estimate.
	RTT time.Duration
	// RTTSource says which node RTT RTT used.
	RTTSource RTTSource
	// Cost is the expected latency of the path: RTT + RelayCost (relay
	// only).
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
	sc.RTT, sc.RTTSource, sc.Cost = cand.ConnectorRTT, SourceLocal, cand.ConnectorRTT
	if !cand.Local {
		rtt, src := nodeRTT(cand, o)
		if src == SourceUnknown && sc.Eligible {
			sc.Why = "no RTT estimate to the node yet"
		}
		sc.RTT += rtt
		sc.RTTSource = src
		sc.Cost = sc.RTT + o.RelayCost
		if cand.ConnectorRTT <= 0 {
			// The relay node has not measured its connector yet (it just
			// attached): a zero would make the path look free.
			sc.Cost += o.UnknownRTT
			if sc.Eligible && src != SourceUnknown {
				sc.Why = "the relay node has not measured its connector yet"
			}
		}
		if src == SourceUnknown || cand.ConnectorRTT <= 0 {
			sc.RTT = 0 // no estimate: UnknownRTT is a cost, not a guess
		}
	}
	return sc
}

// nodeRTT returns the RTT to a relay candidate's node and where it came
// from: a fresh tunnel measurement, else the coordinates, else a stale
// measurement, else o.UnknownRTT.
func nodeRTT(c Candidate, o Options) (time.Duration, RTTSource) {
	measured := c.MeasuredRTT > 0
	switch {
	case measured && c.MeasuredAge <= o.MeasuredMaxAge:
		return c.MeasuredRTT, SourceMeasured
	case c.NodeRTTKnown:
		return c.NodeRTT, SourceCoordinates
	case measured:
		return c.MeasuredRTT, SourceStale
	}
	return o.UnknownRTT, SourceUnknown
}

// EstimateError returns |estimate − truth| / truth: how far a path's
// estimated RTT (Scored.RTT) is from its true RTT, as a fraction. It
// returns 0 when both are zero and +Inf when only truth is.
func EstimateError(estimate, truth time.Duration) float64 {
	diff := float64(estimate - truth)
	if diff < 0 {
		diff = -diff
	}
	if truth <= 0 {
		if diff == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return diff / float64(truth)
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
