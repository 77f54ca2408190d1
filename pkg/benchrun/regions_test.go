package benchrun

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/simnet"
)

// att is an attachment of a connector in region conn to the regions
// system's node of region node.
func att(conn, node string) harness.Attachment {
	return harness.Attachment{ConnectorRegion: conn, Node: NodeID(node), NodeRegion: node}
}

// triangle returns a matrix of regions a, b and c with 10 ms from a to b
// and from b to c, ac from a to c, and the given intra-region RTTs of b
// and c (a's is 1 ms).
func triangle(t *testing.T, intraB, intraC, ac float64) *simnet.Matrix {
	t.Helper()
	m, err := simnet.ParseMatrix(fmt.Appendf(nil, `regions:
  - name: a
    intra_rtt_ms: 1
  - name: b
    intra_rtt_ms: %g
  - name: c
    intra_rtt_ms: %g
links:
  - between: [a, b]
    rtt_ms: 10
  - between: [b, c]
    rtt_ms: 10
  - between: [a, c]
    rtt_ms: %g
`, intraB, intraC, ac))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOptimalMS(t *testing.T) {
	def := simnet.DefaultMatrix()
	one, err := simnet.ParseMatrix([]byte("regions:\n  - name: solo\n    intra_rtt_ms: 3\nlinks: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A hand-made triangle where the relay through b beats the direct
	// link a–c (10 + 10 < 50), and b has a slow intra-region RTT.
	tri := triangle(t, 4, 2, 50)
	// The default run: each connector attached to its 2 nearest nodes.
	// us-east-1's: its own and eu-west-1 (80.5 ms, nearer than us-west-2
	// at 87.8); ap-southeast-1's: its own and us-west-2 (161.4 ms).
	attached := []harness.Attachment{att("us-east-1", "us-east-1"), att("us-east-1", "eu-west-1"),
		att("ap-southeast-1", "ap-southeast-1"), att("ap-southeast-1", "us-west-2")}
	// What the scenario assumed before: every connector reached through
	// its own region's node.
	ownOnly := []harness.Attachment{att("us-east-1", "us-east-1"), att("ap-southeast-1", "ap-southeast-1")}
	cases := []struct {
		name string
		m    *simnet.Matrix
		user string
		atts []harness.Attachment
		want float64
	}{
		{"local connector", def, "us-east-1", attached, 1 + 1},
		{"other local connector", def, "ap-southeast-1", attached, 1 + 1},
		// The case: the us-east-1 connector is attached to the
		// eu-west-1 node itself, so the user's node reaches it directly
		// over the 80.5 ms link — 1 ms less than through the us-east-1
		// node.
		{"eu-west-1 with its attached connector", def, "eu-west-1", attached, 1 + 80.5},
		{"eu-west-1 through own-region nodes only", def, "eu-west-1", ownOnly, 1 + 80.5 + 1},
		// us-west-2's node has the ap-southeast-1 connector attached
		// (161.4 ms), but relaying through the us-east-1 node to its local
		// connector is cheaper (87.8 + 1).
		{"us-west-2 relays rather than take its direct attachment", def, "us-west-2", attached, 1 + 87.8 + 1},
		{"us-west-2 with only the direct attachment", def, "us-west-2", []harness.Attachment{att("ap-southeast-1", "us-west-2")}, 1 + 161.4},
		{"only the far one", def, "eu-west-1", []harness.Attachment{att("ap-southeast-1", "ap-southeast-1")}, 1 + 238.6 + 1},
		// Connector in c attached to b only: a → b → c beats nothing else.
		{"relay through a slow-intra node", tri, "a", []harness.Attachment{att("c", "b")}, 1 + 10 + 10},
		// Connector in c attached to c and b: through b (20) beats the
		// direct link to c's node (50 + 2).
		{"relay beats the direct link", tri, "a", []harness.Attachment{att("c", "c"), att("c", "b")}, 1 + 10 + 10},
		// Connector in b attached to c only: a → c → b (50 + 10) although
		// b itself is 10 away: only attachments count.
		{"only attachments count", tri, "a", []harness.Attachment{att("b", "c")}, 1 + 50 + 10},
		// Connector in b attached to b, user in b: b's intra RTT twice.
		{"local with a slow intra-region RTT", tri, "b", []harness.Attachment{att("b", "b")}, 4 + 4},
		{"one region", one, "solo", []harness.Attachment{att("solo", "solo")}, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := OptimalMS(tc.m, tc.user, tc.atts)
			if !ok || got != tc.want {
				t.Errorf("got %v (ok %t), want %v", got, ok, tc.want)
			}
		})
	}
	if got, ok := OptimalMS(def, "us-east-1", nil); ok {
		t.Errorf("no attachment: got %v, ok; want not ok", got)
	}
}

func TestRegionsWorkers(t *testing.T) {
	def := simnet.DefaultMatrix()
	conns := ConnectorRegions(def)
	cases := []struct {
		user     string
		strategy route.Strategy
		want     int
	}{
		{"us-east-1", route.Latency, 1},      // 2 ms path: 200 requests at ~5 ms fit 2 s alone
		{"ap-southeast-1", route.Nearest, 1}, // likewise
		{"us-west-2", route.Latency, 10},     // ceil(200 × (89.8 + 3) / 2000)
		{"eu-west-1", route.Nearest, 9},      // ceil(200 × (82.5 + 3) / 2000)
		// random may take the slowest path: from us-east-1 through
		// eu-west-1 to ap-southeast-1 is 1 + 80.5 + 238.6 ms:
		// ceil(200 × 323.1 / 2000) = 33, capped at 32.
		{"us-east-1", route.Random, regionsMaxWorkers},
		// A matrix whose slowest path is short: a → b → c is 1 + 10 + 10.
		{"a", route.Random, 3},  // ceil(200 × 24 / 2000)
		{"a", route.Latency, 2}, // the optimum a → c: ceil(200 × (1 + 15 + 1 + 3) / 2000)
	}
	small := triangle(t, 1, 1, 15)
	for _, tc := range cases {
		m, conns := def, conns
		if len(tc.user) == 1 {
			m, conns = small, []string{"c"}
		}
		if got := regionsWorkers(m, tc.user, conns, tc.strategy); got != tc.want {
			t.Errorf("%s %s: got %d workers, want %d", tc.strategy, tc.user, got, tc.want)
		}
	}
	far, err := simnet.ParseMatrix([]byte("regions:\n  - name: a\n  - name: b\nlinks:\n  - between: [a, b]\n    rtt_ms: 900\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := regionsWorkers(far, "a", []string{"b"}, route.Latency); got != regionsMaxWorkers {
		t.Errorf("900 ms path: got %d workers, want the cap %d", got, regionsMaxWorkers)
	}
	if got := regionsWorkers(far, "a", nil, route.Random); got != 1 {
		t.Errorf("no connector: got %d workers, want 1", got)
	}
}

func TestConnectorRegions(t *testing.T) {
	one, err := simnet.ParseMatrix([]byte("regions:\n  - name: solo\nlinks: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"us-east-1", "ap-southeast-1"}, ConnectorRegions(simnet.DefaultMatrix())); d != "" {
		t.Errorf("default matrix (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"solo"}, ConnectorRegions(one)); d != "" {
		t.Errorf("one region (-want +got):\n%s", d)
	}
}

func TestRegionVariants(t *testing.T) {
	m, err := simnet.ParseMatrix([]byte("regions:\n  - name: a\n  - name: b\nlinks:\n  - between: [a, b]\n    rtt_ms: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Variant{{"latency", "a"}, {"latency", "b"}, {"nearest", "a"}, {"nearest", "b"}, {"random", "a"}, {"random", "b"}}
	if d := cmp.Diff(want, regionVariants(Config{Matrix: m})); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if got := len(regionVariants(Config{})); got != 12 {
		t.Errorf("default matrix: got %d rows, want 12", got)
	}
}

func TestAnnotateRegions(t *testing.T) {
	row := func(strategy, region string, p50, opt float64) Result {
		return Result{Scenario: "regions", Concurrency: 1, Strategy: strategy, UserRegion: region, P50: p50, OptimalMS: ptr(opt)}
	}
	rows := []Result{
		row("latency", "a", 2.1, 2), row("nearest", "a", 2.0, 2), row("random", "a", 50, 2), // tie within noise (0.5 ms floor)
		row("latency", "b", 100, 80), row("nearest", "b", 90, 80), row("random", "b", 120, 80), // too slow: neither
		row("latency", "c", 0, 5), row("nearest", "c", 6, 5), // no successful request: neither
		row("latency", "d", 5.5, 5),                                                           // alone: nothing to be lowest against
		row("latency", "e", 80, 80), row("nearest", "e", 90, 80), row("random", "e", 200, 80), // clearly lowest
		row("latency", "f", 80, 78), row("nearest", "f", 83.9, 78), // 3.9 below, within 5% of 83.9: a tie, not lowest
		row("latency", "g", 84, 78), row("random", "g", 80.1, 78), // 3.9 above, within 5%: a tie
		row("latency", "h", 2.0, 2), row("nearest", "h", 2.6, 2), // 0.6 below, beyond the 0.5 ms floor: lowest
		row("latency", "i", 5, 5), row("nearest", "i", 0, 5), row("random", "i", 0, 5), // competitors all failed: unset
		row("latency", "j", 80, 78), {Scenario: "regions", Concurrency: 31, Strategy: "random", UserRegion: "j", P50: 250}, // sized apart: still a competitor
		row("latency", "k", 2.4, 2), row("latency", "l", 2.45, 2), // target: 2 × 1.05 + 0.3 = 2.4 met, 2.45 not
	}
	annotate(rows)
	cases := []struct {
		row                 int
		target, lowest, tie *bool
	}{
		{0, ptr(true), ptr(false), ptr(true)},
		{1, nil, nil, nil},
		{3, ptr(false), ptr(false), ptr(false)},
		{6, ptr(false), ptr(false), ptr(false)},
		{8, ptr(true), nil, nil},
		{9, ptr(true), ptr(true), ptr(false)},
		{12, ptr(true), ptr(false), ptr(true)},
		{14, ptr(false), ptr(false), ptr(true)}, // 84 > 78 × 1.05 + 0.3
		{23, ptr(true), nil, nil},
		{24, ptr(false), nil, nil},
		{16, ptr(true), ptr(true), ptr(false)},
		{18, ptr(true), nil, nil},
		{21, ptr(true), ptr(true), ptr(false)},
	}
	for _, tc := range cases {
		r := rows[tc.row]
		t.Run(r.Name(), func(t *testing.T) {
			if d := cmp.Diff(tc.target, r.TargetMet); d != "" {
				t.Errorf("target_met (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.lowest, r.LowestP50); d != "" {
				t.Errorf("lowest_p50 (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.tie, r.TieP50); d != "" {
				t.Errorf("tie_p50 (-want +got):\n%s", d)
			}
		})
	}
}

func TestRegionsChart(t *testing.T) {
	var rows []Result
	for _, s := range []string{"latency", "nearest", "random"} {
		for i, r := range []string{"us-east-1", "eu-west-1"} {
			rows = append(rows, Result{Scenario: "regions", Concurrency: 1, Strategy: s, UserRegion: r, Requests: 5,
				P50: 10 * float64(i+1), OptimalMS: ptr(9.0 * float64(i+1))})
		}
	}
	rows = append(rows, Result{Scenario: "tunnel", Concurrency: 1, Requests: 5, P50: 0.3})
	charts := Charts(rows)
	svg, ok := charts["regions.svg"]
	if !ok {
		t.Fatalf("got charts %v, want regions.svg", len(charts))
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	rects, dashed := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("regions.svg is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				switch {
				case se.Name.Local == "rect" && a.Name.Local == "fill" && a.Value != "#ffffff":
					rects++
				case se.Name.Local == "line" && a.Name.Local == "stroke-dasharray":
					dashed++
				}
			}
		}
	}
	if rects != 6+3 { // six bars and three legend swatches
		t.Errorf("coloured rects: got %d, want 9", rects)
	}
	if dashed != 2+1 { // one optimal line per region and the legend's
		t.Errorf("dashed lines: got %d, want 3", dashed)
	}
	for _, want := range []string{">us-east-1<", ">eu-west-1<", ">latency<", ">random<"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("regions.svg lacks %q", want)
		}
	}
	if p50 := string(charts["p50.svg"]); strings.Contains(p50, "regions") || !strings.Contains(p50, "tunnel c=1") {
		t.Errorf("p50.svg: want the tunnel row only, got:\n%s", p50)
	}
}

func TestMaxWarmupCapsWarmup(t *testing.T) {
	var warm time.Duration
	s := Scenario{Name: "w", Concurrency: []int{1}, MaxWarmup: 10 * time.Millisecond, Open: func(_ context.Context, _ System, _ Params) (*Row, error) {
		return &Row{Op: func(context.Context, *atomic.Int64) error { return nil }, OnWindow: func(start, _ time.Time) {
			warm = time.Until(start)
		}}, nil
	}}
	if _, err := RunOn(t.Context(), nil, []Scenario{s}, Config{Warmup: time.Hour, Requests: 1}); err != nil {
		t.Fatal(err)
	}
	if warm > time.Minute {
		t.Errorf("warm-up: got %v, want at most the 10ms cap", warm)
	}
}

// TestMinRequestsAndRowConcurrency: a scenario with MinRequests records
// at least that many requests even when the configured window is far too
// short for them, runs with the workers its Row asks for and reports
// them; an explicit Config.Requests (a quick check) still wins.
func TestMinRequestsAndRowConcurrency(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) }))
	defer srv.Close()
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	s := fakeScenario("regions", "", srv.URL, false, 1)
	s.FixedConcurrency, s.Prime, s.MinRequests = true, true, 200
	open := s.Open
	s.Open = func(ctx context.Context, sys System, p Params) (*Row, error) {
		row, err := open(ctx, sys, Params{Concurrency: 3})
		if err != nil {
			return nil, err
		}
		row.Concurrency = 3
		return row, nil
	}
	rep, err := RunOn(t.Context(), nil, []Scenario{s}, Config{Duration: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Rows[0]; r.Requests < 200 || r.Concurrency != 3 || r.Errors != 0 {
		t.Errorf("got %d requests at c=%d with %d errors, want at least 200 at c=3 and none", r.Requests, r.Concurrency, r.Errors)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("got %d connections, want 3 (one per worker)", n)
	}
	rep, err = RunOn(t.Context(), nil, []Scenario{s}, Config{Requests: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Rows[0]; r.Requests < 7 || r.Requests >= 200 {
		t.Errorf("with --requests 7: got %d requests, want 7 (up to a few in flight)", r.Requests)
	}
}
