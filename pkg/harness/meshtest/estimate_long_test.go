//go:build long

package meshtest

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/simnet"
)

// TestFigureRouteEstimateError measures the route estimate error of the
// regions bench's system (one node per region of the default matrix,
// group "shared" with a connector in us-east-1 and one in ap-southeast-1)
// 5, 10, 20 and 40 s after the harness starts (the nodes' start-up
// included): for every eligible relay path of every node,
// route.EstimateError of the route's estimate (explain's rtt_ms) and,
// for comparison, of the coordinates' estimate (coord_rtt_ms +
// connector_rtt_ms), against the matrix's path RTT. It logs the worst of
// each and fails when the route's worst at 10 s is above 10% (issue 16's
// target). Run it alone, on a quiet machine: go test -tags long -run
// TestFigureRouteEstimateError -v ./pkg/harness/meshtest/
func TestFigureRouteEstimateError(t *testing.T) {
	m := simnet.DefaultMatrix()
	top := &harness.Topology{Net: simnet.NewNetwork(m, uint64(time.Now().UnixNano())), Groups: []harness.GroupSpec{{ID: "shared"}}}
	for _, r := range m.Regions() {
		top.Nodes = append(top.Nodes, harness.NodeSpec{ID: "n-" + r, Region: r})
	}
	top.Connectors = []harness.ConnectorSpec{{Group: "shared", Region: east}, {Group: "shared", Region: asia}}
	start := time.Now()
	h, err := harness.Start(t.Context(), harness.Options{Topology: top})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	t.Logf("harness started in %v", time.Since(start).Round(time.Millisecond))
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	for _, at := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second} {
		time.Sleep(time.Until(start.Add(at)))
		worstRoute, worstCoord, paths := 0.0, 0.0, 0
		var worstPath string
		for i, mm := range h.Meshes() {
			ex, err := mm.Node.Explain("app-shared")
			if err != nil {
				t.Fatal(err)
			}
			from := h.RegionOf(i)
			for _, p := range ex.Paths {
				conn := h.ConnectorRegion(p.Connector)
				if p.Via == "local" || !p.Eligible || p.Region == "" || conn == "" || p.RTTMs <= 0 {
					continue
				}
				truth := harness.PathRTT(m, from, p.Region, conn, false)
				paths++
				if e := route.EstimateError(ms(p.RTTMs), truth); e > worstRoute {
					worstRoute, worstPath = e, describe(mm.ID, p, truth)
				}
				if p.CoordRTTMs > 0 {
					worstCoord = math.Max(worstCoord, route.EstimateError(ms(p.CoordRTTMs+p.ConnectorRTTMs), truth))
				}
			}
		}
		t.Logf("%v after the start: %d eligible relay paths; worst route estimate error %.1f%% (%s); from the coordinates alone it would be %.1f%%",
			at, paths, 100*worstRoute, worstPath, 100*worstCoord)
		if at == 10*time.Second && (paths == 0 || worstRoute > 0.10) {
			t.Errorf("10 s after the start: %d paths, worst route estimate error %.1f%%, want ≤ 10%%", paths, 100*worstRoute)
		}
	}
}

func describe(node string, p meshnode.ExplainPath, truth time.Duration) string {
	return fmt.Sprintf("%s via %s to %s: estimated %.1f ms from %s, true %v", node, p.Via, p.Connector, p.RTTMs, p.RTTSource, truth)
}
