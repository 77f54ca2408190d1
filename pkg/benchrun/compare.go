package benchrun

import (
	"fmt"
	"io"
	"math"
)

// DefaultThreshold is the relative change Compare flags as a regression
// for a figure whose run-to-run spread was not recorded.
const DefaultThreshold = 0.10

// minLatencyChange is the smallest latency change, in ms, Compare ever
// flags: below it, changes are within the timer and histogram resolution.
const minLatencyChange = 0.02

// Change is one figure of one row compared between two results files.
type Change struct {
	// Row names the row: scenario, concurrency and load model.
	Row string
	// Figure is the JSON name of the figure.
	Figure string
	// Old and New are its values.
	Old, New float64
	// Allowed is the largest worsening not flagged.
	Allowed float64
	// Regressed is set when the figure worsened by more than Allowed.
	Regressed bool
}

// Comparison is the outcome of Compare.
type Comparison struct {
	// Changes lists every compared figure of every row present in both.
	Changes []Change
	// OnlyOld and OnlyNew name the rows present in one file only.
	OnlyOld, OnlyNew []string
}

// Regressed reports whether any figure regressed.
func (c Comparison) Regressed() bool {
	for _, ch := range c.Changes {
		if ch.Regressed {
			return true
		}
	}
	return false
}

// figure is one compared figure of a row.
type figure struct {
	name         string
	value        func(Result) (float64, bool)
	higherBetter bool
	spread       func(Result) *float64 // nil: no spread recorded for it
	latency      bool
}

var figures = []figure{
	{name: "rps", value: func(r Result) (float64, bool) { return r.RPS, r.MiBs == nil }, higherBetter: true,
		spread: func(r Result) *float64 { return r.RPSSpread }},
	{name: "mib_s", value: func(r Result) (float64, bool) { return deref(r.MiBs) }, higherBetter: true},
	{name: "p50_ms", value: func(r Result) (float64, bool) { return r.P50, r.MiBs == nil }, latency: true,
		spread: func(r Result) *float64 { return r.P50Spread }},
	{name: "p90_ms", value: func(r Result) (float64, bool) { return r.P90, r.MiBs == nil }, latency: true},
	{name: "p99_ms", value: func(r Result) (float64, bool) { return r.P99, r.MiBs == nil }, latency: true},
	{name: "errors", value: func(r Result) (float64, bool) { return float64(r.Errors), true }},
	{name: "recovery_ms", value: func(r Result) (float64, bool) { return deref(r.RecoveryMS) }, latency: true},
}

func deref(v *float64) (float64, bool) {
	if v == nil {
		return 0, false
	}
	return *v, true
}

func rowKey(r Result) string {
	k := fmt.Sprintf("%s c=%d %s", r.Name(), r.Concurrency, r.Load)
	if r.TargetRPS != nil {
		k += fmt.Sprintf("@%g", *r.TargetRPS)
	}
	return k
}

// Compare compares the rows of two results files, matched by scenario
// (with strategy and user region, where set), concurrency and load model. A figure regresses when it worsens (rps and
// mib_s fall, latencies and errors rise) by more than its run-to-run
// spread — the larger of the two files' spreads, when either recorded one
// — or else by more than threshold (relative; zero means
// DefaultThreshold). Latency changes under 0.02 ms never regress; any rise
// in errors does, and so does a failover that no longer recovers. p99.9
// and max are too noisy over short rows and are not compared.
func Compare(old, new []Result, threshold float64) Comparison {
	if threshold <= 0 {
		threshold = DefaultThreshold
	}
	var c Comparison
	newRows := map[string]Result{}
	for _, r := range new {
		newRows[rowKey(r)] = r
	}
	seen := map[string]bool{}
	for _, o := range old {
		k := rowKey(o)
		n, ok := newRows[k]
		if !ok {
			c.OnlyOld = append(c.OnlyOld, k)
			continue
		}
		seen[k] = true
		for _, f := range figures {
			ov, ok1 := f.value(o)
			nv, ok2 := f.value(n)
			if !ok1 || !ok2 {
				continue
			}
			ch := Change{Row: k, Figure: f.name, Old: ov, New: nv}
			worse := nv - ov
			if f.higherBetter {
				worse = ov - nv
			}
			switch {
			case f.name == "errors":
				ch.Allowed = 0
			case f.name == "recovery_ms" && (ov < 0 || nv < 0):
				ch.Allowed, worse = 0, 0
				if nv < 0 && ov >= 0 {
					worse = 1 // no longer recovers
				}
			default:
				ch.Allowed = threshold * math.Abs(ov)
				if f.spread != nil {
					if s := math.Max(deref0(f.spread(o)), deref0(f.spread(n))); s > 0 {
						ch.Allowed = s
					}
				}
				if f.latency {
					ch.Allowed = math.Max(ch.Allowed, minLatencyChange)
				}
			}
			ch.Allowed = round(ch.Allowed, 3)
			ch.Regressed = worse > ch.Allowed
			c.Changes = append(c.Changes, ch)
		}
	}
	for _, n := range new {
		if k := rowKey(n); !seen[k] {
			c.OnlyNew = append(c.OnlyNew, k)
		}
	}
	return c
}

func deref0(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}

// Print writes the comparison as a table, one figure a line, with
// REGRESSION after each regressed figure, and a last line with the
// verdict.
func (c Comparison) Print(w io.Writer) {
	fmt.Fprintf(w, "%-32s %-12s %12s %12s %9s %10s\n", "row", "figure", "old", "new", "change", "allowed")
	for _, ch := range c.Changes {
		pct := "n/a"
		if ch.Old != 0 {
			pct = fmt.Sprintf("%+.1f%%", (ch.New-ch.Old)/math.Abs(ch.Old)*100)
		} else if ch.New == 0 {
			pct = "+0.0%"
		}
		flag := ""
		if ch.Regressed {
			flag = "  REGRESSION"
		}
		fmt.Fprintf(w, "%-32s %-12s %12.3f %12.3f %9s %10.3f%s\n", ch.Row, ch.Figure, ch.Old, ch.New, pct, ch.Allowed, flag)
	}
	for _, k := range c.OnlyOld {
		fmt.Fprintf(w, "%-32s only in the old results\n", k)
	}
	for _, k := range c.OnlyNew {
		fmt.Fprintf(w, "%-32s only in the new results\n", k)
	}
	n := 0
	for _, ch := range c.Changes {
		if ch.Regressed {
			n++
		}
	}
	if n > 0 {
		fmt.Fprintf(w, "%d figure(s) regressed\n", n)
	} else {
		fmt.Fprintln(w, "no regression")
	}
}
