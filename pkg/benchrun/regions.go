package benchrun

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/simnet"
)

// regionsMaxWarmup caps the warm-up of each regions row, which holds the
// scenario to about 40 s with the default matrix and settings.
const regionsMaxWarmup = 500 * time.Millisecond

// targetSlack is how far above optimal_ms a latency row's p50 may be and
// still meet the target (10%).
const targetSlack = 1.10

// tieSlack and tieFloorMS are how much above another strategy's p50 the
// latency strategy's may be and still count as the lowest: 5% of it or
// 0.5 ms, whichever is larger. Two strategies that take the same path
// differ only by noise (about ±0.3 ms on a 5 ms local path at c=1).
const (
	tieSlack   = 0.05
	tieFloorMS = 0.5
)

// RegionStrategies are the route strategies the regions scenario
// compares, in row order.
var regionStrategies = []route.Strategy{route.Latency, route.Nearest, route.Random}

// regionVariants returns the rows of the regions scenario: every strategy
// (latency, nearest, random), and for each every region of the run's
// matrix as the user region.
func regionVariants(cfg Config) []Variant {
	var vs []Variant
	for _, s := range regionStrategies {
		for _, r := range cfg.matrix().Regions() {
			vs = append(vs, Variant{Strategy: string(s), UserRegion: r})
		}
	}
	return vs
}

// OptimalMS returns the best RTT a user in region user can get to a
// connector in one of conns, in ms, from m alone: the user's leg to the
// node of its own region (the intra-region RTT), plus either that
// region's intra-region RTT again (a connector in the same region) or the
// RTT to the connector's region and its intra-region RTT, whichever
// connector region is cheapest.
func OptimalMS(m *simnet.Matrix, user string, conns []string) float64 {
	best := time.Duration(math.MaxInt64)
	for _, x := range conns {
		leg := m.RTT(user, x) + m.RTT(x, x)
		if x == user {
			leg = m.RTT(user, user)
		}
		best = min(best, leg)
	}
	if len(conns) == 0 {
		best = 0
	}
	return round(float64(m.RTT(user, user)+best)/float64(time.Millisecond), 3)
}

// openRegions switches every node of the regions system to the row's
// strategy (when it is not already in use) and GETs /hello on the shared
// app as a user in the row's region, through that region's node.
func openRegions(ctx context.Context, sys System, p Params) (*Row, error) {
	rs, err := sys.Regions(ctx)
	if err != nil {
		return nil, err
	}
	if err := rs.SetStrategy(ctx, route.Strategy(p.Variant.Strategy)); err != nil {
		return nil, err
	}
	tr, u, err := rs.User(p.Variant.UserRegion, "/hello")
	if err != nil {
		return nil, err
	}
	c := noRedirect(&http.Client{Transport: http1(tr, p.Concurrency)})
	opt := OptimalMS(rs.Matrix(), p.Variant.UserRegion, rs.ConnectorRegions())
	v := p.Variant
	return &Row{Op: GetOp(c, u, -1, nil), Close: c.CloseIdleConnections, Finish: func(r *Result) {
		r.Strategy, r.UserRegion, r.OptimalMS = v.Strategy, v.UserRegion, ptr(opt)
	}}, nil
}

// annotateRegions sets TargetMet and LowestP50 on the latency rows of
// scenarios with strategies and user regions: whether p50 is within 10%
// of optimal_ms, and whether it is the lowest p50 of all the strategies'
// rows for the same scenario, concurrency and user region (a tie within
// tieSlack counts as lowest).
func annotateRegions(rows []Result) {
	for i := range rows {
		r := &rows[i]
		if r.Strategy != string(route.Latency) || r.UserRegion == "" {
			continue
		}
		if r.OptimalMS != nil {
			r.TargetMet = ptr(r.P50 > 0 && r.P50 <= *r.OptimalMS*targetSlack)
		}
		lowest := r.P50 > 0
		for _, o := range rows {
			if o.Scenario == r.Scenario && o.Concurrency == r.Concurrency && o.UserRegion == r.UserRegion &&
				o.Strategy != r.Strategy && o.P50 > 0 && r.P50 > o.P50+max(tieFloorMS, o.P50*tieSlack) {
				lowest = false
			}
		}
		r.LowestP50 = ptr(lowest)
	}
}
