package benchrun

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/postern/postern/pkg/simnet"
)

func TestOptimalMS(t *testing.T) {
	def := simnet.DefaultMatrix()
	one, err := simnet.ParseMatrix([]byte("regions:\n  - name: solo\n    intra_rtt_ms: 3\nlinks: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	both := []string{"us-east-1", "ap-southeast-1"}
	cases := []struct {
		name  string
		m     *simnet.Matrix
		user  string
		conns []string
		want  float64
	}{
		{"local connector", def, "us-east-1", both, 2},
		{"other local connector", def, "ap-southeast-1", both, 2},
		{"nearest remote", def, "us-west-2", both, 1 + 87.8 + 1},
		{"eu via us-east-1", def, "eu-west-1", both, 1 + 80.5 + 1},
		{"only the far one", def, "eu-west-1", []string{"ap-southeast-1"}, 1 + 238.6 + 1},
		{"one region", one, "solo", []string{"solo"}, 6},
		{"no connector", def, "us-east-1", nil, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := OptimalMS(tc.m, tc.user, tc.conns); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
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
		row("latency", "a", 2.1, 2), row("nearest", "a", 2.0, 2), row("random", "a", 50, 2), // tie within noise
		row("latency", "b", 100, 80), row("nearest", "b", 90, 80), row("random", "b", 120, 80), // too slow, not lowest
		row("latency", "c", 0, 5), row("nearest", "c", 6, 5), // no successful request
		row("latency", "d", 5.5, 5), // alone
	}
	annotate(rows)
	cases := []struct {
		row            int
		target, lowest *bool
	}{
		{0, ptr(true), ptr(true)},
		{1, nil, nil},
		{3, ptr(false), ptr(false)},
		{6, ptr(false), ptr(false)},
		{8, ptr(true), ptr(true)},
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
