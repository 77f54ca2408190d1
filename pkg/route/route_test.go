package route

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const ms = time.Millisecond

func local(conn string, rtt time.Duration) Candidate {
	return Candidate{Node: "a", Region: "us-east-1", Local: true, Connector: conn, ConnectorRTT: rtt}
}

func relay(node, region string, nodeRTT, connRTT time.Duration) Candidate {
	return Candidate{Node: node, Region: region, Connector: "c-" + node, NodeRTT: nodeRTT, NodeRTTKnown: true, ConnectorRTT: connRTT}
}

func draining(c Candidate) Candidate { c.Draining = true; return c }

func keys(ss []Scored) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Key())
	}
	return out
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name  string
		cands []Candidate
		cons  Constraints
		strat Strategy
		want  []string // chosen keys in order
	}{
		{"no candidates", nil, Constraints{}, Latency, nil},
		{"local beats relay", []Candidate{relay("b", "us-east-1", 1*ms, 1*ms), local("c1", 1*ms)}, Constraints{}, Latency, []string{"local/c1"}},
		{"nearer relay region wins", []Candidate{relay("eu", "eu-west-1", 70*ms, 1*ms), relay("ap", "ap-southeast-1", 170*ms, 1*ms)},
			Constraints{}, Latency, []string{"node/eu"}},
		{"equal relays share", []Candidate{relay("b1", "us-east-1", 75*ms, 1*ms), relay("b2", "us-east-1", 75500*time.Microsecond, 1*ms)},
			Constraints{}, Latency, []string{"node/b1", "node/b2"}},
		{"far local connector loses to a near relay", []Candidate{local("slow", 200*ms), relay("b", "eu-west-1", 10*ms, 1*ms)},
			Constraints{}, Latency, []string{"node/b"}},
		{"pinned region", []Candidate{relay("eu", "eu-west-1", 70*ms, 1*ms), relay("ap", "ap-southeast-1", 170*ms, 1*ms)},
			Constraints{PinRegion: "ap-southeast-1"}, Latency, []string{"node/ap"}},
		{"excluded region", []Candidate{relay("eu", "eu-west-1", 70*ms, 1*ms), relay("ap", "ap-southeast-1", 170*ms, 1*ms)},
			Constraints{ExcludeRegions: []string{"eu-west-1"}}, Latency, []string{"node/ap"}},
		{"unusable skipped", []Candidate{{Node: "a", Local: true, Connector: "d", Unusable: "connector draining"}, relay("b", "x", 5*ms, 1*ms)},
			Constraints{}, Latency, []string{"node/b"}},
		{"draining node avoided while another path exists", []Candidate{draining(relay("b", "x", 5*ms, 1*ms)), relay("c", "x", 50*ms, 1*ms)},
			Constraints{}, Latency, []string{"node/c"}},
		{"draining node used when it is the only path", []Candidate{draining(relay("b", "x", 5*ms, 1*ms)), {Node: "c", Unusable: "node unreachable"}},
			Constraints{}, Latency, []string{"node/b"}},
		{"draining nodes share when they are all that is left", []Candidate{draining(relay("b", "x", 5*ms, 1*ms)), draining(relay("c", "x", 5*ms, 1*ms))},
			Constraints{}, Latency, []string{"node/b", "node/c"}},
		{"a draining node in an excluded region stays unused", []Candidate{draining(relay("b", "x", 5*ms, 1*ms))},
			Constraints{ExcludeRegions: []string{"x"}}, Latency, nil},
		{"unknown RTT last resort", []Candidate{{Node: "new", Connector: "x"}, relay("b", "x", 300*ms, 1*ms)},
			Constraints{}, Latency, []string{"node/b"}},
		{"unknown RTT when alone", []Candidate{{Node: "new", Connector: "x"}}, Constraints{}, Latency, []string{"node/new"}},
		{"nearest prefers local even when slow", []Candidate{local("slow", 200*ms), relay("b", "eu-west-1", 10*ms, 1*ms)},
			Constraints{}, Nearest, []string{"local/slow"}},
		{"nearest takes first node id", []Candidate{relay("z", "eu-west-1", 10*ms, 1*ms), relay("m", "ap", 200*ms, 1*ms)},
			Constraints{}, Nearest, []string{"node/m"}},
		{"random takes every eligible", []Candidate{relay("z", "eu-west-1", 10*ms, 1*ms), relay("m", "ap", 200*ms, 1*ms),
			{Node: "q", Unusable: "node unreachable"}}, Constraints{}, Random, []string{"node/z", "node/m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide("g", tt.cands, tt.cons, tt.strat, nil, Options{})
			if diff := cmp.Diff(tt.want, keys(d.Chosen())); diff != "" {
				t.Errorf("chosen (-want +got):\n%s", diff)
			}
			if len(d.Candidates) != len(tt.cands) {
				t.Errorf("got %d candidates, want %d", len(d.Candidates), len(tt.cands))
			}
		})
	}
}

func TestDecideExplainsIneligible(t *testing.T) {
	d := Decide("g", []Candidate{relay("eu", "eu-west-1", 70*ms, 1*ms), relay("ap", "ap-southeast-1", 170*ms, 1*ms)},
		Constraints{PinRegion: "ap-southeast-1"}, Latency, nil, Options{})
	last := d.Candidates[1]
	if last.Eligible || last.Why != "group pinned to region ap-southeast-1" {
		t.Errorf("got %+v, want the eu path ineligible with the pin as reason", last)
	}
	if got, want := d.Candidates[0].Cost, 171*ms+500*time.Microsecond; got != want {
		t.Errorf("got cost %v, want %v", got, want)
	}
}

func TestHysteresis(t *testing.T) {
	// b is 8% slower than a: it would not enter the tier, but having been
	// in it, it stays; at 15% it goes.
	first := Decide("g", []Candidate{relay("a", "r", 99*ms, 1*ms), relay("b", "r", 99*ms, 1*ms)}, Constraints{}, Latency, nil, Options{})
	if first.Tier != 2 {
		t.Fatalf("got tier %d, want 2", first.Tier)
	}
	held := Decide("g", []Candidate{relay("a", "r", 99*ms, 1*ms), relay("b", "r", 107*ms, 1*ms)}, Constraints{}, Latency, &first, Options{})
	if diff := cmp.Diff([]string{"node/a", "node/b"}, keys(held.Chosen())); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"node/b"}, held.Held); diff != "" {
		t.Errorf("Held (-want +got):\n%s", diff)
	}
	fresh := Decide("g", []Candidate{relay("a", "r", 99*ms, 1*ms), relay("b", "r", 107*ms, 1*ms)}, Constraints{}, Latency, nil, Options{})
	if fresh.Tier != 1 {
		t.Errorf("without history got tier %d, want 1", fresh.Tier)
	}
	dropped := Decide("g", []Candidate{relay("a", "r", 99*ms, 1*ms), relay("b", "r", 114*ms, 1*ms)}, Constraints{}, Latency, &held, Options{})
	if dropped.Tier != 1 {
		t.Errorf("at 15%% got tier %d, want 1", dropped.Tier)
	}
}

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{"": Latency, "latency": Latency, "nearest": Nearest, "random": Random} {
		if got, err := ParseStrategy(in); err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseStrategy("fastest"); err == nil {
		t.Error("got nil error for an unknown strategy")
	}
}

// measured gives c a tunnel measurement of its node's RTT, age old.
func measured(c Candidate, rtt, age time.Duration) Candidate {
	c.MeasuredRTT, c.MeasuredAge = rtt, age
	return c
}

// The node RTT of a relay path comes from a fresh tunnel measurement
// first, then the coordinates, then a stale measurement, then UnknownRTT;
// RTT and RTTSource say which, and Cost adds RelayCost to RTT.
func TestNodeRTTSources(t *testing.T) {
	const fresh, old = 500 * ms, 3 * time.Second // MeasuredMaxAge is 2s
	tests := []struct {
		name    string
		cand    Candidate
		wantRTT time.Duration
		wantSrc RTTSource
	}{
		{"local", local("c", 3*ms), 3 * ms, SourceLocal},
		{"fresh measurement over coordinates", measured(relay("b", "r", 50*ms, 1*ms), 80*ms, fresh), 81 * ms, SourceMeasured},
		{"a measurement exactly MeasuredMaxAge old is fresh", measured(relay("b", "r", 50*ms, 1*ms), 80*ms, 2*time.Second), 81 * ms, SourceMeasured},
		{"stale measurement loses to coordinates", measured(relay("b", "r", 50*ms, 1*ms), 80*ms, old), 51 * ms, SourceCoordinates},
		{"stale measurement without coordinates", measured(Candidate{Node: "b", Connector: "x", ConnectorRTT: 1 * ms}, 80*ms, old), 81 * ms, SourceStale},
		{"fresh measurement without coordinates", measured(Candidate{Node: "b", Connector: "x", ConnectorRTT: 1 * ms}, 80*ms, 0), 81 * ms, SourceMeasured},
		{"coordinates only", relay("b", "r", 50*ms, 1*ms), 51 * ms, SourceCoordinates},
		{"nothing", Candidate{Node: "b", Connector: "x", ConnectorRTT: 1 * ms}, 0, SourceUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide("g", []Candidate{tt.cand}, Constraints{}, Latency, nil, Options{})
			sc := d.Candidates[0]
			if sc.RTT != tt.wantRTT || sc.RTTSource != tt.wantSrc {
				t.Errorf("got RTT %v from %q, want %v from %q", sc.RTT, sc.RTTSource, tt.wantRTT, tt.wantSrc)
			}
			wantCost := tt.wantRTT
			switch {
			case tt.wantSrc == SourceUnknown:
				wantCost = time.Second + 1*ms + 500*time.Microsecond
			case !tt.cand.Local:
				wantCost += 500 * time.Microsecond
			}
			if sc.Cost != wantCost {
				t.Errorf("got cost %v, want %v", sc.Cost, wantCost)
			}
		})
	}
}

// Coordinates that start out low (as Vivaldi's do) would send requests
// across the Pacific; the tunnel measurement routes them right at once,
// and once the measurement stops (the path's probes no longer answer),
// the coordinates take over again.
func TestMeasuredRTTCorrectsLowCoordinates(t *testing.T) {
	// True RTTs: eu 80 ms, ap 170 ms; the coordinates say eu 100, ap 90.
	eu := relay("eu", "eu-west-1", 100*ms, 1*ms)
	ap := relay("ap", "ap-southeast-1", 90*ms, 1*ms)
	d := Decide("g", []Candidate{eu, ap}, Constraints{}, Latency, nil, Options{})
	if diff := cmp.Diff([]string{"node/ap"}, keys(d.Chosen())); diff != "" {
		t.Fatalf("coordinates alone (-want +got):\n%s", diff)
	}
	d = Decide("g", []Candidate{measured(eu, 80*ms, 0), measured(ap, 170*ms, 0)}, Constraints{}, Latency, &d, Options{})
	if diff := cmp.Diff([]string{"node/eu"}, keys(d.Chosen())); diff != "" {
		t.Errorf("measured (-want +got):\n%s", diff)
	}
	// ap's measurement goes stale while its coordinates now say 60 ms
	// (its network got better): the coordinates win, not the old figure.
	ap.NodeRTT = 60 * ms
	d = Decide("g", []Candidate{measured(eu, 80*ms, 0), measured(ap, 170*ms, 5*time.Second)}, Constraints{}, Latency, &d, Options{})
	if diff := cmp.Diff([]string{"node/ap"}, keys(d.Chosen())); diff != "" {
		t.Errorf("stale (-want +got):\n%s", diff)
	}
}

// A measurement that wobbles within the hysteresis does not flap the
// route: two relays measured 100 and 104 ms (with their 1 ms connectors)
// share the tier; when the second reads 108 ms on one probe it stays
// (held), and back at 104 it is still there.
func TestMeasuredWobbleDoesNotFlap(t *testing.T) {
	a := relay("a", "r", 0, 1*ms)
	b := relay("b", "r", 0, 1*ms)
	var prev *Decision
	for i, rttB := range []time.Duration{103 * ms, 107 * ms, 103 * ms, 108 * ms} {
		d := Decide("g", []Candidate{measured(a, 99*ms, 0), measured(b, rttB, 0)}, Constraints{}, Latency, prev, Options{})
		if diff := cmp.Diff([]string{"node/a", "node/b"}, keys(d.Chosen())); diff != "" {
			t.Fatalf("step %d (b at %v) (-want +got):\n%s", i, rttB, diff)
		}
		prev = &d
	}
}

func TestEstimateError(t *testing.T) {
	for _, tt := range []struct {
		est, truth time.Duration
		want       float64
	}{
		{90 * ms, 100 * ms, 0.1},
		{110 * ms, 100 * ms, 0.1},
		{100 * ms, 100 * ms, 0},
		{60 * ms, 100 * ms, 0.4},
		{0, 0, 0},
	} {
		if got := EstimateError(tt.est, tt.truth); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("EstimateError(%v, %v) = %v, want %v", tt.est, tt.truth, got, tt.want)
		}
	}
	if got := EstimateError(ms, 0); !math.IsInf(got, 1) {
		t.Errorf("EstimateError(1ms, 0) = %v, want +Inf", got)
	}
}

// A relay whose node has not measured its connector yet (ConnectorRTT
// zero: it just attached) is a last resort, not a free path; once
// measured, it competes on its cost.
func TestUnmeasuredConnectorIsLastResort(t *testing.T) {
	fresh := measured(relay("new", "us-west-2", 80*ms, 0), 80*ms, 0) // true path 80 + 161 ms
	known := measured(relay("old", "eu-west-1", 130*ms, 1*ms), 130*ms, 0)
	d := Decide("g", []Candidate{fresh, known}, Constraints{}, Latency, nil, Options{})
	if diff := cmp.Diff([]string{"node/old"}, keys(d.Chosen())); diff != "" {
		t.Errorf("chosen (-want +got):\n%s", diff)
	}
	last := d.Candidates[1]
	if !last.Eligible || last.RTT != 0 || last.Cost != 80*ms+500*time.Microsecond+time.Second || last.Why != "the relay node has not measured its connector yet" {
		t.Errorf("unmeasured connector: got %+v", last)
	}
	d = Decide("g", []Candidate{fresh}, Constraints{}, Latency, nil, Options{})
	if diff := cmp.Diff([]string{"node/new"}, keys(d.Chosen())); diff != "" {
		t.Errorf("alone (-want +got):\n%s", diff)
	}
	fresh.ConnectorRTT = 161 * ms
	d = Decide("g", []Candidate{fresh, known}, Constraints{}, Latency, nil, Options{})
	if diff := cmp.Diff([]string{"node/old"}, keys(d.Chosen())); diff != "" || d.Candidates[1].RTT != 241*ms {
		t.Errorf("measured: chosen (-want +got):\n%s; the new path's RTT %v, want 241ms", diff, d.Candidates[1].RTT)
	}
}
