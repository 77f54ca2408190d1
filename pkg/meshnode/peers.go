package meshnode

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/postern/postern/pkg/gossip"
	"github.com/postern/postern/pkg/pool"
	"github.com/postern/postern/pkg/wgkey"
	"github.com/postern/postern/pkg/wgnet"
)

// tunnelPeers is what meshPeers needs of the WireGuard device: peers
// added (or updated in place, keeping their session) and removed, and
// how many bytes arrived from each (pool.ReceiveCounter).
type tunnelPeers interface {
	AddPeer(p wgnet.Peer) error
	RemovePeer(pub wgkey.Public) error
	pool.ReceiveCounter
}

// peerReset is how long a live member's relay path may fail its probes,
// with nothing arriving from it through the tunnel, before the WireGuard
// peer is made afresh: after a partition one side may have dropped and
// re-added us while the other kept a session that no longer decrypts, and
// a fresh peer handshakes at once.
const peerReset = 3 * time.Second

// peerGrace is how long the WireGuard peer and the relay path of a member
// the gossip no longer lists alive are kept (withdrawn: no new requests)
// before they are removed. Under load the gossip declares live nodes dead
// and takes them back a moment later; a removal would cut every stream
// through the relay path although its tunnel works. A node that really
// died stops answering its relay path's probes, which ends its streams
// within about a second anyway; the grace only spares a working tunnel.
const peerGrace = 15 * time.Second

// meshPeers reconciles the WireGuard peers and relay paths with the
// members of the cluster. Its caller serialises its methods (mesh.mu).
type meshPeers struct {
	wg     tunnelPeers
	relays *pool.Relays
	now    func() time.Time
	logger *slog.Logger

	keys      map[string]wgkey.Public // the WireGuard peers, by node id
	endpoints map[string]string       // each peer's endpoint as last configured
	boot      map[string]int64        // boot time of each peer's node
	downSince map[string]time.Time    // relay paths not answering probes
	rxAtDown  map[string]uint64       // bytes received from the peer when its path went down
	leaving   map[string]time.Time    // peers whose member is no longer alive, since when
}

func newMeshPeers(wg tunnelPeers, relays *pool.Relays, now func() time.Time, logger *slog.Logger) *meshPeers {
	return &meshPeers{wg: wg, relays: relays, now: now, logger: logger,
		keys: map[string]wgkey.Public{}, endpoints: map[string]string{}, boot: map[string]int64{},
		downSince: map[string]time.Time{}, rxAtDown: map[string]uint64{}, leaving: map[string]time.Time{}}
}

// reconcile makes every member of want (the live members, by id) a
// WireGuard peer and a relay path. A peer whose member is no longer in
// want is withdrawn at once and removed after peerGrace unless the member
// comes back first; one whose member now has another key is removed at
// once.
func (p *meshPeers) reconcile(want map[string]gossip.Member) {
	for id, key := range p.keys {
		mb, ok := want[id]
		switch {
		case ok && mb.WGKey != key:
			p.remove(id, "the node's WireGuard key changed")
		case ok:
			if _, was := p.leaving[id]; was {
				delete(p.leaving, id)
				p.relays.Withdraw(key, false)
				p.logger.Info("mesh_peer_back", "peer_node", id)
			}
		default:
			since, was := p.leaving[id]
			if !was {
				p.leaving[id] = p.now()
				p.relays.Withdraw(key, true)
				p.logger.Info("mesh_peer_leaving", "peer_node", id,
					"reason", "the gossip no longer lists the node alive: no new requests through it; its streams go on, and its peer is removed after "+peerGrace.String()+" unless it comes back")
				continue
			}
			if p.now().Sub(since) >= peerGrace {
				p.remove(id, "the node is not alive")
			}
		}
	}
	for id, mb := range want {
		if _, ok := p.keys[id]; ok {
			switch {
			case p.boot[id] != mb.Boot:
				p.restarted(id, mb)
			case p.endpoints[id] != mb.WGEndpoint:
				// Moved: updated in place, the session kept.
				if p.addWG(id, mb) {
					p.endpoints[id] = mb.WGEndpoint
				}
			default:
				p.resetIfStuck(id, mb)
			}
			continue
		}
		if !p.addWG(id, mb) {
			continue
		}
		p.relays.Upsert(id, mb.WGKey)
		p.keys[id], p.endpoints[id], p.boot[id] = mb.WGKey, mb.WGEndpoint, mb.Boot
		p.logger.Info("mesh_peer_added", "peer_node", id, "region", mb.Region, "endpoint", mb.WGEndpoint)
	}
}

// remove drops the WireGuard peer and relay path of node id, ending the
// requests and streams through it.
func (p *meshPeers) remove(id, reason string) {
	key := p.keys[id]
	p.relays.Remove(key)
	p.removeWG(key)
	delete(p.keys, id)
	delete(p.endpoints, id)
	delete(p.boot, id)
	delete(p.downSince, id)
	delete(p.rxAtDown, id)
	delete(p.leaving, id)
	p.logger.Info("mesh_peer_removed", "peer_node", id, "reason", reason)
}

// resetIfStuck re-creates the WireGuard peer of member id when its relay
// path has been down for peerReset although the gossip sees it alive and
// nothing arrived from it through the tunnel meanwhile: bytes that arrive
// decrypted prove the session works (the probes are only slow, as on a
// loaded machine), and a reset would then only cost a handshake.
func (p *meshPeers) resetIfStuck(id string, mb gossip.Member) {
	r := p.relays.Get(mb.WGKey)
	if r == nil || r.Alive() || mb.State != gossip.StateAlive {
		delete(p.downSince, id)
		delete(p.rxAtDown, id)
		return
	}
	rx, _ := p.wg.Received(mb.WGKey)
	since, ok := p.downSince[id]
	if !ok || rx != p.rxAtDown[id] {
		p.downSince[id], p.rxAtDown[id] = p.now(), rx
		return
	}
	if p.now().Sub(since) < peerReset {
		return
	}
	p.removeWG(mb.WGKey)
	if !p.addWG(id, mb) {
		return
	}
	p.endpoints[id] = mb.WGEndpoint
	rx, _ = p.wg.Received(mb.WGKey)
	p.downSince[id], p.rxAtDown[id] = p.now(), rx
	p.logger.Info("mesh_peer_reset", "peer_node", id, "reason", "relay path down and nothing received through the tunnel while the gossip sees the node alive")
}

// restarted takes in member id, which restarted (a new boot time) before
// the gossip declared it dead, or while its peer was in its grace: its
// WireGuard session is gone, so the peer is made afresh (the next packet
// starts a handshake, instead of waiting for peerReset) and its relay
// path is proven again.
func (p *meshPeers) restarted(id string, mb gossip.Member) {
	p.removeWG(mb.WGKey)
	if !p.addWG(id, mb) {
		return
	}
	p.relays.Upsert(id, mb.WGKey)
	p.endpoints[id], p.boot[id] = mb.WGEndpoint, mb.Boot
	delete(p.downSince, id)
	delete(p.rxAtDown, id)
	p.logger.Info("mesh_peer_restarted", "peer_node", id)
}

// addWG makes member id a WireGuard peer at its advertised endpoint (or
// updates the peer in place); it logs and reports false when that fails.
func (p *meshPeers) addWG(id string, mb gossip.Member) bool {
	ep, err := netip.ParseAddrPort(mb.WGEndpoint)
	if err != nil {
		p.logger.Warn("mesh_peer_bad_endpoint", "peer_node", id, "endpoint", mb.WGEndpoint, "error", err)
		return false
	}
	if err := p.wg.AddPeer(wgnet.Peer{PublicKey: mb.WGKey, Endpoint: ep, Keepalive: 10 * time.Second}); err != nil {
		p.logger.Warn("mesh_peer_add_failed", "peer_node", id, "error", err)
		return false
	}
	return true
}

// removeWG takes key's WireGuard peer out, logging a failure (see
// Node.removePeer).
func (p *meshPeers) removeWG(key wgkey.Public) {
	if err := p.wg.RemovePeer(key); err != nil {
		p.logger.Warn("wireguard_peer_not_removed", "peer", key.Short(), "error", err)
	}
}
