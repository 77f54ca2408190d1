package benchrun

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// regionsChart draws the rows with a user region as grouped vertical bars:
// one group per user region, one bar per strategy (its p50), and a dashed
// line across the group at optimal_ms.
func regionsChart(rows []Result) []byte {
	var regions, strategies []string
	p50 := map[[2]string]float64{}
	optimal := map[string]float64{}
	hi := 0.0
	for _, r := range rows {
		if !slices.Contains(regions, r.UserRegion) {
			regions = append(regions, r.UserRegion)
		}
		if !slices.Contains(strategies, r.Strategy) {
			strategies = append(strategies, r.Strategy)
		}
		p50[[2]string{r.UserRegion, r.Strategy}] = r.P50
		hi = math.Max(hi, r.P50)
		if r.OptimalMS != nil {
			optimal[r.UserRegion] = *r.OptimalMS
			hi = math.Max(hi, *r.OptimalMS)
		}
	}
	const left, right, top, plotH, barW, gap = 70, 30, 60, 330, 40, 50
	groupW := float64(barW*len(strategies) + gap)
	w := max(760, left+right+int(groupW)*len(regions))
	h := top + plotH + 80
	step := niceStep(hi / 5)
	hi = math.Max(step, math.Ceil(hi*1.08/step)*step) // headroom for the value labels
	y := func(v float64) float64 { return top + plotH - v/hi*plotH }
	d := newSVG(w, h)
	d.text(float64(w)/2, 28, "middle", "Median latency (p50) by user region and route strategy", ` font-size="16" font-weight="bold"`)
	for v := 0.0; v <= hi+step/2; v += step {
		d.line(left, y(v), float64(w-right), y(v), "#e0e0e0", 1)
		d.text(left-8, y(v)+4, "end", strconv.FormatFloat(round(v, 6), 'f', -1, 64), "")
	}
	d.text(18, top+plotH/2, "middle", "p50, ms", fmt.Sprintf(` transform="rotate(-90 18 %d)"`, top+plotH/2))
	x0 := float64(left) + float64(w-left-right-int(groupW)*len(regions))/2 + gap/2
	for gi, reg := range regions {
		gx := x0 + float64(gi)*groupW
		for si, st := range strategies {
			v, ok := p50[[2]string{reg, st}]
			if !ok {
				continue
			}
			bx := gx + float64(si*barW)
			fmt.Fprintf(&d.b, `<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"/>`+"\n", bx+2, y(v), barW-4, y(0)-y(v),
				palette[si%len(palette)])
			label := fmtMS(v)
			if v == 0 {
				label = "n/a"
			}
			d.text(bx+barW/2, y(v)-4, "middle", label, ` font-size="10"`)
		}
		if opt, ok := optimal[reg]; ok {
			fmt.Fprintf(&d.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000" stroke-width="2" stroke-dasharray="5,3"/>`+"\n",
				gx-4, y(opt), gx+float64(barW*len(strategies))+4, y(opt))
		}
		d.text(gx+float64(barW*len(strategies))/2, top+plotH+18, "middle", reg, "")
	}
	d.line(left, top+plotH, float64(w-right), top+plotH, "#333333", 1)
	d.line(left, top, left, top+plotH, "#333333", 1)
	lx, ly := float64(left), float64(top+plotH+50)
	for si, st := range strategies {
		fmt.Fprintf(&d.b, `<rect x="%.1f" y="%.1f" width="14" height="14" fill="%s"/>`+"\n", lx, ly-11, palette[si%len(palette)])
		d.text(lx+20, ly, "start", st, "")
		lx += 110
	}
	fmt.Fprintf(&d.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000" stroke-width="2" stroke-dasharray="5,3"/>`+"\n",
		lx, ly-4, lx+28, ly-4)
	d.text(lx+34, ly, "start", "optimal_ms (best RTT the matrix allows)", "")
	return d.bytes()
}
