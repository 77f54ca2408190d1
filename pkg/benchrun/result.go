package benchrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Load models, the values of Result.Load.
const (
	// LoadClosed is a closed loop at fixed concurrency.
	LoadClosed = "closed"
	// LoadOpen is an open loop at a fixed rate.
	LoadOpen = "open"
)

// Result is one row of the results: one scenario at one concurrency. The
// JSON field names are the results.json schema documented in
// bench/README.md.
type Result struct {
	// Scenario is the scenario's name.
	Scenario string `json:"scenario"`
	// Target is the URL measured; set on remote rows only.
	Target string `json:"target,omitempty"`
	// Strategy is the route strategy of every mesh node; set on regions
	// rows.
	Strategy string `json:"strategy,omitempty"`
	// UserRegion is the region the requests came from; set on regions
	// rows.
	UserRegion string `json:"user_region,omitempty"`
	// Concurrency is the number of workers (and connections).
	Concurrency int `json:"concurrency"`
	// Load is the load model, LoadClosed or LoadOpen.
	Load string `json:"load"`
	// TargetRPS is the open loop's scheduled rate; set on open-loop rows.
	TargetRPS *float64 `json:"target_rps,omitempty"`
	// Requests counts the requests measured (successful or not).
	Requests int64 `json:"requests"`
	// Errors counts the failed requests, in warm-up and measurement.
	Errors int64 `json:"errors"`
	// ErrorsByKind splits Errors by ErrorKind; omitted when Errors is 0.
	ErrorsByKind map[string]int64 `json:"errors_by_kind,omitempty"`
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
	// RatioToTunnel is RPS over the peer row's RPS at the same
	// concurrency (tunnel-auth over tunnel); set where the peer ran. With
	// repeats, it is the median of the repeats' ratios, round by round
	// (pairRatios).
	RatioToTunnel *float64 `json:"ratio_to_tunnel,omitempty"`
	// OptimalMS is the best RTT from the user region to a connector of
	// the group that the matrix and the connectors' actual attachments
	// allow, in ms (see OptimalMS); set on regions rows.
	OptimalMS *float64 `json:"optimal_ms,omitempty"`
	// EstimateErrorPct is the worst route estimate error over the paths
	// the user region's node chose, at the end of the row, in percent:
	// |estimated path RTT − the matrix's path RTT| / the matrix's path
	// RTT (route.EstimateError); set on regions rows whose node has an
	// estimate.
	EstimateErrorPct *float64 `json:"estimate_error_pct,omitempty"`
	// TargetMet reports whether P50 is at most OptimalMS × 1.05 + 0.3 ms;
	// set on regions rows of the latency strategy.
	TargetMet *bool `json:"target_met,omitempty"`
	// LowestP50 reports whether P50 is below every other strategy's for
	// the same user region by more than the noise margin (5% or 0.5 ms,
	// whichever is larger); set on regions rows of the latency strategy
	// that have a competitor with a successful request.
	LowestP50 *bool `json:"lowest_p50,omitempty"`
	// TieP50 reports whether P50 is not lowest but within the noise margin
	// of the best other strategy's; set with LowestP50.
	TieP50 *bool `json:"tie_p50,omitempty"`
	// CPUPer1k is the process's CPU seconds (user and system, every
	// in-process component and the load generator together) per 1,000
	// measured requests; set when Requests > 0 and CPU time is readable.
	CPUPer1k *float64 `json:"cpu_s_per_1k,omitempty"`
	// PeakRSSMiB is the process's peak resident set size so far, in MiB;
	// 0 where it cannot be read.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Repeats is the number of runs merged into this row; set when above 1.
	Repeats int `json:"repeats,omitempty"`
	// P50Spread is the largest minus the smallest P50 across repeats, in
	// ms; set when Repeats is set.
	P50Spread *float64 `json:"p50_spread_ms,omitempty"`
	// RPSSpread is the largest minus the smallest RPS across repeats; set
	// when Repeats is set.
	RPSSpread *float64 `json:"rps_spread,omitempty"`
	// Failed counts the failover row's requests that failed at or after
	// the kill; set on failover rows.
	Failed *int64 `json:"failed,omitempty"`
	// Stalled counts the failover row's requests that succeeded after the
	// kill but took over ten times the pre-kill p99 (and at least 100 ms);
	// set on failover rows.
	Stalled *int64 `json:"stalled,omitempty"`
	// RecoveryMS is the failover row's time from the kill to the end of
	// the last failed or stalled request, in ms; 0 when there was none, -1
	// when the load never came back; set on failover rows.
	RecoveryMS *float64 `json:"recovery_ms,omitempty"`

	// baseline, baseConc and peer are the scenario's comparison targets,
	// used by annotate.
	baseline string
	baseConc int
	peer     string
	// firstErr is the first failure, shown by Summary.
	firstErr error
	// hist holds the latencies in µs, for the charts; nil for rows read
	// back from JSON.
	hist *hdrhistogram.Histogram
	// cpu is the process CPU time over the measurement window.
	cpu time.Duration
	// bulk marks a bulk row.
	bulk bool
}

func newResult(s Scenario, conc int, rate float64, st Stats) Result {
	r := Result{Scenario: s.Name, Concurrency: conc, Load: LoadClosed, Requests: st.Requests, Errors: st.Errors,
		ErrorsByKind: st.ErrorsByKind, baseline: s.Baseline, baseConc: s.BaselineConcurrency, peer: s.Peer,
		firstErr: st.FirstError, hist: st.Latency, cpu: st.CPU, bulk: s.Bulk}
	if rate > 0 {
		r.Load, r.TargetRPS = LoadOpen, ptr(rate)
	}
	if secs := st.Elapsed.Seconds(); secs > 0 {
		r.RPS = round(float64(st.Requests)/secs, 1)
		if s.Bulk {
			r.MiBs = ptr(round(float64(st.Bytes)/(1<<20)/secs, 2))
		}
	} else if s.Bulk {
		r.MiBs = ptr(0.0)
	}
	r.setQuantiles()
	r.setResources()
	return r
}

// setQuantiles sets P50..Max from hist.
func (r *Result) setQuantiles() {
	if h := r.hist; h != nil && h.TotalCount() > 0 {
		ms := func(us int64) float64 { return round(float64(us)/1000, 3) }
		r.P50, r.P90, r.P99 = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)), ms(h.ValueAtQuantile(99))
		r.P999, r.Max = ms(h.ValueAtQuantile(99.9)), ms(h.Max())
	}
}

// setResources sets CPUPer1k from cpu and PeakRSSMiB from the process now.
func (r *Result) setResources() {
	if r.Requests > 0 && r.cpu > 0 {
		r.CPUPer1k = ptr(round(r.cpu.Seconds()/float64(r.Requests)*1000, 4))
	}
	r.PeakRSSMiB = round(float64(peakRSS())/(1<<20), 1)
}

// combine merges the repeats of one row into one: counts and latencies
// pooled, RPS and MiB/s averaged, spreads from the repeats' P50 and RPS.
func combine(reps []Result) Result {
	if len(reps) == 1 {
		return reps[0]
	}
	r := reps[0]
	r.Requests, r.Errors, r.ErrorsByKind, r.cpu = 0, 0, nil, 0
	r.hist = hdrhistogram.New(minLatency, maxLatency, sigFigs)
	var rps, mibs float64
	p50s, rpss := make([]float64, len(reps)), make([]float64, len(reps))
	for i, x := range reps {
		if x.OptimalMS != nil && (r.OptimalMS == nil || *x.OptimalMS < *r.OptimalMS) {
			r.OptimalMS = x.OptimalMS // the best any repeat's attachments allowed
		}
		if x.EstimateErrorPct != nil && (r.EstimateErrorPct == nil || *x.EstimateErrorPct > *r.EstimateErrorPct) {
			r.EstimateErrorPct = x.EstimateErrorPct // the worst of the repeats
		}
		r.Requests += x.Requests
		r.Errors += x.Errors
		for k, n := range x.ErrorsByKind {
			if r.ErrorsByKind == nil {
				r.ErrorsByKind = make(map[string]int64)
			}
			r.ErrorsByKind[k] += n
		}
		if r.firstErr == nil {
			r.firstErr = x.firstErr
		}
		if x.hist != nil {
			r.hist.Merge(x.hist)
		}
		r.cpu += x.cpu
		rps += x.RPS
		if x.MiBs != nil {
			mibs += *x.MiBs
		}
		p50s[i], rpss[i] = x.P50, x.RPS
	}
	if reps[0].Failed != nil {
		var failed, stalled int64
		worst := 0.0
		for _, x := range reps {
			failed += *x.Failed
			stalled += *x.Stalled
			if *x.RecoveryMS < 0 || worst < 0 {
				worst = -1 // one repeat that never recovered makes the row so
			} else {
				worst = max(worst, *x.RecoveryMS)
			}
		}
		r.Failed, r.Stalled, r.RecoveryMS = ptr(failed), ptr(stalled), ptr(worst)
	}
	n := float64(len(reps))
	r.RPS = round(rps/n, 1)
	if r.MiBs != nil {
		r.MiBs = ptr(round(mibs/n, 2))
	}
	r.setQuantiles()
	r.setResources()
	r.Repeats = len(reps)
	r.P50Spread = ptr(round(slices.Max(p50s)-slices.Min(p50s), 3))
	r.RPSSpread = ptr(round(slices.Max(rpss)-slices.Min(rpss), 1))
	return r
}

// annotate sets AddedP50, RatioToDirect and RatioToTunnel on every row
// whose baseline or peer scenario has a row of the matching concurrency in
// rows.
func annotate(rows []Result) {
	for i := range rows {
		r := &rows[i]
		for _, b := range rows {
			if r.peer != "" && b.Scenario == r.peer && b.Concurrency == r.Concurrency && b.RPS > 0 {
				r.RatioToTunnel = ptr(round(r.RPS/b.RPS, 3))
			}
			conc := r.Concurrency
			if r.baseConc != 0 {
				conc = r.baseConc
			}
			if r.baseline == "" || b.Scenario != r.baseline || b.Concurrency != conc {
				continue
			}
			if r.P50 > 0 && b.P50 > 0 { // a bulk row may complete no download
				r.AddedP50 = ptr(round(r.P50-b.P50, 3))
			}
			switch {
			case r.MiBs != nil && b.MiBs != nil && *b.MiBs > 0:
				r.RatioToDirect = ptr(round(*r.MiBs / *b.MiBs, 3))
			case r.MiBs == nil && b.P50 > 0:
				r.RatioToDirect = ptr(round(r.P50/b.P50, 3))
			}
		}
	}
	annotateRegions(rows)
}

// pairRatios sets, on each row that ran more than once, the ratio to its
// peer row (RatioToTunnel) as the median of the ratios of the repeats of
// the same round (reps[i] are rows[i]'s repeats, in order): a row and its
// peer run minutes apart at most within a round, so a machine whose speed
// drifts between rounds moves both, and the ratio of the averages would
// not see through it.
func pairRatios(rows []Result, reps [][]Result) {
	for i := range rows {
		r := &rows[i]
		if r.peer == "" || len(reps[i]) < 2 {
			continue
		}
		for j, b := range rows {
			if b.Scenario != r.peer || b.Concurrency != r.Concurrency || len(reps[j]) != len(reps[i]) {
				continue
			}
			xs, ys := make([]float64, len(reps[i])), make([]float64, len(reps[j]))
			for k := range reps[i] {
				xs[k], ys[k] = reps[i][k].RPS, reps[j][k].RPS
			}
			if q, ok := pairedRatio(xs, ys); ok {
				r.RatioToTunnel = ptr(round(q, 3))
			}
		}
	}
}

// pairedRatio returns the median over the rounds of xs[k] / ys[k]: the
// figures of two rows measured in the same rounds. ok is false when the
// rows have other numbers of rounds (one failed midway) or a round of ys
// measured nothing; the caller then keeps the ratio of the medians.
func pairedRatio(xs, ys []float64) (q float64, ok bool) {
	if len(xs) == 0 || len(xs) != len(ys) {
		return 0, false
	}
	ratios := make([]float64, len(xs))
	for k := range xs {
		if ys[k] <= 0 {
			return 0, false
		}
		ratios[k] = xs[k] / ys[k]
	}
	return median(ratios), true
}

// Name returns the row's scenario name, followed for a row with a
// strategy and user region by "STRATEGY@REGION".
func (r Result) Name() string {
	if r.Strategy == "" && r.UserRegion == "" {
		return r.Scenario
	}
	return r.Scenario + " " + r.Strategy + "@" + r.UserRegion
}

// Summary returns a one-line human summary of r.
func (r Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-13s c=%-3d requests=%-8d errors=%-4d rps=%-9.1f p50=%.3fms p90=%.3fms p99=%.3fms p99.9=%.3fms max=%.3fms",
		r.Name(), r.Concurrency, r.Requests, r.Errors, r.RPS, r.P50, r.P90, r.P99, r.P999, r.Max)
	if r.MiBs != nil {
		fmt.Fprintf(&b, " MiB/s=%.2f", *r.MiBs)
	}
	if r.AddedP50 != nil {
		fmt.Fprintf(&b, " +p50=%.3fms", *r.AddedP50)
	}
	if r.RatioToDirect != nil {
		fmt.Fprintf(&b, " ratio=%.3f", *r.RatioToDirect)
	}
	if r.RatioToTunnel != nil {
		fmt.Fprintf(&b, " vs_tunnel=%.3f", *r.RatioToTunnel)
	}
	if r.OptimalMS != nil {
		fmt.Fprintf(&b, " optimal=%.1fms", *r.OptimalMS)
	}
	if r.EstimateErrorPct != nil {
		fmt.Fprintf(&b, " estimate_error=%.1f%%", *r.EstimateErrorPct)
	}
	if r.TargetMet != nil {
		fmt.Fprintf(&b, " target_met=%t", *r.TargetMet)
	}
	if r.LowestP50 != nil {
		fmt.Fprintf(&b, " lowest_p50=%t tie_p50=%t", *r.LowestP50, r.TieP50 != nil && *r.TieP50)
	}
	if r.Failed != nil {
		fmt.Fprintf(&b, " failed=%d stalled=%d recovery=%.1fms", *r.Failed, *r.Stalled, *r.RecoveryMS)
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
	// Duration is the recorded time of each row; zero when rows were
	// bounded by Requests.
	Duration time.Duration
	// Requests is the recorded request count of each row; zero when rows
	// were bounded by Duration.
	Requests int64
	// Rate is the open loop's rate; zero for closed loops.
	Rate float64
	// Repeats is how many times each row ran.
	Repeats int
	// Rows are the results in run order.
	Rows []Result
	// Matrix names the RTT matrix of the regions scenario: a file path or
	// "default"; empty means not recorded.
	Matrix string
	// MatrixSources are the matrix file's citations.
	MatrixSources []string
}

// Write creates dir if needed and writes results.json, results.md,
// machine.json and the charts (charts/*.svg) into it.
func (rep Report) Write(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "charts"), 0o755); err != nil {
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
	files := map[string][]byte{
		"results.json": append(js, '\n'),
		"machine.json": append(mj, '\n'),
		"results.md":   []byte(rep.Markdown()),
	}
	for name, svg := range Charts(rows) {
		files[filepath.Join("charts", name)] = svg
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return fmt.Errorf("benchrun: write report: %w", err)
		}
	}
	return nil
}

// ReadResults reads a results.json file.
func ReadResults(path string) ([]Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("benchrun: read results: %w", err)
	}
	var rows []Result
	if err := json.Unmarshal(data, &rows); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) {
			return nil, fmt.Errorf("benchrun: read results %s: %w: %v", path, ErrBadResults, err)
		}
		return nil, fmt.Errorf("benchrun: read results %s: %w", path, err)
	}
	if rows == nil {
		return nil, fmt.Errorf("benchrun: read results %s: %w", path, ErrBadResults)
	}
	return rows, nil
}

// Markdown renders the report: the machine, the settings and a table of
// the rows.
func (rep Report) Markdown() string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# Benchmark results\n\n")
	fmt.Fprintf(&b, "- CPU: %s (%d cores)\n- Go: %s %s/%s\n", m.CPU, m.Cores, m.GoVersion, m.GOOS, m.GOARCH)
	window := fmt.Sprintf("duration %v", rep.Duration)
	if rep.Requests > 0 {
		window = fmt.Sprintf("%d requests", rep.Requests)
	}
	model := "closed loop"
	if rep.Rate > 0 {
		model = fmt.Sprintf("open loop at %g req/s (bulk and failover rows: closed loop)", rep.Rate)
	}
	fmt.Fprintf(&b, "- Warm-up %v, %s per row, %d repeat(s); %s, one HTTP/1.1 keep-alive connection per worker\n\n",
		rep.Warmup, window, max(rep.Repeats, 1), model)
	b.WriteString("| scenario | c | requests | errors | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | MiB/s | added p50 ms | ratio to direct | ratio to tunnel | CPU s/1k req | p50 spread ms | rps spread |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	var regions []Result
	for _, r := range rep.Rows {
		if r.UserRegion != "" {
			regions = append(regions, r)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.Concurrency, r.Requests, r.Errors, r.RPS, r.P50, r.P90, r.P99, r.P999, r.Max,
			optional(r.MiBs, 2), optional(r.AddedP50, 3), optional(r.RatioToDirect, 3), optional(r.RatioToTunnel, 3),
			optional(r.CPUPer1k, 3), optional(r.P50Spread, 3), optional(r.RPSSpread, 1))
	}
	if len(regions) > 0 {
		b.WriteString(regionsMarkdown(regions))
	}
	if rep.Matrix != "" && len(regions) > 0 {
		fmt.Fprintf(&b, "\nRTT matrix: %s", rep.Matrix)
		if len(rep.MatrixSources) > 0 {
			b.WriteString("; sources:\n")
			for _, src := range rep.MatrixSources {
				fmt.Fprintf(&b, "\n- %s", src)
			}
		}
		b.WriteString("\n")
	}
	var notes []string
	var peak float64
	for _, r := range rep.Rows {
		peak = max(peak, r.PeakRSSMiB)
		if r.Failed != nil {
			notes = append(notes, fmt.Sprintf("- %s c=%d: after the kill %d requests failed and %d stalled; recovery %s ms",
				r.Scenario, r.Concurrency, *r.Failed, *r.Stalled, strconv.FormatFloat(*r.RecoveryMS, 'f', 1, 64)))
		}
		if len(r.ErrorsByKind) > 0 {
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(r.ErrorsByKind)) {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, r.ErrorsByKind[k]))
			}
			notes = append(notes, fmt.Sprintf("- %s c=%d errors: %s", r.Scenario, r.Concurrency, strings.Join(kinds, ", ")))
		}
	}
	if peak > 0 {
		notes = append(notes, fmt.Sprintf("- Peak RSS of the process: %.1f MiB", peak))
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

// regionsMarkdown renders the rows that have a user region as their own
// table: one row per scenario, strategy and user region.
func regionsMarkdown(rows []Result) string {
	var b strings.Builder
	b.WriteString("\n| scenario | strategy | user region | c | requests | errors | rps | p50 ms | p90 ms | p99 ms | optimal ms | est. error % | target met | lowest p50 | tie p50 | p50 spread ms |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|--:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %.1f | %.3f | %.3f | %.3f | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.Strategy, r.UserRegion, r.Concurrency, r.Requests, r.Errors, r.RPS, r.P50, r.P90, r.P99,
			optional(r.OptimalMS, 1), optional(r.EstimateErrorPct, 1), yesNo(r.TargetMet), yesNo(r.LowestP50), yesNo(r.TieP50), optional(r.P50Spread, 3))
	}
	return b.String()
}

func yesNo(v *bool) string {
	switch {
	case v == nil:
		return ""
	case *v:
		return "yes"
	}
	return "no"
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
