package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/postern/postern/pkg/connector"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/meshnode"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/simnet"
)

// Topology runs a multi-region mesh in the one process: mesh nodes that
// gossip and relay, connectors placed in regions, all over a simulated
// network whose latency comes from an RTT matrix (pkg/simnet). With a
// Topology, Options.Meshes and Options.Connectors are ignored. Without
// Groups, the standard catalogue (group hq, the sample app, sign-in if
// Options.Auth) is used and the Connectors name group hq.
type Topology struct {
	// Net is the simulated network. Required.
	Net *simnet.Network
	// Nodes are the mesh nodes, in start order; the first is the seed.
	Nodes []NodeSpec
	// Groups are the connector groups; each gets a passthrough app at
	// host "<group>.localhost" served by the sample app.
	Groups []GroupSpec
	// Connectors are started in order, each enrolled through the first
	// node of its own region (or the first node).
	Connectors []ConnectorSpec
	// Strategy is every node's route strategy; empty means latency.
	Strategy route.Strategy
	// Timing is the gossip timing; zero means gossip.DefaultTiming().
	Timing gossip.Timing
	// Route tunes route choice; zero means route's defaults.
	Route route.Options
	// AttachK is how many nodes each connector attaches to; zero means
	// the connector default (2).
	AttachK int
	// Reevaluate is the connectors' re-measurement interval; zero means
	// 30s here (the connector default is 5 min).
	Reevaluate time.Duration
}

// NodeSpec places one mesh node.
type NodeSpec struct{ ID, Region string }

// GroupSpec is one connector group of the generated catalogue.
type GroupSpec struct {
	ID, Region string
	Pin        bool
	Exclude    []string
}

// ConnectorSpec places one connector.
type ConnectorSpec struct{ Group, Region string }

// GroupHost returns the external host of group's app.
func GroupHost(group string) string { return group + ".localhost" }

func (t *Topology) catalogYAML(app string) string {
	var b strings.Builder
	b.WriteString("connector_groups:\n")
	for _, g := range t.Groups {
		fmt.Fprintf(&b, "  - id: %s\n", g.ID)
		if g.Region != "" {
			fmt.Fprintf(&b, "    region: %s\n", g.Region)
		}
		if g.Pin {
			b.WriteString("    pin_region: true\n")
		}
		if len(g.Exclude) > 0 {
			fmt.Fprintf(&b, "    exclude_regions: [%s]\n", strings.Join(g.Exclude, ", "))
		}
	}
	b.WriteString("apps:\n")
	for _, g := range t.Groups {
		fmt.Fprintf(&b, "  - id: app-%s\n    host: %s\n    internal_url: %s\n    connector_group: %s\n    preauth: passthrough\n",
			g.ID, GroupHost(g.ID), app, g.ID)
	}
	return b.String()
}

// clusterConfig builds mesh node i's cluster configuration: its gossip on
// a loopback transport behind the simulated network, seeded by the nodes
// started before it.
func (h *Harness) clusterConfig(i int, publicAddr string, gossipPort int) (*meshnode.ClusterConfig, string, error) {
	t := h.opts.Topology
	spec := t.Nodes[i]
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: gossipPort,
		Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		return nil, "", fmt.Errorf("harness: gossip transport of %s: %w", spec.ID, err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(nt.GetAutoBindPort()))
	if err := t.Net.Register(addr, spec.Region); err != nil {
		return nil, "", errors.Join(err, nt.Shutdown())
	}
	var seeds []string
	for _, m := range h.Meshes() {
		if m.gossip != "" && m.gossip != addr.String() {
			seeds = append(seeds, m.gossip)
		}
	}
	cc := &meshnode.ClusterConfig{
		Transport: t.Net.Transport(nt, spec.Region), Keys: [][]byte{h.gossipKey}, Label: GossipLabel,
		Seeds: seeds, Timing: t.Timing, PublicURL: "https://" + publicAddr, Strategy: t.Strategy, Route: t.Route,
	}
	if raceDetector {
		cc.PeerProbe = stretchProbes(cc.PeerProbe, 400*time.Millisecond, 2)
	}
	return cc, addr.String(), nil
}

func newGossipKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// RegionOf returns mesh node i's region ("local" without a Topology).
func (h *Harness) RegionOf(i int) string {
	if h.opts.Topology == nil {
		return "local"
	}
	return h.opts.Topology.Nodes[i].Region
}

// MeshIndex returns the index of the mesh node with id, or -1.
func (h *Harness) MeshIndex(id string) int {
	for i, m := range h.Meshes() {
		if m.ID == id {
			return i
		}
	}
	return -1
}

// UserClient returns a client for a user in mesh node i's region: every
// request goes to node i, over HTTP/1.1 connections with the region's
// simulated latency.
func (h *Harness) UserClient(i int) *http.Client {
	t := h.MeshTransport(i)
	// HTTP/1.1: one write per request and one read per response, which is
	// what the simulated connection's per-write delay models exactly
	// (HTTP/2's extra frames, such as window updates, would each pay it).
	t.ForceAttemptHTTP2 = false
	if top := h.opts.Topology; top != nil {
		addr := h.Meshes()[i].Addr
		dial := top.Net.Dialer(h.RegionOf(i), nil)
		t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) { return dial(ctx, network, addr) }
	}
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// GroupURL returns the URL of path on group's app through mesh node i.
func (h *Harness) GroupURL(i int, group, path string) string {
	_, port, _ := net.SplitHostPort(h.Meshes()[i].Addr)
	return "https://" + GroupHost(group) + ":" + port + path
}

// simAPIClient is the HTTPS API client of a connector in region: the mesh
// API over the simulated network, so its RTT measurements see the matrix.
func (h *Harness) simAPIClient(region string) *http.Client {
	dial := h.opts.Topology.Net.Dialer(region, nil)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.CA.Pool()}, DialContext: dial},
		Timeout: 20 * time.Second}
}

// seedFor returns the URL a connector in region enrols at: the first node
// of the region, else the first node.
func (h *Harness) seedFor(region string) string {
	ms := h.Meshes()
	for _, m := range ms {
		if m.Region == region {
			return m.URL
		}
	}
	return ms[0].URL
}

// attachedNearest reports whether nodes (the ids a connector in region of
// group is attached to) are k live nodes that the matrix puts among the k
// nearest, give or take the connector's hysteresis; nodes at the same RTT
// are interchangeable.
func (h *Harness) attachedNearest(region, group string, k int, nodes []string) (bool, string) {
	t := h.opts.Topology
	var g GroupSpec
	for _, x := range t.Groups {
		if x.ID == group {
			g = x
		}
	}
	rtt := map[string]time.Duration{}
	var all []time.Duration
	for _, m := range h.Meshes() {
		if m.stopped || (g.Pin && m.Region != g.Region) || slices.Contains(g.Exclude, m.Region) {
			continue
		}
		rtt[m.ID] = t.Net.Matrix().RTT(region, m.Region)
		all = append(all, rtt[m.ID])
	}
	slices.Sort(all)
	want := min(k, len(all))
	if len(nodes) != want {
		return false, fmt.Sprintf("attached to %v, want %d nodes", nodes, want)
	}
	// The connector keeps a node unless another is faster by more than 20%
	// and more than 5 ms (its hysteresis), so such a node still counts.
	limit := all[want-1]
	limit = max(limit+limit/5, limit+5*time.Millisecond)
	for _, id := range nodes {
		r, ok := rtt[id]
		if !ok || r > limit {
			return false, fmt.Sprintf("attached to %v, which is not among the %d nearest (RTT up to %v with hysteresis)", nodes, want, limit)
		}
	}
	return true, ""
}

// WaitConverged waits until every live node sees every other live node
// alive with an RTT estimate, every connector is attached to its k nearest
// nodes, and every node has a route for every group.
func (h *Harness) WaitConverged(ctx context.Context, timeout time.Duration) error {
	var why string
	err := waitFor(ctx, timeout, func() bool {
		why = h.convergedWhy()
		return why == ""
	})
	if err != nil {
		return fmt.Errorf("harness: mesh did not converge in %s: %s", timeout, why)
	}
	return nil
}

func (h *Harness) convergedWhy() string {
	t := h.opts.Topology
	live := 0
	for _, m := range h.Meshes() {
		if !m.stopped {
			live++
		}
	}
	groups := t.Groups
	if len(groups) == 0 {
		groups = []GroupSpec{{ID: "hq"}}
	}
	for _, m := range h.Meshes() {
		if m.stopped {
			continue
		}
		st := m.Node.Status()
		alive := 0
		var missing []string
		for _, n := range st.Mesh.Nodes {
			if n.State == string(gossip.StateAlive) && n.HasRTT && n.TunnelUp {
				alive++
			} else {
				missing = append(missing, fmt.Sprintf("%s (%s, rtt %v, tunnel %v)", n.ID, n.State, n.HasRTT, n.TunnelUp))
			}
		}
		if alive != live {
			return fmt.Sprintf("%s sees %d of %d nodes alive with an RTT estimate and a tunnel; not: %v", m.ID, alive, live, missing)
		}
		for _, g := range groups {
			d := m.Node.Route(g.ID)
			if d == nil || d.Tier == 0 {
				return fmt.Sprintf("%s has no route for group %s", m.ID, g.ID)
			}
			if c := d.Candidates[0]; !(c.Local || c.NodeRTTKnown) || c.ConnectorRTT == 0 {
				return fmt.Sprintf("%s routes group %s without measured RTTs yet", m.ID, g.ID)
			}
		}
	}
	k := cmpOr(t.AttachK, 2)
	for i, c := range h.Connectors() {
		spec := t.Connectors[i]
		if ok, why := h.attachedNearest(spec.Region, spec.Group, k, c.C.AttachedNodes()); !ok {
			return fmt.Sprintf("connector %d (%s): %s", i, spec.Region, why)
		}
	}
	return ""
}

// ConnectorRegion returns the region of the connector with id ("" if
// unknown).
func (h *Harness) ConnectorRegion(id string) string {
	for _, c := range h.Connectors() {
		if c.C.ID() == id {
			return c.Region
		}
	}
	return ""
}

// eligibleNodes counts the live nodes the connector enrolled in dir may
// attach to (its group's pin and exclusions).
func (h *Harness) eligibleNodes(dir string) int {
	st, err := connector.LoadState(dir)
	if err != nil {
		return len(h.Meshes())
	}
	var g GroupSpec
	for _, x := range h.opts.Topology.Groups {
		if x.ID == st.Group {
			g = x
		}
	}
	n := 0
	for _, m := range h.Meshes() {
		if !m.stopped && !(g.Pin && m.Region != g.Region) && !slices.Contains(g.Exclude, m.Region) {
			n++
		}
	}
	return n
}

// membersConverged reports whether every node sees every node alive.
func (h *Harness) membersConverged() bool {
	ms := h.Meshes()
	for _, m := range ms {
		alive := 0
		for _, n := range m.Node.Status().Mesh.Nodes {
			if n.State == string(gossip.StateAlive) {
				alive++
			}
		}
		if alive != len(ms) {
			return false
		}
	}
	return true
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// GossipKey returns the cluster's gossip keyring key (Options.Topology):
// for tests that play a keyring holder who has no credential of this
// mesh's authority.
func (h *Harness) GossipKey() []byte { return bytes.Clone(h.gossipKey) }

// GossipAddr returns the node's gossip address, "127.0.0.1:port"
// (Options.Topology); empty for a lone node.
func (m *Mesh) GossipAddr() string { return m.gossip }

// GossipLabel is the cluster label of the harness's mesh nodes: their
// identity assertions carry nodekeys.Issuer(GossipLabel).
const GossipLabel = "postern-harness"
