package benchrun

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeScenario runs GetOp against url with a plain transport.
func fakeScenario(name, baseline, url string, bulk bool, conc ...int) Scenario {
	return Scenario{Name: name, Concurrency: conc, Bulk: bulk, Baseline: baseline,
		Open: func(_ context.Context, _ System, p Params) (*Row, error) {
			c := &http.Client{Transport: directTransport(p.Concurrency)}
			return &Row{Op: GetOp(c, url, -1, nil), Close: c.CloseIdleConnections}, nil
		}}
}

func TestResultsJSONSchema(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 4096)))
	}))
	defer srv.Close()
	scs := []Scenario{
		fakeScenario("base", "", srv.URL, false, 1, 2),
		fakeScenario("via", "base", srv.URL, false, 1, 2),
		withPeer(fakeScenario("via-auth", "base", srv.URL, false, 1, 2), "via"),
		fakeScenario("bulk-base", "", srv.URL, true, 1),
		fakeScenario("bulk-via", "bulk-base", srv.URL, true, 1),
		fakeRegions(srv.URL),
	}
	var progress strings.Builder
	cfg := Config{Duration: 100 * time.Millisecond, Warmup: 20 * time.Millisecond, Progress: &progress, Repeats: 2}
	rep, err := RunOn(t.Context(), nil, scs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	common := []string{"scenario", "concurrency", "load", "requests", "errors", "rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
		"cpu_s_per_1k", "peak_rss_mib", "repeats", "p50_spread_ms", "rps_spread"}
	keys := func(extra ...string) []string { return append(slices.Clone(common), extra...) }
	want := []struct {
		scenario string
		conc     float64
		keys     []string
	}{
		{"base", 1, keys()},
		{"base", 2, keys()},
		{"via", 1, keys("added_p50_ms", "ratio_to_direct")},
		{"via", 2, keys("added_p50_ms", "ratio_to_direct")},
		{"via-auth", 1, keys("added_p50_ms", "ratio_to_direct", "ratio_to_tunnel")},
		{"via-auth", 2, keys("added_p50_ms", "ratio_to_direct", "ratio_to_tunnel")},
		{"bulk-base", 1, keys("mib_s")},
		{"bulk-via", 1, keys("mib_s", "added_p50_ms", "ratio_to_direct")},
		{"regions", 1, keys("strategy", "user_region", "optimal_ms", "target_met", "lowest_p50", "tie_p50")},
		{"regions", 1, keys("strategy", "user_region", "optimal_ms")},
		{"regions", 1, keys("strategy", "user_region", "optimal_ms", "target_met", "lowest_p50", "tie_p50")},
		{"regions", 1, keys("strategy", "user_region", "optimal_ms")},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows: got %d, want %d:\n%s", len(rows), len(want), data)
	}
	for i, w := range want {
		row := rows[i]
		var got []string
		for k := range row {
			got = append(got, k)
		}
		slices.Sort(got)
		slices.Sort(w.keys)
		if d := cmp.Diff(w.keys, got); d != "" {
			t.Errorf("row %d keys (-want +got):\n%s", i, d)
		}
		if row["scenario"] != w.scenario || row["concurrency"] != w.conc {
			t.Errorf("row %d: got %v c=%v, want %s c=%v", i, row["scenario"], row["concurrency"], w.scenario, w.conc)
		}
		if n, _ := row["requests"].(float64); n <= 0 {
			t.Errorf("row %d requests: got %v, want > 0", i, row["requests"])
		}
		if row["errors"] != 0.0 {
			t.Errorf("row %d errors: got %v, want 0", i, row["errors"])
		}
	}
	if mibs, _ := rows[6]["mib_s"].(float64); mibs <= 0 {
		t.Errorf("bulk mib_s: got %v, want > 0", rows[6]["mib_s"])
	}
	for i, row := range rows {
		if row["repeats"] != 2.0 || row["load"] != LoadClosed {
			t.Errorf("row %d: got repeats %v load %v, want 2 and %s", i, row["repeats"], row["load"], LoadClosed)
		}
	}
	if lines := strings.Count(progress.String(), "\n"); lines != 2*len(want) {
		t.Errorf("progress lines: got %d, want %d:\n%s", lines, len(want), progress.String())
	}
	var variants []string
	for _, row := range rows[len(rows)-4:] {
		variants = append(variants, fmt.Sprintf("%v@%v", row["strategy"], row["user_region"]))
	}
	if d := cmp.Diff([]string{"latency@x", "nearest@x", "latency@y", "nearest@y"}, variants); d != "" {
		t.Errorf("regions rows (-want +got):\n%s", d)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| regions | latency | x | 1 |", "RTT matrix: default; sources:"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{"machine.json", "results.md", "charts/p50.svg", "charts/mib_s.svg", "charts/cdf-base.svg", "charts/cdf-via-auth.svg",
		"charts/regions.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// fakeRegions is a scenario with two strategies × two user regions
// against url, rows strategy-major like the regions scenario.
func fakeRegions(url string) Scenario {
	s := fakeScenario("regions", "", url, false, 1)
	s.FixedConcurrency = true
	s.Variants = func(Config) []Variant {
		return []Variant{{"latency", "x"}, {"nearest", "x"}, {"latency", "y"}, {"nearest", "y"}}
	}
	open := s.Open
	s.Open = func(ctx context.Context, sys System, p Params) (*Row, error) {
		row, err := open(ctx, sys, p)
		if err != nil {
			return nil, err
		}
		row.Finish = func(r *Result) {
			r.Strategy, r.UserRegion, r.OptimalMS = p.Variant.Strategy, p.Variant.UserRegion, ptr(1.0)
		}
		return row, nil
	}
	return s
}

func withPeer(s Scenario, peer string) Scenario {
	s.Peer = peer
	return s
}

func TestAnnotate(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rows := []Result{
		{Scenario: "direct", Concurrency: 1, P50: 0.1},
		{Scenario: "direct", Concurrency: 32, P50: 1},
		{Scenario: "tunnel", Concurrency: 1, P50: 0.4, baseline: "direct"},
		{Scenario: "tunnel", Concurrency: 32, P50: 3, baseline: "direct"},
		{Scenario: "tunnel", Concurrency: 8, P50: 3, baseline: "direct"}, // no baseline row
		{Scenario: "bulk-direct", Concurrency: 1, P50: 200, MiBs: f(1000)},
		{Scenario: "bulk-tunnel", Concurrency: 1, P50: 2000, MiBs: f(250), baseline: "bulk-direct"},
		{Scenario: "bulk-tunnel-8", Concurrency: 8, P50: 3000, MiBs: f(500), baseline: "bulk-direct", baseConc: 1},
	}
	annotate(rows)
	cases := []struct {
		row          int
		added, ratio *float64
	}{
		{0, nil, nil},
		{2, f(0.3), f(4)},
		{3, f(2), f(3)},
		{4, nil, nil},
		{5, nil, nil},
		{6, f(1800), f(0.25)},
		{7, f(2800), f(0.5)},
	}
	for _, tc := range cases {
		r := rows[tc.row]
		t.Run(r.Scenario, func(t *testing.T) {
			if d := cmp.Diff(tc.added, r.AddedP50); d != "" {
				t.Errorf("added_p50_ms (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.ratio, r.RatioToDirect); d != "" {
				t.Errorf("ratio_to_direct (-want +got):\n%s", d)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	mibs := 12.5
	rep := Report{Machine: Machine{CPU: "Test CPU", Cores: 2, GoVersion: "go1.26", GOOS: "linux", GOARCH: "amd64"},
		Warmup: time.Second, Duration: 5 * time.Second,
		Rows: []Result{{Scenario: "direct", Concurrency: 1, Requests: 10, P50: 0.25}, {Scenario: "bulk-direct", Concurrency: 1, MiBs: &mibs}}}
	md := rep.Markdown()
	for _, want := range []string{"Test CPU (2 cores)", "go1.26 linux/amd64", "| direct | 1 | 10 | 0 | 0.0 | 0.250 |", "| 12.50 |  |  |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestRatioToTunnel(t *testing.T) {
	rows := []Result{
		{Scenario: "tunnel", Concurrency: 32, RPS: 2000},
		{Scenario: "tunnel-auth", Concurrency: 32, RPS: 1900, peer: "tunnel"},
		{Scenario: "tunnel-auth", Concurrency: 1, RPS: 900, peer: "tunnel"},
	}
	annotate(rows)
	if d := cmp.Diff(ptr(0.95), rows[1].RatioToTunnel); d != "" {
		t.Errorf("c=32 ratio_to_tunnel (-want +got):\n%s", d)
	}
	if rows[2].RatioToTunnel != nil {
		t.Errorf("c=1 ratio_to_tunnel: got %v, want none (no tunnel row at c=1)", *rows[2].RatioToTunnel)
	}
}

func TestCombineRepeats(t *testing.T) {
	mk := func(p50, rps float64, failed int64, rec float64) Result {
		return Result{Scenario: "failover", Concurrency: 8, Requests: 10, RPS: rps, P50: p50, Failed: ptr(failed), Stalled: ptr(int64(1)), RecoveryMS: ptr(rec)}
	}
	got := combine([]Result{mk(1, 100, 2, 30), mk(1.5, 90, 0, 50), mk(1.2, 110, 1, 10)})
	if got.Repeats != 3 || *got.P50Spread != 0.5 || *got.RPSSpread != 20 || got.RPS != 100 || got.Requests != 30 {
		t.Errorf("got repeats %d p50 spread %v rps spread %v rps %v requests %d; want 3, 0.5, 20, 100, 30",
			got.Repeats, *got.P50Spread, *got.RPSSpread, got.RPS, got.Requests)
	}
	if *got.Failed != 3 || *got.Stalled != 3 || *got.RecoveryMS != 50 {
		t.Errorf("got failed %d stalled %d recovery %v; want 3, 3, 50 (the worst)", *got.Failed, *got.Stalled, *got.RecoveryMS)
	}
	never := combine([]Result{mk(1, 100, 0, 30), mk(1, 100, 5, -1)})
	if *never.RecoveryMS != -1 {
		t.Errorf("recovery with one repeat never recovering: got %v, want -1", *never.RecoveryMS)
	}
}

// TestPairRatios: with repeats, a row's ratio to its peer is the median
// of the rounds' ratios, which a machine slowing down between rounds does
// not move; the ratio of the averages would (here 0.32 instead of 0.9).
func TestPairRatios(t *testing.T) {
	tunnel := []Result{{Scenario: "tunnel", Concurrency: 32, RPS: 10000}, {Scenario: "tunnel", Concurrency: 32, RPS: 1000}, {Scenario: "tunnel", Concurrency: 32, RPS: 1000}}
	bearer := []Result{{Scenario: "tunnel-bearer", Concurrency: 32, RPS: 2000, peer: "tunnel"}, {Scenario: "tunnel-bearer", Concurrency: 32, RPS: 900, peer: "tunnel"},
		{Scenario: "tunnel-bearer", Concurrency: 32, RPS: 900, peer: "tunnel"}}
	rows := []Result{combine(tunnel), combine(bearer)}
	annotate(rows)
	if *rows[1].RatioToTunnel > 0.4 {
		t.Fatalf("ratio of the averages %v: the test does not tell the two apart", *rows[1].RatioToTunnel)
	}
	pairRatios(rows, [][]Result{tunnel, bearer})
	if d := cmp.Diff(ptr(0.9), rows[1].RatioToTunnel); d != "" {
		t.Errorf("paired ratio (-want +got):\n%s", d)
	}
	// A peer with another number of repeats (it failed midway): the ratio
	// of the averages stays.
	rows = []Result{combine(tunnel[:2]), combine(bearer)}
	annotate(rows)
	want := rows[1].RatioToTunnel
	pairRatios(rows, [][]Result{tunnel[:2], bearer})
	if rows[1].RatioToTunnel != want {
		t.Errorf("unpaired repeats: ratio changed to %v", *rows[1].RatioToTunnel)
	}
}

// TestRepeatsRotateOrder: each repeat starts one scenario later.
func TestRepeatsRotateOrder(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	var ran []string
	var scs []Scenario
	for _, n := range []string{"a", "b", "c"} {
		s := fakeScenario(n, "", srv.URL, false, 1)
		open := s.Open
		s.Open = func(ctx context.Context, sys System, p Params) (*Row, error) {
			ran = append(ran, n)
			return open(ctx, sys, p)
		}
		scs = append(scs, s)
	}
	rep, err := RunOn(t.Context(), nil, scs, Config{Requests: 3, Repeats: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ran, ""); got != "abcbcacab" {
		t.Errorf("order %s, want abcbcacab", got)
	}
	var rows []string
	for _, r := range rep.Rows {
		rows = append(rows, r.Scenario)
	}
	if strings.Join(rows, "") != "abc" {
		t.Errorf("report rows %v, want a, b, c as given", rows)
	}
}
