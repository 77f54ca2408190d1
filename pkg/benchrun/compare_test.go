package benchrun

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	row := func(s string, c int, rps, p50 float64) Result {
		return Result{Scenario: s, Concurrency: c, Load: LoadClosed, RPS: rps, P50: p50, P90: p50 * 2, P99: p50 * 3}
	}
	spread := func(r Result, p50, rps float64) Result {
		r.Repeats, r.P50Spread, r.RPSSpread = 3, ptr(p50), ptr(rps)
		return r
	}
	cases := []struct {
		name     string
		old, new Result
		regress  []string // figures flagged
	}{
		{"same", row("tunnel", 1, 1000, 1), row("tunnel", 1, 1000, 1), nil},
		{"within 10%", row("tunnel", 1, 1000, 1), row("tunnel", 1, 950, 1.05), nil},
		{"better", row("tunnel", 1, 1000, 1), row("tunnel", 1, 2000, 0.5), nil},
		{"slower beyond 10%", row("tunnel", 1, 1000, 1), row("tunnel", 1, 1000, 1.2), []string{"p50_ms", "p90_ms", "p99_ms"}},
		{"fewer rps beyond 10%", row("tunnel", 1, 1000, 1), row("tunnel", 1, 800, 1), []string{"rps"}},
		{"within the spread", spread(row("tunnel", 1, 1000, 1), 0.3, 300), row("tunnel", 1, 750, 1.25), []string{"p90_ms", "p99_ms"}},
		{"beyond the spread", spread(row("tunnel", 1, 1000, 1), 0.05, 20), spread(row("tunnel", 1, 960, 1.08), 0.01, 10), []string{"rps", "p50_ms"}},
		{"tiny latency change", row("direct", 1, 1000, 0.02), row("direct", 1, 1000, 0.025), nil},
		{"new errors", row("tunnel", 1, 1000, 1), func() Result { r := row("tunnel", 1, 1000, 1); r.Errors = 1; return r }(), []string{"errors"}},
		{"no longer recovers", func() Result { r := row("failover", 8, 1000, 1); r.RecoveryMS = ptr(300.0); return r }(),
			func() Result { r := row("failover", 8, 1000, 1); r.RecoveryMS = ptr(-1.0); return r }(), []string{"recovery_ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Compare([]Result{tc.old}, []Result{tc.new}, 0)
			var got []string
			for _, ch := range c.Changes {
				if ch.Regressed {
					got = append(got, ch.Figure)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.regress, ",") {
				t.Errorf("regressed: got %v, want %v\n%+v", got, tc.regress, c.Changes)
			}
			if c.Regressed() != (len(tc.regress) > 0) {
				t.Errorf("Regressed: got %v, want %v", c.Regressed(), len(tc.regress) > 0)
			}
		})
	}
}

func TestCompareUnmatchedRowsAndPrint(t *testing.T) {
	old := []Result{{Scenario: "a", Concurrency: 1, Load: LoadClosed, RPS: 10, P50: 1}, {Scenario: "gone", Concurrency: 1, Load: LoadClosed}}
	cur := []Result{{Scenario: "a", Concurrency: 1, Load: LoadClosed, RPS: 5, P50: 1}, {Scenario: "a", Concurrency: 1, Load: LoadOpen, TargetRPS: ptr(100.0)}}
	c := Compare(old, cur, 0.2)
	if strings.Join(c.OnlyOld, ",") != "gone c=1 closed" || strings.Join(c.OnlyNew, ",") != "a c=1 open@100" {
		t.Errorf("got only old %v, only new %v; want [gone c=1 closed] and [a c=1 open@100]", c.OnlyOld, c.OnlyNew)
	}
	var b strings.Builder
	c.Print(&b)
	for _, want := range []string{"a c=1 closed", "rps", "-50.0%", "REGRESSION", "only in the old results", "1 figure(s) regressed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestReadResults(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rows, err := ReadResults(write("ok.json", `[{"scenario":"direct","concurrency":1,"load":"closed","rps":5,"p50_ms":0.1,"p50_spread_ms":0.01}]`))
	if err != nil || len(rows) != 1 || rows[0].P50Spread == nil || *rows[0].P50Spread != 0.01 {
		t.Fatalf("got %+v, %v; want one row with its spread", rows, err)
	}
	for _, bad := range []string{`{"scenario":"x"}`, `not json`, `null`} {
		if _, err := ReadResults(write("bad.json", bad)); !errors.Is(err, ErrBadResults) {
			t.Errorf("%s: got %v, want %v", bad, err, ErrBadResults)
		}
	}
	if _, err := ReadResults(filepath.Join(dir, "missing.json")); err == nil || errors.Is(err, ErrBadResults) {
		t.Errorf("missing file: got %v, want a read error", err)
	}
}
