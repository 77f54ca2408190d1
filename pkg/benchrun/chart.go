package benchrun

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// palette colours the rows of a chart, in order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// cdfQuantiles are the quantiles (percent) a CDF polyline goes through:
// every percent, then finer steps into the tail.
var cdfQuantiles = func() []float64 {
	var q []float64
	for i := 0; i < 99; i++ {
		q = append(q, float64(i))
	}
	for i := 0; i < 10; i++ {
		q = append(q, 99+float64(i)*0.1)
	}
	for i := 0; i < 10; i++ {
		q = append(q, 99.9+float64(i)*0.01)
	}
	return append(q, 100)
}()

// Charts renders the charts of rows as SVG documents keyed by file name:
// "cdf-SCENARIO.svg", the latency CDF of each scenario whose rows hold
// latencies (one line per row, logarithmic latency axis); "p50.svg", the
// median latency of every non-bulk row; and "mib_s.svg", the throughput of
// every bulk row; "regions.svg", the p50 of the rows with a user region
// (regions scenario) grouped by user region, one bar per strategy, with
// optimal_ms marked. Those rows appear in no other chart. Rows read back
// from JSON hold no latencies and get no CDF.
func Charts(rows []Result) map[string][]byte {
	out := map[string][]byte{}
	var order []string
	byScenario := map[string][]Result{}
	var p50, mibs []bar
	var regions []Result
	for _, r := range rows {
		if r.UserRegion != "" {
			regions = append(regions, r)
			continue
		}
		label := fmt.Sprintf("%s c=%d", r.Scenario, r.Concurrency)
		if r.hist != nil && r.hist.TotalCount() > 0 {
			if byScenario[r.Scenario] == nil {
				order = append(order, r.Scenario)
			}
			byScenario[r.Scenario] = append(byScenario[r.Scenario], r)
		}
		if r.MiBs != nil {
			mibs = append(mibs, bar{label, *r.MiBs})
		} else if r.Requests > 0 {
			p50 = append(p50, bar{label, r.P50})
		}
	}
	for _, s := range order {
		out["cdf-"+s+".svg"] = cdfChart(s, byScenario[s])
	}
	if len(p50) > 0 {
		out["p50.svg"] = barChart("Median latency (p50) by scenario", "ms", p50)
	}
	if len(mibs) > 0 {
		out["mib_s.svg"] = barChart("Bulk throughput by scenario", "MiB/s", mibs)
	}
	if len(regions) > 0 {
		out["regions.svg"] = regionsChart(regions)
	}
	return out
}

// svgDoc collects the elements of one SVG document.
type svgDoc struct {
	b    strings.Builder
	w, h int
}

func newSVG(w, h int) *svgDoc {
	d := &svgDoc{w: w, h: h}
	fmt.Fprintf(&d.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&d.b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", w, h)
	return d
}

func (d *svgDoc) text(x, y float64, anchor, s string, extra string) {
	fmt.Fprintf(&d.b, `<text x="%.1f" y="%.1f" text-anchor="%s"%s>%s</text>`+"\n", x, y, anchor, extra, html.EscapeString(s))
}

func (d *svgDoc) line(x1, y1, x2, y2 float64, stroke string, width float64) {
	fmt.Fprintf(&d.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`+"\n", x1, y1, x2, y2, stroke, width)
}

func (d *svgDoc) bytes() []byte {
	d.b.WriteString("</svg>\n")
	return []byte(d.b.String())
}

// cdfChart draws the latency CDF of one scenario's rows.
func cdfChart(scenario string, rows []Result) []byte {
	const w, plotH, left, right, top, bottom = 760, 460, 70, 30, 50, 60
	h := plotH + 20*len(rows) + 10 // the legend goes under the plot
	pw, ph := float64(w-left-right), float64(plotH-top-bottom)
	lo, hi := math.Inf(1), 0.0
	for _, r := range rows {
		lo = math.Min(lo, float64(r.hist.Min())/1000)
		hi = math.Max(hi, float64(r.hist.Max())/1000)
	}
	lo = math.Max(lo, 0.001)
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi <= dlo {
		dhi = dlo + 1
	}
	x := func(ms float64) float64 {
		return left + (math.Log10(math.Max(ms, lo))-dlo)/(dhi-dlo)*pw
	}
	y := func(q float64) float64 { return top + ph - q/100*ph }
	d := newSVG(w, h)
	d.text(float64(w)/2, 28, "middle", "Latency CDF: "+scenario, ` font-size="16" font-weight="bold"`)
	for q := 0.0; q <= 100; q += 10 {
		d.line(left, y(q), left+pw, y(q), "#e0e0e0", 1)
		d.text(left-8, y(q)+4, "end", fmt.Sprintf("%.0f%%", q), "")
	}
	for e := dlo; e <= dhi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if e == dhi && m > 1 {
				break
			}
			px := left + (math.Log10(v)-dlo)/(dhi-dlo)*pw
			if m == 1 {
				d.line(px, top, px, top+ph, "#c8c8c8", 1)
				d.text(px, top+ph+18, "middle", fmtMS(v), "")
			} else {
				d.line(px, top, px, top+ph, "#eeeeee", 1)
			}
		}
	}
	d.line(left, top+ph, left+pw, top+ph, "#333333", 1)
	d.line(left, top, left, top+ph, "#333333", 1)
	d.text(left+pw/2, float64(plotH)-18, "middle", "latency, ms (logarithmic)", "")
	d.text(18, top+ph/2, "middle", "requests at or below", ` transform="rotate(-90 18 `+fmt.Sprintf("%.1f", top+ph/2)+`)"`)
	for i, r := range rows {
		var pts []string
		for _, q := range cdfQuantiles {
			v := float64(r.hist.ValueAtQuantile(q)) / 1000
			if q == 0 {
				v = float64(r.hist.Min()) / 1000
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(v), y(q)))
		}
		col := palette[i%len(palette)]
		fmt.Fprintf(&d.b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		ly := float64(plotH) + 8 + float64(i)*20
		lx := left + 14.0
		d.line(lx, ly-4, lx+24, ly-4, col, 3)
		d.text(lx+30, ly, "start", fmt.Sprintf("c=%d  p50 %s ms  p99 %s ms  (%d req)", r.Concurrency,
			fmtMS(r.P50), fmtMS(r.P99), r.hist.TotalCount()), "")
	}
	return d.bytes()
}

// bar is one bar of a bar chart.
type bar struct {
	label string
	value float64
}

// barChart draws horizontal bars, one per row, with their values.
func barChart(title, unit string, bars []bar) []byte {
	const w, left, right, top, rowH = 760, 170, 90, 60, 26
	h := top + rowH*len(bars) + 50
	pw := float64(w - left - right)
	hi := 0.0
	for _, b := range bars {
		hi = math.Max(hi, b.value)
	}
	step := niceStep(hi / 5)
	hi = math.Max(step, math.Ceil(hi/step)*step)
	d := newSVG(w, h)
	d.text(float64(w)/2, 28, "middle", title, ` font-size="16" font-weight="bold"`)
	bottom := float64(top + rowH*len(bars))
	for v := 0.0; v <= hi+step/2; v += step {
		px := left + v/hi*pw
		d.line(px, top-6, px, bottom, "#e0e0e0", 1)
		d.text(px, bottom+18, "middle", strconv.FormatFloat(round(v, 6), 'f', -1, 64), "")
	}
	d.text(left+pw/2, bottom+38, "middle", unit, "")
	colours := map[string]string{} // one colour per scenario
	for i, b := range bars {
		yy := float64(top + rowH*i)
		name, _, _ := strings.Cut(b.label, " ")
		col, ok := colours[name]
		if !ok {
			col = palette[len(colours)%len(palette)]
			colours[name] = col
		}
		fmt.Fprintf(&d.b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="%s"/>`+"\n", left, yy+4, b.value/hi*pw, rowH-8, col)
		d.text(left-8, yy+rowH/2+4, "end", b.label, "")
		d.text(left+b.value/hi*pw+6, yy+rowH/2+4, "start", fmtMS(b.value), "")
	}
	d.line(left, top-6, left, bottom, "#333333", 1)
	return d.bytes()
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// fmtMS formats a value with as few digits as read well.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}
