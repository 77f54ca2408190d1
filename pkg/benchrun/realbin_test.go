package benchrun

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRealShape runs the real-binaries mode for a moment: the binaries
// are built, meshd, connectord and the backend run as processes of their
// own and serve every row without an error through TLS, WireGuard and the
// connector (postern-auth: with the dev-signed app cookie, which meshd
// verifies — RunReal fails if the app answers without it; postern-bearer:
// with the bench issuer's token, which meshd verifies — RunReal fails if
// the app does not answer 401 without it or with a forged one; postern-traced:
// through the second pair, tracing on, exporting to the sink process), the
// report has every row with its ratios and per-process CPU,
// the memory of each process was read, and every process (the load
// processes too) is gone afterwards. The wg-splice peer's two processes
// serve too, and so does the oauth2-proxy peer (the released binary, which
// RunReal checks refuses a request without the bearer token). No speed is
// asserted.
func TestRealShape(t *testing.T) {
	dir := t.TempDir()
	rep, err := RunReal(t.Context(), RealConfig{Dir: dir, Duration: 100 * time.Millisecond, Rounds: 2, Concurrency: []int{1, 2}, Settle: 10 * time.Millisecond,
		BulkBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Rows {
		name := r.Target
		if r.Bulk {
			name = "bulk-" + name
		}
		got = append(got, name+" c="+strconv.Itoa(r.Concurrency))
		if len(r.Rounds) != 2 || r.Errors != 0 {
			t.Errorf("%s: got %d rounds and %d errors, want 2 and none", name, len(r.Rounds), r.Errors)
		}
		for _, x := range r.Rounds {
			if x.Requests <= 0 || x.Total < x.Requests {
				t.Errorf("%s: a round measured %d requests of %d completed", name, x.Requests, x.Total)
			}
		}
		cpu, procs := r.CPUPer10k, "backend"
		if r.Bulk {
			cpu = r.CPUPerGiB
			if r.MiBs == nil || *r.MiBs <= 0 {
				t.Errorf("%s: no throughput", name)
			}
		} else if r.RPS <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("%s: rps %v p50 %v p99 %v", name, r.RPS, r.P50, r.P99)
		}
		switch r.Target {
		case "postern", "postern-auth", "postern-bearer":
			procs = "backend,connectord,meshd"
		case "postern-traced":
			procs = "backend,connectord-traced,meshd-traced"
		case "wg-splice":
			procs = "backend,splice-edge,splice-inner"
		case "oauth2-proxy":
			procs = "backend,oauth2-proxy"
		}
		if (r.Target == "postern-auth" || r.Target == "postern-bearer" || r.Target == "postern-traced") != (r.RatioToPostern != nil) {
			t.Errorf("%s: ratio to postern %v, want it on postern-auth, postern-bearer and postern-traced rows only", name, r.RatioToPostern)
		}
		if (r.Target == "postern-traced") != (r.CPURatioToPostern != nil && *r.CPURatioToPostern > 0) {
			t.Errorf("%s: CPU ratio to postern %v, want it on postern-traced rows only", name, r.CPURatioToPostern)
		}
		if (r.Target != "direct") != (r.RatioToDirect != nil && (r.Bulk || r.P50RatioToDirect != nil)) {
			t.Errorf("%s: ratio to direct %v, p50 ratio %v: want both on every row but direct's", name, r.RatioToDirect, r.P50RatioToDirect)
		}
		var keys []string
		for k := range cpu {
			keys = append(keys, k)
		}
		if strings.Join(sorted(keys), ",") != procs {
			t.Errorf("%s: CPU of %v, want of %s", name, keys, procs)
		}
	}
	want := "direct c=1,postern c=1,postern-traced c=1,postern-auth c=1,postern-bearer c=1,wg-splice c=1,oauth2-proxy c=1," +
		"direct c=2,postern c=2,postern-traced c=2,postern-auth c=2,postern-bearer c=2,wg-splice c=2,oauth2-proxy c=2," +
		"bulk-direct c=1,bulk-postern c=1,bulk-wg-splice c=1,bulk-oauth2-proxy c=1"
	if strings.Join(got, ",") != want {
		t.Errorf("rows: got %v, want %s", got, want)
	}
	var names []string
	for _, p := range rep.Procs {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "backend,meshd,connectord,otlp-sink,meshd-traced,connectord-traced,splice-inner,splice-edge,oauth2-proxy" {
		t.Fatalf("processes: got %v, want backend, meshd, connectord, otlp-sink, meshd-traced, connectord-traced, splice-inner, splice-edge and oauth2-proxy", names)
	}
	for _, p := range rep.Procs {
		if p.StartRSSMiB <= 0 || p.StartRSSMiB > p.PeakRSSMiB || p.IdleRSSMiB <= 0 {
			t.Errorf("%s: RSS before the rows %v MiB, after settling %v MiB (peak %v)", p.Name, p.StartRSSMiB, p.IdleRSSMiB, p.PeakRSSMiB)
		}
		if p.PeakRSSMiB <= 0 || p.RSSMiB <= 0 || p.RSSMiB > p.PeakRSSMiB || !p.Exited {
			t.Errorf("%s: peak %v MiB, after %v MiB, exited %t", p.Name, p.PeakRSSMiB, p.RSSMiB, p.Exited)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(p.PID)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s (pid %d) is still there: %v", p.Name, p.PID, err)
		}
	}
	md := rep.Markdown()
	for _, w := range []string{"| postern | 2 |", "| postern-traced | 2 |", "| bulk-postern | 1 |", "| oauth2-proxy | 2 |", "| meshd |", "| oauth2-proxy |", "2 interleaved rounds"} {
		if !strings.Contains(md, w) {
			t.Errorf("real.md lacks %q:\n%s", w, md)
		}
	}
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// TestRealRejectsUnknownRow asks for a row that does not exist: the run
// fails at once, naming the rows there are, and builds nothing.
func TestRealRejectsUnknownRow(t *testing.T) {
	dir := t.TempDir()
	_, err := RunReal(t.Context(), RealConfig{Dir: dir, Duration: time.Second, Rows: []string{"bulk-postern", "bulk-tunnel"}})
	if err == nil || !strings.Contains(err.Error(), `"bulk-tunnel"`) || !strings.Contains(err.Error(), "bulk-wg-splice") {
		t.Fatalf("got %v, want an error naming the unknown row and the known ones", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the run left %d entries in its directory", len(entries))
	}
}

// TestRoundOrder: rows stay in their groups (a concurrency level, the bulk
// rows) and each round starts one row later within each group.
func TestRoundOrder(t *testing.T) {
	groups := []int{1, 1, 1, 32, 32, 32, 0, 0}
	same := func(i, j int) bool { return groups[i] == groups[j] }
	for r, want := range []string{"[0 1 2 3 4 5 6 7]", "[1 2 0 4 5 3 7 6]", "[2 0 1 5 3 4 6 7]"} {
		if got := fmt.Sprint(roundOrder(len(groups), r, same)); got != want {
			t.Errorf("round %d: got %s, want %s", r, got, want)
		}
	}
	if got := roundOrder(0, 3, same); len(got) != 0 {
		t.Errorf("no rows: got %v", got)
	}
}

// TestRealRatioPairsRounds: ratio_to_postern is the median of each round's
// ratio, which a round where the whole machine slowed down does not skew;
// with rounds missing on one side it falls back to the ratio of the
// medians.
func TestRealRatioPairsRounds(t *testing.T) {
	rounds := func(rps ...float64) []RealRound {
		var out []RealRound
		for _, x := range rps {
			out = append(out, RealRound{LoadResult: LoadResult{RPS: x, Total: 1}})
		}
		return out
	}
	// The machine slowed down by half from round 2 on, while postern-bearer's
	// round 2 ran, before postern's round 3: the ratio of the medians
	// would be 0.475.
	rows := finishReal([]RealRow{
		{Target: "postern", Concurrency: 32, Rounds: rounds(4000, 4000, 2000)},
		{Target: "postern-bearer", Concurrency: 32, Rounds: rounds(3800, 1900, 1900)},
	})
	if got := rows[1].RatioToPostern; got == nil || *got != 0.95 {
		t.Errorf("paired: got %v, want 0.95", got)
	}
	rows = finishReal([]RealRow{
		{Target: "postern", Concurrency: 32, Rounds: rounds(2000, 2000)},
		{Target: "postern-bearer", Concurrency: 32, Rounds: rounds(1800, 1800, 1700)},
	})
	if got := rows[1].RatioToPostern; got == nil || *got != 0.9 {
		t.Errorf("unpaired: got %v, want the ratio of the medians, 0.9", fmtPtr(got))
	}
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}
