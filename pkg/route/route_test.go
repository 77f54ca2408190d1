package route

import (
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
	first := Decide("g", []Candidate{relay("a", "r", 100*ms, 0), relay("b", "r", 100*ms, 0)}, Constraints{}, Latency, nil, Options{})
	if first.Tier != 2 {
		t.Fatalf("got tier %d, want 2", first.Tier)
	}
	held := Decide("g", []Candidate{relay("a", "r", 100*ms, 0), relay("b", "r", 108*ms, 0)}, Constraints{}, Latency, &first, Options{})
	if diff := cmp.Diff([]string{"node/a", "node/b"}, keys(held.Chosen())); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"node/b"}, held.Held); diff != "" {
		t.Errorf("Held (-want +got):\n%s", diff)
	}
	fresh := Decide("g", []Candidate{relay("a", "r", 100*ms, 0), relay("b", "r", 108*ms, 0)}, Constraints{}, Latency, nil, Options{})
	if fresh.Tier != 1 {
		t.Errorf("without history got tier %d, want 1", fresh.Tier)
	}
	dropped := Decide("g", []Candidate{relay("a", "r", 100*ms, 0), relay("b", "r", 115*ms, 0)}, Constraints{}, Latency, &held, Options{})
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
