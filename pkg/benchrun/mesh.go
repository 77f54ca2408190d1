package benchrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/postern/postern/pkg/harness"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/simnet"
)

const (
	// sharedGroup is the connector group of the regions scenario; its app
	// is "app-shared".
	sharedGroup = "shared"
	// convergeTimeout bounds the wait for a multi-region system to
	// converge, and for its routes to be rebuilt after a strategy switch:
	// seconds on an idle machine, but far longer when other work keeps
	// the cores busy, which is no reason to give up a run.
	convergeTimeout = 3 * time.Minute
)

// RegionSystem is the multi-region system of the regions scenario: one
// mesh node per region of its matrix and group "shared" served by
// connectors in some of the regions. Its methods are called from one
// goroutine at a time.
type RegionSystem interface {
	// Matrix returns the RTT matrix the system simulates.
	Matrix() *simnet.Matrix
	// ConnectorRegions returns the regions of the shared group's
	// connectors.
	ConnectorRegions() []string
	// Attachments returns the shared group's connectors' attachments to
	// mesh nodes right now.
	Attachments() []harness.Attachment
	// SetStrategy switches every node to s and returns once every node's
	// route to the shared group's app has been rebuilt since; it does
	// nothing when its last call switched to s already.
	SetStrategy(ctx context.Context, s route.Strategy) error
	// User returns a new transport, owned by the caller, for a user in
	// region, which reaches that region's node over the simulated
	// latency, and the URL of path on the shared app through that node.
	User(region, path string) (*http.Transport, string, error)
	// EstimateError returns the worst route estimate error
	// (route.EstimateError) over the paths region's node chose for the
	// shared app; ok is false while it has no estimate.
	EstimateError(region string) (worst float64, ok bool, err error)
}

// RelaySystem is the two-node system of the relay scenario: a user at
// node A, whose app's connector group is pinned to node B's region.
type RelaySystem interface {
	// User returns a new transport, owned by the caller, that reaches
	// node A, and the URL of path on the app through node A.
	User(path string) (*http.Transport, string)
	// CheckRelay returns an error unless node A's chosen route to the
	// app is a relay through node B.
	CheckRelay() error
}

// ConnectorRegions returns the regions the regions scenario places the
// shared group's two connectors in: the first and the last region of m
// (one connector when m has one region).
func ConnectorRegions(m *simnet.Matrix) []string {
	rs := m.Regions()
	if len(rs) == 0 {
		return nil
	}
	return slices.Compact([]string{rs[0], rs[len(rs)-1]})
}

// NodeID returns the id of the regions system's mesh node in region.
func NodeID(region string) string { return "n-" + region }

// regionHarness adapts a multi-region harness to RegionSystem.
type regionHarness struct {
	h     *harness.Harness
	m     *simnet.Matrix
	conns []string
	// current is the strategy the last successful SetStrategy switched
	// to; empty before the first.
	current route.Strategy
}

// startRegions starts one mesh node per region of m, the shared group's
// connectors in ConnectorRegions(m), and waits for convergence.
func startRegions(ctx context.Context, m *simnet.Matrix, logger *slog.Logger) (*regionHarness, error) {
	top := &harness.Topology{Net: simnet.NewNetwork(m, uint64(time.Now().UnixNano())),
		Groups: []harness.GroupSpec{{ID: sharedGroup}}, Strategy: route.Latency}
	for _, r := range m.Regions() {
		top.Nodes = append(top.Nodes, harness.NodeSpec{ID: NodeID(r), Region: r})
	}
	conns := ConnectorRegions(m)
	for _, r := range conns {
		top.Connectors = append(top.Connectors, harness.ConnectorSpec{Group: sharedGroup, Region: r})
	}
	h, err := startTopology(ctx, top, logger)
	if err != nil {
		return nil, fmt.Errorf("benchrun: start regions system: %w", err)
	}
	return &regionHarness{h: h, m: m, conns: conns}, nil
}

// startTopology starts a harness with top and waits until it converged.
func startTopology(ctx context.Context, top *harness.Topology, logger *slog.Logger) (*harness.Harness, error) {
	h, err := harness.Start(ctx, harness.Options{Topology: top, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := h.WaitConverged(ctx, convergeTimeout); err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

func (r *regionHarness) Matrix() *simnet.Matrix     { return r.m }
func (r *regionHarness) ConnectorRegions() []string { return slices.Clone(r.conns) }
func (r *regionHarness) Attachments() []harness.Attachment {
	return r.h.Attachments(sharedGroup)
}

func (r *regionHarness) SetStrategy(ctx context.Context, s route.Strategy) error {
	if s == r.current {
		return nil
	}
	app := "app-" + sharedGroup
	switched := time.Now()
	for _, m := range r.h.Meshes() {
		if err := m.Node.SetStrategy(s); err != nil {
			return fmt.Errorf("benchrun: set strategy %s on %s: %w", s, m.ID, err)
		}
	}
	var why string
	err := harness.WaitFor(ctx, convergeTimeout, func() bool {
		for _, m := range r.h.Meshes() {
			ex, err := m.Node.Explain(app)
			switch {
			case err != nil:
				why = err.Error()
				return false
			case !ex.Built.After(switched) || len(ex.Paths) == 0:
				why = fmt.Sprintf("%s has not rebuilt its route to %s", m.ID, app)
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("benchrun: set strategy %s: %s: %w", s, why, err)
	}
	r.current = s
	return nil
}

func (r *regionHarness) EstimateError(region string) (float64, bool, error) {
	i := r.h.MeshIndex(NodeID(region))
	if i < 0 {
		return 0, false, fmt.Errorf("benchrun: %w %q", ErrNoRegion, region)
	}
	return r.h.RouteEstimateError(i, sharedGroup)
}

func (r *regionHarness) User(region, path string) (*http.Transport, string, error) {
	i := r.h.MeshIndex(NodeID(region))
	if i < 0 {
		return nil, "", fmt.Errorf("benchrun: %w %q", ErrNoRegion, region)
	}
	return r.h.UserClient(i).Transport.(*http.Transport), r.h.GroupURL(i, sharedGroup, path), nil
}

// relayHarness adapts a two-node harness to RelaySystem.
type relayHarness struct{ h *harness.Harness }

// startRelay starts the harness's relay system: node A in region a and
// node B in region b with no injected delay, and one connector of a group
// pinned to region b.
func startRelay(ctx context.Context, logger *slog.Logger) (*relayHarness, error) {
	top := harness.RelayTopology(simnet.NewNetwork(harness.ZeroMatrix(), 1))
	h, err := startTopology(ctx, top, logger)
	if err != nil {
		return nil, fmt.Errorf("benchrun: start relay system: %w", err)
	}
	return &relayHarness{h: h}, nil
}

func (r *relayHarness) User(path string) (*http.Transport, string) {
	return r.h.UserClient(0).Transport.(*http.Transport), r.h.GroupURL(0, harness.RelayGroup, path)
}

func (r *relayHarness) CheckRelay() error {
	if err := r.h.CheckRelay(); err != nil {
		if errors.Is(err, harness.ErrNotRelay) {
			return fmt.Errorf("benchrun: %w: %w", ErrNotRelay, err)
		}
		return fmt.Errorf("benchrun: %w", err)
	}
	return nil
}

// openRelay GETs /hello from a user at node A, relayed through node B to
// the connector, after checking that the route is really a relay.
func openRelay(ctx context.Context, sys System, p Params) (*Row, error) {
	rs, err := sys.Relay(ctx)
	if err != nil {
		return nil, err
	}
	if err := rs.CheckRelay(); err != nil {
		return nil, err
	}
	tr, u := rs.User("/hello")
	c := noRedirect(&http.Client{Transport: http1(tr, p.Concurrency)})
	return &Row{Op: GetOp(c, u, -1, nil), Close: c.CloseIdleConnections}, nil
}
