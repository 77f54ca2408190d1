package meshnode

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/route"
)

// Explain is the route explanation for one app at this node: every
// candidate path with its estimated cost, and the ones chosen.
type Explain struct {
	App      string `json:"app"`
	Group    string `json:"group"`
	Node     string `json:"node"`
	Region   string `json:"region"`
	Strategy string `json:"strategy"`
	// PinRegion and ExcludeRegions are the group's constraints.
	PinRegion      string        `json:"pin_region,omitempty"`
	ExcludeRegions []string      `json:"exclude_regions,omitempty"`
	Paths          []ExplainPath `json:"paths"`
	// Built is when the decision was made.
	Built time.Time `json:"built"`
}

// ExplainPath is one candidate path of an Explain.
type ExplainPath struct {
	// Via is "local" for a connector attached to this node, or the relay
	// node's id.
	Via       string `json:"via"`
	Region    string `json:"region"`
	Connector string `json:"connector"`
	// NodeRTTMs is the RTT to the relay node the cost used, from
	// RTTSource (route.RTTSource: measured, coordinates, ...);
	// CoordRTTMs and MeasuredRTTMs are both inputs (zero when absent).
	NodeRTTMs      float64 `json:"node_rtt_ms"`
	NodeRTTKnown   bool    `json:"node_rtt_known"`
	RTTSource      string  `json:"rtt_source,omitempty"`
	CoordRTTMs     float64 `json:"coord_rtt_ms,omitempty"`
	MeasuredRTTMs  float64 `json:"measured_rtt_ms,omitempty"`
	ConnectorRTTMs float64 `json:"connector_rtt_ms"`
	// RTTMs is the path's estimated RTT (node RTT + connector RTT; zero
	// while the node RTT is unknown); CostMs adds the relay hop's cost.
	RTTMs    float64 `json:"rtt_ms"`
	CostMs   float64 `json:"cost_ms"`
	Load     int64   `json:"load"`
	Eligible bool    `json:"eligible"`
	// Chosen reports that the path takes requests now (the best tier);
	// Held that hysteresis alone keeps it there.
	Chosen bool   `json:"chosen"`
	Held   bool   `json:"held,omitempty"`
	Why    string `json:"why,omitempty"`
}

// ErrNoCluster is returned by SetStrategy on a node that is not in a
// cluster; ErrUnknownApp by Explain for an app the catalogue does not have.
var (
	ErrNoCluster  = errors.New("meshnode: this node is not in a cluster: every request goes to a connector attached to it")
	ErrUnknownApp = errors.New("meshnode: no such app in the catalogue")
)

// Explain returns the route explanation of the app with id (or external
// host) app.
func (n *Node) Explain(app string) (Explain, error) {
	cat := n.catalog.Current()
	a, ok := cat.App(app)
	if !ok {
		if a, ok = cat.AppByHost(app); !ok {
			return Explain{}, fmt.Errorf("%w: %q", ErrUnknownApp, app)
		}
	}
	if n.mesh == nil {
		return n.explainLone(a.ID, a.ConnectorGroup), nil
	}
	g, _ := cat.Group(a.ConnectorGroup)
	ex := Explain{App: a.ID, Group: a.ConnectorGroup, Node: n.cfg.ID, Region: n.cfg.Region,
		Strategy: string(n.mesh.router.strategyNow()), ExcludeRegions: g.ExcludeRegions}
	if g.PinRegion {
		ex.PinRegion = g.Region
	}
	d, built := n.mesh.decision(a.ConnectorGroup)
	ex.Built = built
	if d == nil {
		return ex, nil
	}
	held := map[string]bool{}
	for _, k := range d.Held {
		held[k] = true
	}
	for i, c := range d.Candidates {
		ex.Paths = append(ex.Paths, explainPath(c, i < d.Tier, held[c.Key()]))
	}
	ex.Paths = append(ex.Paths, n.mesh.otherPaths(a.ConnectorGroup, ex.Paths)...)
	return ex, nil
}

// otherPaths returns the paths the route decision does not score, so that
// an explanation lists every path this node knows of: the further
// connectors of a relay node (the decision scores each node by its best
// connector; that node balances among all of them) and the connectors
// attached to nodes that are not live members (never eligible).
func (m *mesh) otherPaths(group string, scored []ExplainPath) []ExplainPath {
	byNode := map[string]ExplainPath{}
	listed := map[[2]string]bool{}
	for _, p := range scored {
		byNode[p.Via] = p
		listed[[2]string{p.Via, p.Connector}] = true
	}
	members := map[string]gossip.Member{}
	for _, mb := range m.cluster.Members() {
		members[mb.ID] = mb
	}
	var out []ExplainPath
	for _, a := range m.cluster.Attachments() {
		if a.Group != group || a.Node == m.n.cfg.ID || listed[[2]string{a.Node, a.Connector}] {
			continue
		}
		listed[[2]string{a.Node, a.Connector}] = true
		p := ExplainPath{Via: a.Node, Connector: a.Connector, ConnectorRTTMs: ms(a.RTT), Load: int64(a.InFlight)}
		row, scoredNode := byNode[a.Node]
		mb, member := members[a.Node]
		switch {
		case scoredNode:
			p.Region, p.NodeRTTMs, p.NodeRTTKnown = row.Region, row.NodeRTTMs, row.NodeRTTKnown
			p.RTTSource, p.CoordRTTMs, p.MeasuredRTTMs = row.RTTSource, row.CoordRTTMs, row.MeasuredRTTMs
			p.CostMs = row.CostMs - row.ConnectorRTTMs + p.ConnectorRTTMs
			if row.RTTMs > 0 {
				p.RTTMs = row.RTTMs - row.ConnectorRTTMs + p.ConnectorRTTMs
			}
			p.Eligible = row.Eligible && a.Alive && !a.Draining
			p.Chosen = row.Chosen && p.Eligible
			p.Why = "balanced by " + a.Node + " among its connectors"
			if !row.Eligible {
				p.Why = row.Why
			}
		case member:
			p.Region, p.Why = mb.Region, "node "+string(mb.State)
		default:
			p.Why = "node not in the cluster"
		}
		switch {
		case !a.Alive:
			p.Why = "connector not answering probes"
		case a.Draining:
			p.Why = "connector draining"
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(x, y ExplainPath) int {
		if x.Eligible != y.Eligible {
			if x.Eligible {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Via+"/"+x.Connector, y.Via+"/"+y.Connector)
	})
	return out
}

// explainLone explains the route of a node outside any cluster: every
// connector of the group attached here, balanced by load.
func (n *Node) explainLone(app, group string) Explain {
	ex := Explain{App: app, Group: group, Node: n.cfg.ID, Region: n.cfg.Region, Strategy: "local (not in a cluster)",
		Paths: []ExplainPath{}, Built: n.cfg.Now()}
	for _, c := range n.pool.Group(group) {
		rtt := ms(c.SmoothedRTT())
		p := ExplainPath{Via: "local", Region: n.cfg.Region, Connector: c.ID, NodeRTTKnown: true, RTTSource: string(route.SourceLocal),
			ConnectorRTTMs: rtt, RTTMs: rtt, CostMs: rtt, Load: c.Outstanding(), Eligible: c.Alive() && !c.Draining()}
		p.Chosen = p.Eligible
		switch {
		case !c.Alive():
			p.Why = "connector not answering probes"
		case c.Draining():
			p.Why = "connector draining"
		}
		ex.Paths = append(ex.Paths, p)
	}
	return ex
}

func explainPath(c route.Scored, chosen, held bool) ExplainPath {
	via := c.Node
	if c.Local {
		via = "local"
	}
	p := ExplainPath{Via: via, Region: c.Region, Connector: c.Connector, RTTSource: string(c.RTTSource),
		MeasuredRTTMs: ms(c.MeasuredRTT), ConnectorRTTMs: ms(c.ConnectorRTT), RTTMs: ms(c.RTT), CostMs: ms(c.Cost),
		Load: c.Load, Eligible: c.Eligible, Chosen: chosen, Held: held, Why: c.Why}
	if c.NodeRTTKnown {
		p.CoordRTTMs = ms(c.NodeRTT)
	}
	switch c.RTTSource {
	case route.SourceLocal:
		p.NodeRTTKnown = true
	case route.SourceUnknown:
	default:
		p.NodeRTTKnown, p.NodeRTTMs = true, ms(c.RTT-c.ConnectorRTT)
	}
	return p
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Route returns the current decision for connector group, nil on a lone
// node or before the first one.
func (n *Node) Route(group string) *route.Decision {
	if n.mesh == nil {
		return nil
	}
	d, _ := n.mesh.decision(group)
	return d
}

// SetStrategy changes the route strategy at run time (bench compares
// strategies on one system); the routes are rebuilt at once.
func (n *Node) SetStrategy(s route.Strategy) error {
	if n.mesh == nil {
		return ErrNoCluster
	}
	s, err := route.ParseStrategy(string(s))
	if err != nil {
		return err
	}
	n.mesh.router.strategy.Store(s)
	n.mesh.mu.Lock()
	clear(n.mesh.decisions) // no hysteresis across strategies
	n.mesh.mu.Unlock()
	n.mesh.poke()
	return nil
}

// WriteExplain prints ex as the operator reads it on a terminal.
func WriteExplain(w io.Writer, ex Explain) error {
	fmt.Fprintf(w, "app %s (connector group %s) at node %s (%s), strategy %s", ex.App, ex.Group, ex.Node, ex.Region, ex.Strategy)
	if ex.PinRegion != "" {
		fmt.Fprintf(w, ", pinned to %s", ex.PinRegion)
	}
	if len(ex.ExcludeRegions) > 0 {
		fmt.Fprintf(w, ", excluding %s", strings.Join(ex.ExcludeRegions, ", "))
	}
	fmt.Fprintln(w)
	if len(ex.Paths) == 0 {
		_, err := fmt.Fprintln(w, "no path: no connector of the group is attached to any mesh node this node knows")
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tVIA\tREGION\tCONNECTOR\tTO NODE\tTO CONNECTOR\tEST. COST\tLOAD\tNOTE")
	for _, p := range ex.Paths {
		mark := " "
		switch {
		case p.Chosen:
			mark = "*"
		case !p.Eligible:
			mark = "x"
		}
		toNode := fmt.Sprintf("%.1f ms", p.NodeRTTMs)
		switch {
		case !p.NodeRTTKnown:
			toNode = "unknown"
		case p.Via != "local" && p.RTTSource != "":
			toNode += " (" + p.RTTSource + ")"
		}
		note := p.Why
		if p.Held {
			note = strings.TrimLeft(note+"; kept by hysteresis", "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f ms\t%.1f ms\t%d\t%s\n", mark, p.Via, p.Region, p.Connector, toNode,
			p.ConnectorRTTMs, p.CostMs, p.Load, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "* takes requests (balanced by load)   x not eligible   cost = to node + relay hop + to connector")
	return err
}

// MeshStatus is the cluster part of Status. Its lists are never nil (an
// empty list is [] in JSON).
type MeshStatus struct {
	Nodes       []NodeStatus       `json:"nodes"`
	Attachments []AttachmentStatus `json:"attachments"`
	Routes      []RouteStatus      `json:"routes"`
}

// AttachmentStatus is one connector attachment known through the gossip.
type AttachmentStatus struct {
	// Node is the mesh node the connector is attached to.
	Node      string `json:"node"`
	Connector string `json:"connector"`
	Group     string `json:"group"`
	// RTTMs is Node's measured round-trip time to the connector through
	// the tunnel, in milliseconds.
	RTTMs    float64 `json:"rtt_ms"`
	InFlight int     `json:"in_flight"`
	Alive    bool    `json:"alive"`
	Draining bool    `json:"draining"`
}

// NodeStatus is one member as this node sees it.
type NodeStatus struct {
	ID         string  `json:"id"`
	Region     string  `json:"region"`
	State      string  `json:"state"`
	GossipAddr string  `json:"gossip_addr"`
	RTTMs      float64 `json:"rtt_estimate_ms"`
	HasRTT     bool    `json:"has_rtt"`
	Load       int     `json:"load"`
	Draining   bool    `json:"draining"`
	Version    string  `json:"version"`
	// TunnelUp reports whether the node answers probes through the mesh
	// tunnel (always true for this node).
	TunnelUp bool `json:"tunnel_up"`
}

// RouteStatus summarises one group's decision.
type RouteStatus struct {
	Group      string   `json:"group"`
	Chosen     []string `json:"chosen"`
	Candidates int      `json:"candidates"`
}

func (m *mesh) status() *MeshStatus {
	st := &MeshStatus{Nodes: []NodeStatus{}, Attachments: []AttachmentStatus{}, Routes: []RouteStatus{}}
	for _, a := range m.cluster.Attachments() {
		st.Attachments = append(st.Attachments, AttachmentStatus{Node: a.Node, Connector: a.Connector, Group: a.Group,
			RTTMs: ms(a.RTT), InFlight: a.InFlight, Alive: a.Alive, Draining: a.Draining})
	}
	for _, mb := range m.cluster.Members() {
		ns := NodeStatus{ID: mb.ID, Region: mb.Region, State: string(mb.State), GossipAddr: mb.Addr, RTTMs: ms(mb.RTT),
			HasRTT: mb.HasRTT, Load: mb.Load, Draining: mb.Draining, Version: mb.Version, TunnelUp: mb.ID == m.n.cfg.ID}
		if p := m.relays.Get(mb.WGKey); p != nil {
			ns.TunnelUp = p.Alive()
		}
		st.Nodes = append(st.Nodes, ns)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for g, d := range m.decisions {
		rs := RouteStatus{Group: g, Chosen: []string{}, Candidates: len(d.Candidates)}
		for _, c := range d.Chosen() {
			rs.Chosen = append(rs.Chosen, c.Key())
		}
		st.Routes = append(st.Routes, rs)
	}
	slices.SortFunc(st.Routes, func(a, b RouteStatus) int { return strings.Compare(a.Group, b.Group) })
	return st
}
