package meshnode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/route"
	"github.com/postern/postern/pkg/tunnelhttp"
)

// ClusterConfig joins a node to a mesh of nodes.
type ClusterConfig struct {
	// GossipListen is the gossip address (UDP and TCP), such as
	// "0.0.0.0:7946"; ignored when Transport is set.
	GossipListen string
	// GossipAdvertise is the gossip address other nodes reach; empty means
	// memberlist's choice from GossipListen.
	GossipAdvertise string
	// Transport, if set, replaces memberlist's network transport
	// (simulated regions, tests).
	Transport memberlist.NodeAwareTransport
	// Keys is the gossip keyring (16, 24 or 32 bytes each, the first one
	// encrypts). Required unless Insecure.
	Keys [][]byte
	// Insecure allows an unencrypted cluster, for tests only.
	Insecure bool
	// Label is the cluster label; nodes with another label are ignored.
	Label string
	// Seeds are gossip addresses to join and, after a partition, rejoin.
	Seeds []string
	// Discover, if set, finds further seeds whenever they are needed (see
	// gossip.Config.Discover; pkg/discover's Discoverer.Addrs); nil means
	// Seeds only.
	Discover func(ctx context.Context) ([]string, error)
	// Timing tunes failure detection; the zero value means
	// gossip.DefaultTiming().
	Timing gossip.Timing
	// PublicURL is the HTTPS base URL connectors attach at; empty means
	// "https://" + the public listener's address.
	PublicURL string
	// Strategy chooses routes; empty means route.Latency.
	Strategy route.Strategy
	// Route tunes the latency strategy; zero means route's defaults.
	Route route.Options
	// RouteInterval is how often routes are rebuilt besides on gossip
	// changes; zero means 500ms.
	RouteInterval time.Duration
	// PeerProbe tunes the probes of the other nodes through the mesh
	// tunnel (a relay path is dead after DeadAfter missed probes); zero
	// fields mean 250ms interval, 400ms timeout (the default matrix's
	// largest RTT is 239ms), 2 misses: a dead relay node is routed around
	// within about a second, before the gossip declares it dead.
	PeerProbe pool.Config
}

// mesh is the cluster side of a Node.
type mesh struct {
	n       *Node
	cfg     ClusterConfig
	cluster *gossip.Cluster
	relays  *pool.Relays // one relay path per other live member
	router  *router
	boot    int64
	kick    chan struct{}
	served  prometheus.Counter // relayed requests served for other nodes
	refused prometheus.Counter // relay attempts refused (not a mesh node)
	roster  *roster            // the mesh nodes this node knows, persisted
	redeem  *redeemer          // burns enrolment tokens for the mesh

	tokenClient *http.Client // mesh-internal token calls over the tunnel

	nodeAddrs atomic.Pointer[map[netip.Addr]string] // tunnel address → node id of the mesh peers
	joined    atomic.Bool                           // the gossip reached another member at least once

	mu        sync.Mutex // guards the following
	peers     *meshPeers // the WireGuard peers and relay paths of the members
	decisions map[string]*route.Decision
	built     time.Time
	// builtWithPath reports that a relay path to another live member
	// answered (or there was none) when the routes were last built.
	builtWithPath bool
	tokens        map[string]bool // used-token ids already spread
	statesFrom    map[string]bool // nodes whose full state was merged
}

func newMesh(n *Node, cfg ClusterConfig) (*mesh, error) {
	m := &mesh{n: n, cfg: cfg, boot: n.cfg.Now().UnixNano(), kick: make(chan struct{}, 1),
		decisions: map[string]*route.Decision{}, tokens: map[string]bool{},
		statesFrom: map[string]bool{}}
	m.redeem = &redeemer{m: m}
	m.tokenClient = &http.Client{Transport: &http.Transport{DialContext: n.wg.DialContext, MaxIdleConnsPerHost: 4}}
	var err error
	if m.roster, err = openRoster(filepath.Join(n.cfg.StateDir, rosterFile)); err != nil {
		return nil, err
	}
	if m.cfg.RouteInterval == 0 {
		m.cfg.RouteInterval = 500 * time.Millisecond
	}
	strategy, err := route.ParseStrategy(string(cfg.Strategy))
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	pc := cfg.PeerProbe
	if pc.ProbeInterval == 0 {
		pc.ProbeInterval = 250 * time.Millisecond
	}
	if pc.ProbeTimeout == 0 {
		pc.ProbeTimeout = 400 * time.Millisecond
	}
	if pc.DeadAfter == 0 {
		pc.DeadAfter = 2
	}
	pc.Dial, pc.Pinger, pc.Logger, pc.Now = n.wg.DialContext, n.wg, n.logger.With("component", "relay_paths"), n.cfg.Now
	m.relays = pool.NewRelays(pc)
	m.peers = newMeshPeers(n.wg, m.relays, n.cfg.Now, n.logger)
	m.router = newRouter(n.pool, m.relays, strategy)
	empty := map[netip.Addr]string{}
	m.nodeAddrs.Store(&empty)
	m.cluster, err = gossip.New(gossip.Config{
		Meta: gossip.Meta{ID: n.cfg.ID, Region: n.cfg.Region, WGKey: n.wg.PublicKey(), WGEndpoint: n.advertise(),
			PublicURL: m.publicURL(), Version: Version, Boot: m.boot},
		Identity: gossip.Identity{Credential: n.cfg.NodeCredential, Key: n.nodeKey}, Verifier: n.cfg.Authority,
		Revocations: gossipRevocations{n}, OnStateMerged: m.noteState,
		BindAddr: cfg.GossipListen, AdvertiseAddr: cfg.GossipAdvertise, Transport: cfg.Transport, Keys: cfg.Keys,
		Insecure: cfg.Insecure, Label: cfg.Label, Seeds: cfg.Seeds, Discover: cfg.Discover, Timing: cfg.Timing, Tokens: n.used,
		Logger: n.logger, Registerer: n.cfg.Registry, Now: n.cfg.Now, // the cluster adds component=gossip itself
	})
	if err != nil {
		return nil, fmt.Errorf("meshnode: %w", err)
	}
	m.served = prometheus.NewCounter(prometheus.CounterOpts{Name: "postern_mesh_relays_served_total",
		Help: "Requests other mesh nodes relayed through this node to its connectors."})
	m.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "postern_mesh_relays_refused_total",
		Help: "Relay attempts refused because the sender is not a mesh node of the cluster."})
	n.cfg.Registry.MustRegister(m.router.choices, m.served, m.refused)
	return m, nil
}

// close leaves the relay paths and shuts the gossip down without a leave.
func (m *mesh) close() error {
	m.relays.Close()
	m.tokenClient.CloseIdleConnections()
	return m.cluster.Close()
}

// Version is reported in the gossip metadata.
const Version = "0.4.0"

func (m *mesh) publicURL() string {
	if m.cfg.PublicURL != "" {
		return m.cfg.PublicURL
	}
	return "https://" + m.n.public.Addr().String()
}

// run joins the cluster and keeps peers, attachments and routes current
// until ctx ends.
func (m *mesh) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); m.cluster.Run(ctx) }()
	go func() { defer wg.Done(); m.relays.Run(ctx) }()
	if len(m.cfg.Seeds) > 0 || m.cfg.Discover != nil {
		if _, err := m.cluster.Join(ctx); err != nil {
			m.n.logger.Warn("gossip_join_failed", "error", err, "seeds", m.cfg.Seeds, "retry", "in the background")
		} else {
			m.joined.Store(true)
		}
	}
	t := time.NewTicker(m.cfg.RouteInterval)
	defer t.Stop()
	for {
		m.sync()
		select {
		case <-ctx.Done():
			return
		case <-m.cluster.Changes():
		case <-m.kick:
		case <-t.C:
		}
	}
}

// poke asks for a route rebuild soon (a connector attached or left).
func (m *mesh) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// sync publishes our attachments, spreads new used tokens, reconciles the
// mesh WireGuard peers with the membership and rebuilds the routes.
func (m *mesh) sync() {
	m.publish()
	members := m.cluster.Members()
	for _, mb := range members {
		if mb.ID != m.n.cfg.ID && live(mb.State) {
			m.joined.Store(true) // also when the background rejoin got there
		}
	}
	if err := m.roster.observe(members, m.n.cfg.Now()); err != nil {
		m.n.logger.Warn("mesh_members_save_failed", "error", err)
	}
	m.restoreUsed()
	m.noteKeys(members)
	m.reconcilePeers(members)
	m.rebuild(members)
}

// noteKeys lists the node keys of the live members in the mesh's
// assertion key set (their credentials were verified by the gossip and
// are verified again there); those of departed members stay for its
// retention.
func (m *mesh) noteKeys(members []gossip.Member) {
	if m.n.assertKeys == nil {
		return
	}
	var creds [][]byte
	for _, mb := range members {
		if live(mb.State) && !mb.Credential.IsZero() {
			creds = append(creds, mb.Credential.Bytes())
		}
	}
	if err := m.n.assertKeys.Update(creds); err != nil {
		m.n.logger.Warn("assertion_keys_refused", "error", err)
	}
}

func (m *mesh) publish() {
	var own []gossip.Attachment
	var load int64
	for _, s := range m.n.pool.Statuses() {
		own = append(own, gossip.Attachment{Node: m.n.cfg.ID, Connector: s.ID, Group: s.Group, RTT: s.RTT,
			InFlight: int(s.Outstanding), Alive: s.Alive, Draining: s.Draining})
		load += s.Outstanding
	}
	// Both fail only on a closed cluster (the node is stopping) or on
	// attachments the pool should never produce; either way the next
	// round tries again, so the failure is logged, not fatal.
	if err := m.cluster.SetAttachments(own); err != nil && !errors.Is(err, gossip.ErrClosed) {
		m.n.logger.Warn("attachments_not_published", "error", err)
	}
	if err := m.cluster.UpdateMeta(func(meta *gossip.Meta) { meta.Load = int(load) }); err != nil && !errors.Is(err, gossip.ErrClosed) {
		m.n.logger.Warn("load_not_published", "error", err)
	}
	// Spread the ids used here since the last round; forget those the
	// store pruned (expired), so the set stays as small as the store.
	current := m.n.used.List()
	seen := make(map[string]bool, len(current))
	var fresh []authority.UsedToken
	m.mu.Lock()
	for _, t := range current {
		seen[t.ID] = true
		if !m.tokens[t.ID] {
			fresh = append(fresh, t)
		}
	}
	m.tokens = seen
	m.mu.Unlock()
	for _, t := range fresh {
		m.cluster.TokenUsed(t)
	}
}

// reconcilePeers makes every live member a WireGuard peer and a relay
// path, and withdraws (then drops) those that left or died (see
// meshPeers.reconcile).
func (m *mesh) reconcilePeers(members []gossip.Member) {
	want := map[string]gossip.Member{}
	addrs := map[netip.Addr]string{}
	for _, mb := range members {
		if mb.ID == m.n.cfg.ID || !live(mb.State) || mb.WGKey.IsZero() {
			continue
		}
		want[mb.ID] = mb
		addrs[mb.WGKey.Addr()] = mb.ID
	}
	m.nodeAddrs.Store(&addrs)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peers.reconcile(want)
}

func live(s gossip.State) bool { return s == gossip.StateAlive || s == gossip.StateSuspect }

// rebuild recomputes every group's decision and swaps the route table.
func (m *mesh) rebuild(members []gossip.Member) {
	cat := m.n.catalog.Current()
	byID := map[string]gossip.Member{}
	for _, mb := range members {
		byID[mb.ID] = mb
	}
	remote := map[string]map[string][]gossip.Attachment{} // group → node → attachments
	for _, a := range m.cluster.Attachments() {
		if a.Node == m.n.cfg.ID {
			continue
		}
		if remote[a.Group] == nil {
			remote[a.Group] = map[string][]gossip.Attachment{}
		}
		remote[a.Group][a.Node] = append(remote[a.Group][a.Node], a)
	}
	table := map[string]*groupRoute{}
	withPath := m.relayPathUp()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.builtWithPath = withPath
	for _, g := range cat.Groups() {
		gr := m.groupRoute(g, byID, remote[g.ID])
		m.decisions[g.ID] = &gr.decision
		table[g.ID] = gr
	}
	m.built = m.n.cfg.Now()
	m.router.table.Store(&table)
}

func (m *mesh) groupRoute(g *catalog.ConnectorGroup, members map[string]gossip.Member, remote map[string][]gossip.Attachment) *groupRoute {
	now := m.n.cfg.Now()
	var cands []route.Candidate
	var paths []path
	for _, c := range m.n.pool.Group(g.ID) {
		cand := route.Candidate{Node: m.n.cfg.ID, Region: m.n.cfg.Region, Local: true, Connector: c.ID,
			ConnectorRTT: c.SmoothedRTT(), Load: c.Outstanding()}
		switch {
		case !c.Alive():
			cand.Unusable = "connector not answering probes"
		case c.Draining():
			cand.Unusable = "connector draining"
		}
		cands, paths = append(cands, cand), append(paths, c)
	}
	nodes := make([]string, 0, len(remote))
	for id := range remote {
		nodes = append(nodes, id)
	}
	sort.Strings(nodes)
	for _, id := range nodes {
		mb, ok := members[id]
		if !ok || !live(mb.State) {
			continue
		}
		cand := route.Candidate{Node: id, Region: mb.Region}
		cand.NodeRTT, cand.NodeRTTKnown = m.cluster.EstimateRTT(id)
		peer := m.relays.Get(mb.WGKey)
		if peer != nil {
			// The RTT the relay path's probes measure through the tunnel:
			// the route prefers it while fresh (see package route), so a
			// node is costed right from its first probe, long before the
			// coordinates settle.
			if rtt, at := peer.Measured(); !at.IsZero() {
				cand.MeasuredRTT, cand.MeasuredAge = rtt, max(now.Sub(at), 0)
			}
		}
		var best *gossip.Attachment
		for i, a := range remote[id] {
			if a.Alive && !a.Draining && (best == nil || measuredFirst(a.RTT) < measuredFirst(best.RTT)) {
				best = &remote[id][i]
			}
		}
		cand.Draining = mb.Draining // still used while it is the only path
		switch {
		case best == nil:
			cand.Unusable, cand.Connector = "no usable connector attached there", remote[id][0].Connector
		case peer == nil || !peer.Alive():
			cand.Unusable = "node not answering through the mesh tunnel"
		}
		if best != nil {
			cand.Connector, cand.ConnectorRTT = best.Connector, best.RTT
		}
		var p path // none while the node is no relay path
		if peer != nil {
			cand.Load, p = peer.Outstanding(), peer
		}
		cands, paths = append(cands, cand), append(paths, p)
	}
	cons := route.Constraints{ExcludeRegions: g.ExcludeRegions}
	if g.PinRegion {
		cons.PinRegion = g.Region
	}
	d := route.Decide(g.ID, cands, cons, m.router.strategyNow(), m.decisions[g.ID], m.cfg.Route)
	return lineUp(d, cands, paths)
}

// measuredFirst orders attachment RTTs with the unmeasured ones (zero: the
// relay node has not probed the connector yet) after every measured one.
func measuredFirst(rtt time.Duration) time.Duration {
	if rtt <= 0 {
		return math.MaxInt64
	}
	return rtt
}

// notReady says what keeps the node from serving as a member of the
// cluster: not joined yet (when it has seeds), no route table yet, or no
// relay path proven to any of the live members.
func (m *mesh) notReady() []string {
	var why []string
	if len(m.cfg.Seeds) > 0 && !m.joined.Load() {
		why = append(why, "gossip has not joined the cluster yet")
	}
	m.mu.Lock()
	built, withPath := !m.built.IsZero(), m.builtWithPath
	m.mu.Unlock()
	switch {
	case !built:
		why = append(why, "routes not built yet")
	case !withPath:
		why = append(why, "no relay path to another mesh node answered when the routes were built")
	}
	return why
}

// relayPathUp reports whether a relay path to another live member answers
// its probes, or there is no other member (the paths of members no longer
// alive, withdrawn during their grace, do not count).
func (m *mesh) relayPathUp() bool {
	others := 0
	for _, r := range m.relays.List() {
		if r.Withdrawn() {
			continue
		}
		if r.Alive() {
			return true
		}
		others++
	}
	return others == 0
}

// isMeshNode reports whether addr is the tunnel address of a live member.
func (m *mesh) isMeshNode(addr netip.Addr) (string, bool) {
	id, ok := (*m.nodeAddrs.Load())[addr]
	return id, ok
}

// relayGate admits relayed requests from mesh nodes only.
func (m *mesh) relayGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, "relay: bad remote address", http.StatusForbidden)
			return
		}
		if _, ok := m.isMeshNode(ap.Addr().Unmap()); !ok {
			m.refused.Inc()
			m.n.logger.Warn("relay_refused", "remote", ap.Addr().String(), "reason", "not a mesh node of the cluster")
			http.Error(w, "relay: only mesh nodes of the cluster may relay", http.StatusForbidden)
			return
		}
		if m.n.relayClosed.Load() {
			// The drain is past relaying: the sender tries another path.
			w.Header().Set(tunnelhttp.HeaderError, tunnelhttp.ErrRelayNoConnector)
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		m.served.Inc()
		next.ServeHTTP(w, r)
	})
}

// meshOnly admits requests from the tunnel addresses of live members
// only: nodes whose node credential the gossip verified.
func (m *mesh) meshOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err == nil {
			if _, ok := m.isMeshNode(ap.Addr().Unmap()); ok {
				next.ServeHTTP(w, r)
				return
			}
		}
		m.n.logger.Warn("mesh_call_refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", "not a mesh node of the cluster")
		http.Error(w, "only mesh nodes of the cluster may call this", http.StatusForbidden)
	})
}

// nodesFor lists the live, non-draining members a connector of group may
// attach to.
func (m *mesh) nodesFor(g *catalog.ConnectorGroup) []enroll.NodeInfo {
	var out []enroll.NodeInfo
	for _, mb := range m.cluster.Members() {
		if mb.State != gossip.StateAlive || mb.Draining || mb.PublicURL == "" {
			continue
		}
		if (g.PinRegion && mb.Region != g.Region) || slices.Contains(g.ExcludeRegions, mb.Region) {
			continue
		}
		out = append(out, enroll.NodeInfo{ID: mb.ID, Region: mb.Region, URL: mb.PublicURL, PublicKey: mb.WGKey})
	}
	return out
}

// decision returns the current decision of group and when it was made.
func (m *mesh) decision(group string) (*route.Decision, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.decisions[group], m.built
}
