package benchrun

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Result is one row of the results: one scenario at one concurrency.
type Result struct {
	// Scenario is the scenario's name.
	Scenario string `json:"scenario"`
	// Concurrency is the number of workers (and connections).
	Concurrency int `json:"concurrency"`
	// Requests counts the requests measured (successful or not).
	Requests int64 `json:"requests"`
	// Errors counts the failed requests, in warm-up and measurement.
	Errors int64 `json:"errors"`
	// RPS is Requests per second of the measurement window.
	RPS float64 `json:"rps"`
	// P50 is the median latency of the successful requests, in ms.
	P50 float64 `json:"p50_ms"`
	// P90 is their 90th percentile latency, in ms.
	P90 float64 `json:"p90_ms"`
	// P99 is their 99th percentile latency, in ms.
	P99 float64 `json:"p99_ms"`
	// P999 is their 99.9th percentile latency, in ms.
	P999 float64 `json:"p999_ms"`
	// Max is their maximum latency, in ms.
	Max float64 `json:"max_ms"`
	// MiBs is the body throughput in MiB/s; set on bulk rows only.
	MiBs *float64 `json:"mib_s,omitempty"`
	// AddedP50 is P50 minus the baseline row's P50; set on rows with a
	// baseline in the same run.
	AddedP50 *float64 `json:"added_p50_ms,omitempty"`
	// RatioToDirect is P50 over the baseline row's P50, or on bulk rows
	// MiBs over the baseline row's MiBs; set on rows with a baseline in the
	// same run.
	RatioToDirect *float64 `json:"ratio_to_direct,omitempty"`

	// baseline is the scenario's Baseline, used by annotate.
	baseline string
	// firstErr is the first failure, shown by Summary.
	firstErr error
}

func newResult(s Scenario, conc int, st Stats) Result {
	r := Result{Scenario: s.Name, Concurrency: conc, Requests: st.Requests, Errors: st.Errors, baseline: s.Baseline}
	if secs := st.Elapsed.Seconds(); secs > 0 {
		r.RPS = round(float64(st.Requests)/secs, 1)
		if s.Bulk {
			r.MiBs = ptr(round(float64(st.Bytes)/(1<<20)/secs, 2))
		}
	} else if s.Bulk {
		r.MiBs = ptr(0.0)
	}
	if h := st.Latency; h != nil && h.TotalCount() > 0 {
		ms := func(us int64) float64 { return round(float64(us)/1000, 3) }
		r.P50, r.P90, r.P99 = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)), ms(h.ValueAtQuantile(99))
		r.P999, r.Max = ms(h.ValueAtQuantile(99.9)), ms(h.Max())
	}
	return r
}

// annotate sets AddedP50 and RatioToDirect on every row whose baseline
// scenario has a row of the same concurrency in rows.
func annotate(rows []Result) {
	for i := range rows {
		r := &rows[i]
		if r.baseline == "" {
			continue
		}
		for _, b := range rows {
			if b.Scenario != r.baseline || b.Concurrency != r.Concurrency {
				continue
			}
			r.AddedP50 = ptr(round(r.P50-b.P50, 3))
			switch {
			case r.MiBs != nil && b.MiBs != nil && *b.MiBs > 0:
				r.RatioToDirect = ptr(round(*r.MiBs / *b.MiBs, 3))
			case r.MiBs == nil && b.P50 > 0:
				r.RatioToDirect = ptr(round(r.P50/b.P50, 3))
			}
		}
	}
}

// Summary returns a one-line human summary of r.
func (r Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s c=%-3d requests=%-8d errors=%-4d rps=%-9.1f p50=%.3fms p90=%.3fms p99=%.3fms p99.9=%.3fms max=%.3fms",
		r.Scenario, r.Concurrency, r.Requests, r.Errors, r.RPS, r.P50, r.P90, r.P99, r.P999, r.Max)
	if r.MiBs != nil {
		fmt.Fprintf(&b, " MiB/s=%.2f", *r.MiBs)
	}
	if r.AddedP50 != nil {
		fmt.Fprintf(&b, " +p50=%.3fms", *r.AddedP50)
	}
	if r.RatioToDirect != nil {
		fmt.Fprintf(&b, " ratio=%.3f", *r.RatioToDirect)
	}
	if r.firstErr != nil {
		fmt.Fprintf(&b, " first_error=%q", r.firstErr.Error())
	}
	return b.String()
}

// Report is the whole output of one run.
type Report struct {
	// Machine describes where the run happened.
	Machine Machine
	// Warmup is the unrecorded time before each row.
	Warmup time.Duration
	// Duration is the recorded time of each row.
	Duration time.Duration
	// Rows are the results in run order.
	Rows []Result
}

// Write creates dir if needed and writes results.json, results.md and
// machine.json into it.
func (rep Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("benchrun: write report: %w", err)
	}
	rows := rep.Rows
	if rows == nil {
		rows = []Result{}
	}
	js, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return fmt.Errorf("benchrun: write report: %w", err)
	}
	mj, err := json.MarshalIndent(rep.Machine, "", "  ")
	if err != nil {
		return fmt.Errorf("benchrun: write report: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"results.json", append(js, '\n')},
		{"machine.json", append(mj, '\n')},
		{"results.md", []byte(rep.Markdown())},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("benchrun: write report: %w", err)
		}
	}
	return nil
}

// Markdown renders the report: the machine, the settings and a table of
// the rows.
func (rep Report) Markdown() string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# Benchmark results\n\n")
	fmt.Fprintf(&b, "- CPU: %s (%d cores)\n- Go: %s %s/%s\n", m.CPU, m.Cores, m.GoVersion, m.GOOS, m.GOARCH)
	fmt.Fprintf(&b, "- Warm-up %v, duration %v per row; closed loop, one HTTP/1.1 keep-alive connection per worker\n\n",
		rep.Warmup, rep.Duration)
	b.WriteString("| scenario | concurrency | requests | errors | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | MiB/s | added p50 ms | ratio to direct |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |\n",
			r.Scenario, r.Concurrency, r.Requests, r.Errors, r.RPS, r.P50, r.P90, r.P99, r.P999, r.Max,
			optional(r.MiBs, 2), optional(r.AddedP50, 3), optional(r.RatioToDirect, 3))
	}
	return b.String()
}

func optional(v *float64, prec int) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', prec, 64)
}

func round(v float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(v*p) / p
}

func ptr[T any](v T) *T { return &v }
