package harness

import (
	"time"

	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/simnet"
)

// Attachment is one connector's tunnel to one mesh node, as the RTT
// optimum of a route sees it: where the connector is and where the node
// it attached to is.
type Attachment struct {
	// ConnectorRegion is the region of the connector.
	ConnectorRegion string
	// Node is the id of the mesh node the connector is attached to.
	Node string
	// NodeRegion is the region of that node.
	NodeRegion string
}

// PathRTT returns the simulated RTT of a route from a mesh node in region
// from to a connector in region conn, relayed through a node in region
// via: the matrix RTT from from to via plus from via to conn (each the
// intra-region RTT when both ends share a region). local means the
// connector is attached to the node the route starts at, so the route is
// just the RTT from from to conn.
func PathRTT(m *simnet.Matrix, from, via, conn string, local bool) time.Duration {
	if local {
		return m.RTT(from, conn)
	}
	return m.RTT(from, via) + m.RTT(via, conn)
}

// OptimalRTT returns the lowest PathRTT a route from mesh node fromNode in
// region fromRegion can take to one of atts: through the attachment's
// node, or directly when the attachment is to fromNode itself. ok is false
// when atts is empty (nothing to route to). This is the one definition of
// a route's optimum, shared by the mesh tests that assert routing quality
// and bench's regions scenario.
func OptimalRTT(m *simnet.Matrix, fromNode, fromRegion string, atts []Attachment) (best time.Duration, ok bool) {
	for i, a := range atts {
		c := PathRTT(m, fromRegion, a.NodeRegion, a.ConnectorRegion, a.Node == fromNode)
		if i == 0 || c < best {
			best = c
		}
	}
	return best, len(atts) > 0
}

// Attachments returns the live attachments of the connectors of group:
// one per connector and mesh node it is attached to right now, in
// connector then node order.
func (h *Harness) Attachments(group string) []Attachment {
	region := map[string]string{}
	for _, m := range h.Meshes() {
		region[m.ID] = m.Region
	}
	var atts []Attachment
	for _, c := range h.Connectors() {
		if c.C.State().Group != group {
			continue
		}
		for _, id := range c.C.AttachedNodes() { // sorted
			atts = append(atts, Attachment{ConnectorRegion: c.Region, Node: id, NodeRegion: region[id]})
		}
	}
	return atts
}

// RouteEstimateError returns the worst route estimate error over the
// paths mesh node i chose for group's app (app-<group>):
// route.EstimateError of the path's estimated RTT (explain's rtt_ms)
// against its true RTT in the topology's matrix (PathRTT). ok is false
// when the node has chosen no path with an estimate yet, or the harness
// has no topology (no matrix to compare with).
func (h *Harness) RouteEstimateError(i int, group string) (worst float64, ok bool, err error) {
	top := h.opts.Topology
	if top == nil {
		return 0, false, nil
	}
	mm := h.Meshes()[i]
	ex, err := mm.Node.Explain("app-" + group)
	if err != nil {
		return 0, false, err
	}
	region := map[string]string{}
	for _, m := range h.Meshes() {
		region[m.ID] = m.Region
	}
	from := h.RegionOf(i)
	for _, p := range ex.Paths {
		conn := h.ConnectorRegion(p.Connector)
		if !p.Chosen || p.RTTMs <= 0 || conn == "" {
			continue
		}
		local := p.Via == "local"
		via := region[p.Via]
		if local {
			via = from
		}
		truth := PathRTT(top.Net.Matrix(), from, via, conn, local)
		est := time.Duration(p.RTTMs * float64(time.Millisecond))
		worst, ok = max(worst, route.EstimateError(est, truth)), true
	}
	return worst, ok, nil
}
