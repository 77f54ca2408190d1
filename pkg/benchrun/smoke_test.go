package benchrun

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/simnet"
	"github.com/postern/postern/pkg/testkit"
)

// TestSmokeRealSystem runs the whole standard suite briefly through the
// real in-process system: every row completes without errors, the
// comparisons are filled in and the charts are written. No timing is
// asserted.
func TestSmokeRealSystem(t *testing.T) {
	leaks := testkit.Goroutines()
	// Each row ends after 3 requests (a count, not a time window: on a
	// busy machine a 200 ms window may see no download complete); the
	// failover row keeps its own minimum window.
	cfg := Config{Scenarios: StandardSuite(), Warmup: 50 * time.Millisecond, Requests: 3,
		BulkBytes: 256 << 10, Concurrency: []int{1, 4}}
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadResults(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"direct c=1", "direct c=4", "tunnel c=1", "tunnel c=4", "tunnel-auth c=1", "tunnel-auth c=4",
		"tunnel-bearer c=1", "tunnel-bearer c=4", "tunnel-pad c=1", "tunnel-pad c=4", "bulk-direct c=1", "bulk-tunnel c=1", "bulk-tunnel-8 c=8", "websocket c=1", "websocket c=4",
		"tcp c=1", "tcp c=4", "bulk-tcp c=1", "cold c=1", "cold c=4", "failover c=8"}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s c=%d", r.Scenario, r.Concurrency))
		if r.Errors != 0 {
			t.Errorf("%s c=%d: got %d errors (%v), want 0", r.Scenario, r.Concurrency, r.Errors, r.ErrorsByKind)
		}
		if r.MiBs != nil { // a download may outlast a tiny window (as under -race): bytes count, not requests
			if *r.MiBs <= 0 {
				t.Errorf("%s c=%d: got mib_s %v, want > 0", r.Scenario, r.Concurrency, *r.MiBs)
			}
			if r.Scenario == "bulk-tunnel-8" && r.RatioToDirect == nil {
				t.Errorf("bulk-tunnel-8: no ratio to bulk-direct")
			}
			continue
		}
		if r.Requests <= 0 || r.CPUPer1k == nil || r.PeakRSSMiB <= 0 {
			t.Errorf("%s c=%d: got %d requests, cpu_s_per_1k %v, peak_rss_mib %v; want all set", r.Scenario, r.Concurrency, r.Requests, r.CPUPer1k, r.PeakRSSMiB)
		}
		switch r.Scenario {
		case "tunnel", "tunnel-auth", "tunnel-bearer", "tunnel-pad", "cold":
			if r.AddedP50 == nil || r.RatioToDirect == nil {
				t.Errorf("%s c=%d: no comparison with direct", r.Scenario, r.Concurrency)
			}
		case "failover":
			if r.Failed == nil || r.Stalled == nil || r.RecoveryMS == nil {
				t.Errorf("failover: got failed %v stalled %v recovery %v, want all set", r.Failed, r.Stalled, r.RecoveryMS)
			}
		}
		if (r.Scenario == "tunnel-auth" || r.Scenario == "tunnel-bearer" || r.Scenario == "tunnel-pad") && r.RatioToTunnel == nil {
			t.Errorf("%s c=%d: no ratio_to_tunnel", r.Scenario, r.Concurrency)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows: got %v, want %v", got, want)
	}
	for _, f := range []string{"results.md", "machine.json", "charts/p50.svg", "charts/mib_s.svg", "charts/cdf-tunnel-auth.svg", "charts/cdf-failover.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	leaks(t)
}

// TestSmokeExtraSuite runs the extra suite (stream carrier, relay,
// regions) briefly through the real systems: every row completes without
// errors, relay is compared to tunnel, every regions row has its optimum
// and the latency rows their verdicts. No timing is asserted.
func TestSmokeExtraSuite(t *testing.T) {
	leaks := testkit.Goroutines()
	// The default matrix at a tenth of its RTTs; each row ends after 5
	// requests (a count, not a time window, so that the slowest paths
	// complete requests too, under -race or on a busy machine).
	cfg := Config{Scenarios: ExtraSuite(), Warmup: 50 * time.Millisecond, Requests: 5,
		BulkBytes: 256 << 10, Concurrency: []int{1, 4}, Matrix: simnet.DefaultMatrix().Scale(0.1), MatrixName: "default/10"}
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	var got []string
	regions := 0
	for _, r := range rep.Rows {
		got = append(got, fmt.Sprintf("%s c=%d", r.Name(), r.Concurrency))
		if r.Errors != 0 {
			t.Errorf("%s c=%d: got %d errors (%v), want 0", r.Name(), r.Concurrency, r.Errors, r.ErrorsByKind)
		}
		switch r.Scenario {
		case "relay", "tunnel-stream", "bulk-tunnel-stream":
			if r.AddedP50 == nil || r.RatioToDirect == nil {
				t.Errorf("%s c=%d: no comparison with its baseline", r.Scenario, r.Concurrency)
			}
		case "regions":
			regions++
			if r.Requests <= 0 || r.OptimalMS == nil || *r.OptimalMS <= 0 {
				t.Errorf("%s: got %d requests, optimal_ms %v; want both positive", r.Name(), r.Requests, r.OptimalMS)
			}
			if (r.Strategy == "latency") != (r.TargetMet != nil && r.LowestP50 != nil && r.TieP50 != nil) {
				t.Errorf("%s: got target_met %v lowest_p50 %v tie_p50 %v, want all three on latency rows only (every one has competitors)",
					r.Name(), r.TargetMet, r.LowestP50, r.TieP50)
			}
			if r.EstimateErrorPct == nil || *r.EstimateErrorPct < 0 {
				t.Errorf("%s: got estimate_error_pct %v, want it set (the user node chose a path with an estimate)", r.Name(), r.EstimateErrorPct)
			}
			if r.LowestP50 != nil && *r.LowestP50 && *r.TieP50 {
				t.Errorf("%s: both lowest and a tie", r.Name())
			}
		}
	}
	want := []string{"direct c=1", "direct c=4", "tunnel c=1", "tunnel c=4", "bulk-direct c=1", "tunnel-stream c=1", "tunnel-stream c=4",
		"bulk-tunnel-stream c=1", "relay c=1", "relay c=4"}
	if n := len(want); len(got) < n || strings.Join(got[:n], ",") != strings.Join(want, ",") || regions != 12 {
		t.Errorf("rows: got %v, want %v and 12 regions rows", got, want)
	}
	if md := rep.Markdown(); !strings.Contains(md, "RTT matrix: default/10") {
		t.Errorf("results.md does not name the matrix:\n%s", md)
	}
	for _, f := range []string{"results.md", "charts/regions.svg", "charts/cdf-relay.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	leaks(t)
}

// TestSmokeOpenLoop runs one scenario through the real system as an open
// loop bounded by a request count.
func TestSmokeOpenLoop(t *testing.T) {
	rep, err := Run(t.Context(), Config{Scenarios: []string{"tunnel-auth"}, Rate: 200, Requests: 20, Concurrency: []int{2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 {
		t.Fatalf("rows: got %d, want 1", len(rep.Rows))
	}
	r := rep.Rows[0]
	if r.Load != LoadOpen || r.TargetRPS == nil || *r.TargetRPS != 200 || r.Requests != 20 || r.Errors != 0 {
		t.Errorf("got load %s target %v requests %d errors %d; want open, 200, 20, 0", r.Load, r.TargetRPS, r.Requests, r.Errors)
	}
}

func TestRunRejectsUnknownScenario(t *testing.T) {
	_, err := Run(t.Context(), Config{Scenarios: []string{"direct", "warp"}, Duration: time.Second})
	if !errors.Is(err, ErrUnknownScenario) || !strings.Contains(err.Error(), "known: direct, tunnel") {
		t.Fatalf("got %v, want %v listing the known scenarios", err, ErrUnknownScenario)
	}
}
