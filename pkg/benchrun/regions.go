package benchrun

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/simnet"
)

// regionsMaxWarmup caps the warm-up of each regions row, which holds the
// scenario to about a minute with the default matrix and settings.
const regionsMaxWarmup = 500 * time.Millisecond

// targetSlack and targetFloorMS are how far above optimal_ms a latency
// row's p50 may be and still meet the target (issue 16): 5% plus 0.3 ms,
// about what Postern's own processing adds to a request (the tunnel
// scenario adds 0.23 ms).
const (
	targetSlack   = 1.05
	targetFloorMS = 0.3
)

// tieSlack and tieFloorMS are the noise margin of the regions rows: two
// p50s within 5% or 0.5 ms of each other (whichever is larger) are a tie,
// not a difference. Two strategies that take the same path differ only by
// noise (about ±0.3 ms on a 5 ms local path at c=1).
const (
	tieSlack   = 0.05
	tieFloorMS = 0.5
)

// regionsMinRequests is the fewest requests a regions row records.
const regionsMinRequests = 200

// regionsRowTime is how long a regions row aims to take to record
// regionsMinRequests: the row's workers are sized for it (see
// regionsWorkers).
const regionsRowTime = 2 * time.Second

// regionsMaxWorkers caps the workers of a regions row.
const regionsMaxWorkers = 32

// simnetOverhead is the allowance, in ms, for what a request on a
// simulated path takes beyond its RTT when the workers of a row are sized
// (regionsWorkers). A request takes about 0.3–0.5 ms more (Postern's own
// processing, the TLS record on the user's leg and simnet's timers); the
// allowance is larger (and was chosen when the simulator still added an
// RTT to short paths), and stays, because it sets the rows' concurrency,
// by which compare matches rows across runs.
const simnetOverhead = 3.0

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

// OptimalMS returns the best RTT a user in region user can get to the
// shared group's connectors, in ms: the user's leg to its own region's
// node (the intra-region RTT) plus harness.OptimalRTT from that node over
// the connectors' attachments atts — straight to a connector attached to
// the user's node, or relayed through a node a connector is attached to.
// ok is false when atts is empty.
func OptimalMS(m *simnet.Matrix, user string, atts []harness.Attachment) (ms float64, ok bool) {
	best, ok := harness.OptimalRTT(m, NodeID(user), user, atts)
	if !ok {
		return 0, false
	}
	return round(float64(m.RTT(user, user)+best)/float64(time.Millisecond), 3), true
}

// regionsWorkers returns the workers of a regions row of strategy s for
// a user in region user: enough that regionsMinRequests take about
// regionsRowTime at the latency of the path the matrix alone suggests
// (plus simnetOverhead), between 1 and regionsMaxWorkers. For latency and
// nearest that path is the optimum with each connector reached through
// its own region's node; random may pick any path, so its rows are sized
// for the slowest one (through any node to any connector region). It
// depends only on the matrix and the strategy, so compare matches the
// rows across runs. Local paths get one worker; the 80–250 ms paths
// 9–32, which add no queueing (each worker has its own connection, the
// simulated links have no bandwidth limit) and a few hundred requests per
// second of CPU at most.
func regionsWorkers(m *simnet.Matrix, user string, conns []string, s route.Strategy) int {
	var atts []harness.Attachment
	for _, x := range conns {
		atts = append(atts, harness.Attachment{ConnectorRegion: x, Node: NodeID(x), NodeRegion: x})
	}
	est, ok := OptimalMS(m, user, atts)
	if !ok {
		return 1
	}
	if s == route.Random {
		for _, x := range conns {
			for _, v := range m.Regions() {
				worst := m.RTT(user, user) + harness.PathRTT(m, user, v, x, false)
				est = max(est, float64(worst)/float64(time.Millisecond))
			}
		}
	}
	n := math.Ceil(regionsMinRequests * (est + simnetOverhead) / float64(regionsRowTime.Milliseconds()))
	return int(min(max(n, 1), regionsMaxWorkers))
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
	workers := regionsWorkers(rs.Matrix(), p.Variant.UserRegion, rs.ConnectorRegions(), route.Strategy(p.Variant.Strategy))
	// The optimum from the attachments at the start of the row; Finish
	// lowers it if the connectors attached somewhere better meanwhile.
	opt, ok := OptimalMS(rs.Matrix(), p.Variant.UserRegion, rs.Attachments())
	if !ok {
		return nil, fmt.Errorf("benchrun: regions: %w", ErrNotAttached)
	}
	c := noRedirect(&http.Client{Transport: http1(tr, workers)})
	v := p.Variant
	return &Row{Op: GetOp(c, u, -1, nil), Concurrency: workers, Close: c.CloseIdleConnections, Finish: func(r *Result) {
		if end, ok := OptimalMS(rs.Matrix(), v.UserRegion, rs.Attachments()); ok {
			opt = min(opt, end)
		}
		r.Strategy, r.UserRegion, r.OptimalMS = v.Strategy, v.UserRegion, ptr(opt)
		// The route's view of its chosen paths at the end of the row.
		if e, ok, err := rs.EstimateError(v.UserRegion); err == nil && ok {
			r.EstimateErrorPct = ptr(round(100*e, 1))
		}
	}}, nil
}

// annotateRegions sets TargetMet, LowestP50 and TieP50 on the latency
// rows of scenarios with strategies and user regions, comparing each with
// the other strategies' rows for the same scenario and user region (its
// competitors; their concurrency may differ, see regionsWorkers):
//
//   - TargetMet: p50 is at most optimal_ms × 1.05 + 0.3 ms;
//   - LowestP50: p50 is below every competitor's by more than the noise
//     margin (5% of it or 0.5 ms, whichever is larger);
//   - TieP50: p50 is not lowest, but within the margin of the best
//     competitor's.
//
// LowestP50 and TieP50 are left unset when no competitor has a successful
// request: nothing is lowest alone. A latency row without a successful
// request is neither lowest nor a tie.
func annotateRegions(rows []Result) {
	for i := range rows {
		r := &rows[i]
		if r.Strategy != string(route.Latency) || r.UserRegion == "" {
			continue
		}
		if r.OptimalMS != nil {
			r.TargetMet = ptr(r.P50 > 0 && r.P50 <= *r.OptimalMS*targetSlack+targetFloorMS)
		}
		best := math.Inf(1)
		for _, o := range rows {
			if o.Scenario == r.Scenario && o.UserRegion == r.UserRegion &&
				o.Strategy != r.Strategy && o.P50 > 0 {
				best = min(best, o.P50)
			}
		}
		if math.IsInf(best, 1) {
			continue
		}
		margin := max(tieFloorMS, best*tieSlack)
		lowest := r.P50 > 0 && r.P50 < best-margin
		r.LowestP50 = ptr(lowest)
		r.TieP50 = ptr(!lowest && r.P50 > 0 && r.P50 <= best+margin)
	}
}
