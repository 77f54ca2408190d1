package meshnode

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern/postern/pkg/catalog"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/revoke"
	"github.com/postern/postern/pkg/wgkey"
)

// Revocation on a mesh node: the deny-list (pkg/revoke) is fed by the
// admin command (Revoke, any node), by sign-outs at the edge
// (RevokeSession) and by the gossip, which spreads every new entry at
// once and carries the whole list to nodes that were down. A revoked
// connector, or one whose group left the catalogue, is detached at once
// (WireGuard peer, pool entry and stream) and refused at attach, renew,
// stream and enrolment.

// revocationMetrics count revocations and the refusals they cause.
type revocationMetrics struct {
	recorded *prometheus.CounterVec // by kind, source
	refused  *prometheus.CounterVec // by what was refused
	detached *prometheus.CounterVec // connectors detached, by reason
}

func newRevocationMetrics(reg prometheus.Registerer) *revocationMetrics {
	m := &revocationMetrics{
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_revocations_total",
			Help: "Revocations this node recorded, by kind (session, user, connector) and source (admin, logout, gossip)."}, []string{"kind", "source"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_revocation_refusals_total",
			Help: "Requests refused because what they presented is revoked, by what (enroll, attach, renew, stream, nodes)."}, []string{"what"}),
		detached: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_connectors_detached_total",
			Help: "Connectors detached by this node, by reason (revoked, group_removed)."}, []string{"reason"}),
	}
	reg.MustRegister(m.recorded, m.refused, m.detached)
	return m
}

// Revoke implements enroll.Revoker: it records an admin revocation
// signed with the mesh authority key and spreads it.
func (n *Node) Revoke(ctx context.Context, proof string) (revoke.Entry, error) {
	e, err := n.cfg.Authority.VerifyRevocation(proof)
	if err != nil {
		return revoke.Entry{}, fmt.Errorf("meshnode: revoke: %w: %w", enroll.ErrBadRevocation, err)
	}
	if err := n.addRevocations("admin", revoke.Record{Entry: e, Proof: proof}); err != nil {
		return revoke.Entry{}, err
	}
	return e, nil
}

// RevokeSession records the end of session sid (a sign-out) for the whole
// mesh, until until (zero: the configured session span from now).
func (n *Node) RevokeSession(ctx context.Context, sid string, until time.Time, source string) error {
	now := n.cfg.Now()
	e := revoke.Session(sid, now, n.cfg.SessionRevocationSpan)
	if until.Unix() > e.Until {
		e.Until = until.Unix()
	}
	return n.addRevocations(source, revoke.Record{Entry: e})
}

// addRevocations adds recs to the deny-list, logs and counts what was
// new, spreads it and detaches revoked connectors.
func (n *Node) addRevocations(source string, recs ...revoke.Record) error {
	added, err := n.revoked.Add(recs...)
	n.noteRevoked(source, added)
	if len(added) > 0 && n.mesh != nil {
		n.mesh.cluster.Revoked(added)
	}
	if err != nil {
		return fmt.Errorf("meshnode: revoke: %w", err)
	}
	return nil
}

// noteRevoked logs, counts and enforces newly added records.
func (n *Node) noteRevoked(source string, added []revoke.Record) {
	for _, r := range added {
		n.revMetrics.recorded.WithLabelValues(string(r.Kind), source).Inc()
		n.logger.Info("revocation_recorded", "kind", r.Kind, "subject", r.Subject, "source", source,
			"until", time.Unix(r.Until, 0).UTC())
	}
	if len(added) > 0 {
		n.kickEnforce()
	}
}

// gossipRevocations is the deny-list as the gossip sees it: what the
// gossip adds is logged, counted and enforced like local revocations.
type gossipRevocations struct{ n *Node }

func (g gossipRevocations) Records() []revoke.Record { return g.n.revoked.Records() }
func (g gossipRevocations) Has(r revoke.Record) bool { return g.n.revoked.Has(r) }
func (g gossipRevocations) Add(recs ...revoke.Record) ([]revoke.Record, error) {
	added, err := g.n.revoked.Add(recs...)
	g.n.noteRevoked("gossip", added)
	return added, err
}

// kickEnforce asks the enforcement loop to check the attached connectors
// soon.
func (n *Node) kickEnforce() {
	select {
	case n.enforceKick <- struct{}{}:
	default:
	}
}

// enforceLoop detaches revoked connectors and connectors of groups that
// left the catalogue, and cuts the TCP streams of revoked identities,
// whenever any may have changed, until ctx ends.
func (n *Node) enforceLoop(ctx context.Context) {
	cat := n.catalog.Subscribe()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		n.enforce()
		select {
		case <-ctx.Done():
			return
		case <-cat:
		case <-n.enforceKick:
		case <-prune.C:
			if dropped, err := n.revoked.Prune(); err != nil {
				n.logger.Warn("revocations_prune_failed", "error", err)
			} else if dropped > 0 {
				n.logger.Info("revocations_expired", "count", dropped)
			}
		}
	}
}

// enforce detaches every attached connector that is revoked or whose
// group is no longer in the catalogue, and cuts the TCP streams whose
// identity is revoked.
func (n *Node) enforce() {
	cat := n.catalog.Current()
	for _, s := range n.pool.Statuses() {
		key, err := wgkey.ParsePublic(s.PublicKey)
		if err != nil {
			continue
		}
		reason := ""
		switch {
		case n.revoked.ConnectorRevoked(s.ID, key):
			reason = "revoked"
		case !groupExists(cat, s.Group):
			reason = "group_removed"
		default:
			continue
		}
		n.removeConnector(key)
		n.revMetrics.detached.WithLabelValues(reason).Inc()
		n.logger.Warn("connector_detached", "connector", s.ID, "group", s.Group, "reason", reason)
	}
	if cut := n.edge.CutRevoked(); cut > 0 {
		n.logger.Warn("tcp_streams_cut", "streams", cut, "reason", "revoked")
	}
}

// removeConnector takes a connector out: pool entry, WireGuard peer and
// stream carrier.
func (n *Node) removeConnector(key wgkey.Public) {
	n.pool.Remove(key)
	n.removePeer(key)
	n.stream.Drop(key)
	if n.mesh != nil {
		n.mesh.poke()
	}
}

// checks implements enroll.Checks for the enrolment server, counting the
// refusals that revocations cause.
type checks struct{ n *Node }

var _ enroll.Checks = checks{}

func (c checks) IsNodeKey(pub wgkey.Public) bool { return c.n.isNodeKey(pub) }

func (c checks) GroupExists(group string) bool { return groupExists(c.n.catalog.Current(), group) }

func (c checks) ConnectorRevoked(id string, pub wgkey.Public) bool {
	if c.n.revoked.ConnectorRevoked(id, pub) {
		c.n.revMetrics.refused.WithLabelValues("api").Inc()
		return true
	}
	return false
}

// isNodeKey reports whether pub is this node's or a mesh member's
// WireGuard key.
func (n *Node) isNodeKey(pub wgkey.Public) bool {
	if pub == n.wg.PublicKey() {
		return true
	}
	if n.mesh == nil {
		return false
	}
	_, ok := n.mesh.isMeshNode(pub.Addr())
	return ok
}

// groupExists reports whether cat has connector group id.
func groupExists(cat *catalog.Catalog, id string) bool {
	_, ok := cat.Group(id)
	return ok
}

// removePeer takes key's WireGuard peer out, logging a failure: a peer
// left configured could still carry packets (IpcSet fails only on a
// closed device or a malformed key, neither expected here).
func (n *Node) removePeer(key wgkey.Public) {
	if err := n.wg.RemovePeer(key); err != nil {
		n.logger.Warn("wireguard_peer_not_removed", "peer", key.Short(), "error", err)
	}
}
