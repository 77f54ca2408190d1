package meshnode

import (
	"errors"
	"fmt"
	"io"
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
	Via            string  `json:"via"`
	Region         string  `json:"region"`
	Connector      string  `json:"connector"`
	NodeRTTMs      float64 `json:"node_rtt_ms"`
	NodeRTTKnown   bool    `json:"node_rtt_known"`
	ConnectorRTTMs float64 `json:"connector_rtt_ms"`
	CostMs         float64 `json:"cost_ms"`
	Load           int64   `json:"load"`
	Eligible       bool    `json:"eligible"`
	// Chosen reports that the path takes requests now (the best tier);
	// Held that hysteresis alone keeps it there.
	Chosen bool   `json:"chosen"`
	Held   bool   `json:"held,omitempty"`
	Why    string `json:"why,omitempty"`
}

// ErrNoCluster is returned by Explain on a node that is not in a cluster
// and by lookups of unknown apps.
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
		return Explain{}, ErrNoCluster
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
	return ex, nil
}

func explainPath(c route.Scored, chosen, held bool) ExplainPath {
	via := c.Node
	if c.Local {
		via = "local"
	}
	return ExplainPath{Via: via, Region: c.Region, Connector: c.Connector, NodeRTTMs: ms(c.NodeRTT),
		NodeRTTKnown: c.NodeRTTKnown || c.Local, ConnectorRTTMs: ms(c.ConnectorRTT), CostMs: ms(c.Cost),
		Load: c.Load, Eligible: c.Eligible, Chosen: chosen, Held: held, Why: c.Why}
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
		if !p.NodeRTTKnown {
			toNode = "unknown"
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

// MeshStatus is the cluster part of Status.
type MeshStatus struct {
	Nodes       []NodeStatus        `json:"nodes"`
	Attachments []gossip.Attachment `json:"attachments"`
	Routes      []RouteStatus       `json:"routes"`
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
	st := &MeshStatus{Attachments: m.cluster.Attachments()}
	for _, mb := range m.cluster.Members() {
		ns := NodeStatus{ID: mb.ID, Region: mb.Region, State: string(mb.State), GossipAddr: mb.Addr, RTTMs: ms(mb.RTT),
			HasRTT: mb.HasRTT, Load: mb.Load, Draining: mb.Draining, Version: mb.Version, TunnelUp: mb.ID == m.n.cfg.ID}
		if p := m.peers.Get(mb.WGKey); p != nil {
			ns.TunnelUp = p.Alive()
		}
		st.Nodes = append(st.Nodes, ns)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for g, d := range m.decisions {
		rs := RouteStatus{Group: g, Candidates: len(d.Candidates)}
		for _, c := range d.Chosen() {
			rs.Chosen = append(rs.Chosen, c.Key())
		}
		st.Routes = append(st.Routes, rs)
	}
	return st
}
