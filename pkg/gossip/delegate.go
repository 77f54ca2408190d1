package gossip

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"

	"github.com/postern/postern/pkg/authority"
	"github.com/postern/postern/pkg/revoke"
)

// delegate receives memberlist's callbacks. memberlist may call them with
// its own locks held, so they only take c.mu and never call back into
// memberlist.
type delegate struct {
	c *Cluster
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.PingDelegate  = (*delegate)(nil)
	_ memberlist.AliveDelegate = (*delegate)(nil)
)

// NodeMeta returns our encoded metadata.
func (d *delegate) NodeMeta(limit int) []byte {
	b := *d.c.metaBytes.Load()
	if len(b) > limit {
		return nil // cannot happen: encodeMeta enforces MetaMaxSize
	}
	return b
}

// NotifyMsg handles one user message from another node. Every kind is
// verified before anything is believed: attachment entries against their
// node's credential, the rest by their envelope.
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	c := d.c
	switch b[0] {
	case kindAttachment:
		var w wireAttach
		if err := decodeMsg(b, &w); err != nil || !w.valid() {
			c.log.Debug("gossip dropped bad attachment message", "err", err, "bytes", len(b))
			return
		}
		c.metrics.message("attachment", "in")
		if acc := c.mergeEntriesList([]wireAttach{w}); len(acc) > 0 {
			c.broadcastEntries(acc, "relay") // epidemic: pass news on
			c.notify()
		}
	case kindTokens:
		var ts []authority.UsedToken
		from, err := c.open(b, &ts)
		if err != nil || len(ts) > maxTokenBatch {
			c.refused("token", err)
			return
		}
		c.metrics.message("token", "in")
		c.mergeTokens(ts, from.NodeID)
	case kindRevoke:
		var rs []revoke.Record
		from, err := c.open(b, &rs)
		if err != nil || len(rs) > maxRevokeBatch {
			c.refused("revocation", err)
			return
		}
		c.metrics.message("revocation", "in")
		if added := c.mergeRevocations(rs, from.NodeID); len(added) > 0 {
			c.broadcastRevocations(added, "relay")
		}
	case kindLeave:
		var l wireLeave
		from, err := c.open(b, &l)
		if err != nil || l.ID != from.NodeID {
			c.refused("leave", err)
			return
		}
		c.metrics.message("leave", "in")
		c.noteLeave(l.ID, l.Boot, c.cfg.Now())
	default:
		c.log.Debug("gossip dropped message of unknown kind", "kind", int(b[0]), "bytes", len(b))
	}
}

// refused counts and logs a message that did not verify.
func (c *Cluster) refused(kind string, err error) {
	c.metrics.message(kind, "refused")
	c.log.Debug("gossip refused a message", "kind", kind, "err", err)
}

// GetBroadcasts returns queued broadcasts to piggyback on gossip.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.queue.GetBroadcasts(overhead, limit)
}

// LocalState returns everything we know, for push-pull, in an envelope
// signed by us: the attachments (each signed by its node), and the used
// tokens and revocations we hold.
func (d *delegate) LocalState(join bool) []byte {
	c := d.c
	st := wireState{Attachments: c.allEntries()}
	if c.cfg.Tokens != nil {
		ts := c.cfg.Tokens.List()
		if len(ts) > maxStateTokens {
			ts = ts[len(ts)-maxStateTokens:]
		}
		st.Tokens = ts
	}
	if c.cfg.Revocations != nil {
		rs := c.cfg.Revocations.Records()
		if len(rs) > maxStateRevokes {
			rs = rs[len(rs)-maxStateRevokes:]
		}
		st.Revocations = rs
	}
	b, err := c.seal(kindState, st)
	if err != nil {
		c.log.Debug("gossip could not encode state", "err", err)
		return nil
	}
	c.metrics.message("state", "out")
	return b
}

// MergeRemoteState merges another node's push-pull state once its
// envelope verifies.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	c := d.c
	if len(buf) == 0 {
		return
	}
	if buf[0] != kindState {
		c.log.Debug("gossip dropped state of unknown kind", "kind", int(buf[0]))
		return
	}
	var st wireState
	from, err := c.open(buf, &st)
	if err != nil {
		c.refused("state", err)
		return
	}
	c.metrics.message("state", "in")
	good := st.Attachments[:0]
	for _, w := range st.Attachments {
		if w.valid() {
			good = append(good, w)
		}
	}
	if c.mergeEntries(good) {
		c.notify()
	}
	if len(st.Tokens) > maxStateTokens {
		st.Tokens = st.Tokens[:maxStateTokens]
	}
	c.mergeTokens(st.Tokens, from.NodeID)
	if len(st.Revocations) > maxStateRevokes {
		st.Revocations = st.Revocations[:maxStateRevokes]
	}
	c.mergeRevocations(st.Revocations, from.NodeID)
	if c.cfg.OnStateMerged != nil && from.NodeID != c.cfg.Meta.ID {
		c.cfg.OnStateMerged(from.NodeID)
	}
}

// mergeTokens hands valid received token ids to the store.
func (c *Cluster) mergeTokens(ts []authority.UsedToken, from string) {
	if c.cfg.Tokens == nil || len(ts) == 0 {
		return
	}
	good := make([]authority.UsedToken, 0, len(ts))
	for _, t := range ts {
		if t.ID != "" && len(t.ID) <= maxTokenIDLen {
			good = append(good, t)
		}
	}
	if err := c.cfg.Tokens.Merge(good); err != nil {
		c.log.Warn("gossip could not merge used tokens", "count", len(good), "from", from, "err", err)
	}
}

// mergeRevocations adds the records that verify and are news: a session
// entry on the word of the node that sent it (any mesh node may end a
// session), a user or connector entry only with an authority-signed
// proof, whose entry replaces what the record claims. It returns what was
// added.
func (c *Cluster) mergeRevocations(rs []revoke.Record, from string) []revoke.Record {
	store := c.cfg.Revocations
	if store == nil || len(rs) == 0 {
		return nil
	}
	var good []revoke.Record
	for _, r := range rs {
		if store.Has(r) {
			continue
		}
		if r.Proof != "" {
			e, err := c.cfg.Verifier.VerifyRevocation(r.Proof)
			if err != nil {
				c.log.Warn("gossip refused a revocation", "from", from, "kind", r.Kind, "err", err)
				continue
			}
			r.Entry = e
		} else if r.Kind != revoke.KindSession {
			c.log.Warn("gossip refused a revocation without the authority's signature", "from", from, "kind", r.Kind)
			continue
		}
		good = append(good, r)
	}
	if len(good) == 0 {
		return nil
	}
	added, err := store.Add(good...)
	if err != nil {
		c.log.Warn("gossip could not add every revocation", "from", from, "added", len(added), "err", err)
	}
	for _, r := range added {
		c.log.Debug("revocation_learnt", "kind", r.Kind, "subject", r.Subject, "from", from)
	}
	if len(added) > 0 {
		c.notify()
	}
	return added
}

// NotifyAlive refuses nodes whose metadata does not carry a node
// credential that verifies, signed by the node key it names, for the same
// id: memberlist then ignores the node altogether.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	m, _, err := d.c.decodeMeta(n.Meta)
	if err != nil {
		d.c.metrics.message("alive", "refused")
		return fmt.Errorf("gossip: alive %.64q: %w", n.Name, err)
	}
	if m.ID != n.Name {
		return fmt.Errorf("gossip: alive %q: metadata names %q: %w", n.Name, m.ID, ErrInvalidArgument)
	}
	return nil
}

// NotifyJoin records a node that joined or came back.
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	c := d.c
	meta, cred, err := c.decodeMeta(n.Meta) // NotifyAlive checked it
	if err != nil {
		return
	}
	c.mu.Lock()
	c.setNodeLocked(n, meta, cred, StateAlive)
	c.mu.Unlock()
	if n.Name != c.cfg.Meta.ID {
		c.log.Info("gossip member joined", "peer", n.Name, "region", meta.Region, "addr", n.Address())
	}
	c.notify()
}

// NotifyUpdate records new metadata of a node.
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	c := d.c
	meta, cred, err := c.decodeMeta(n.Meta)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.setNodeLocked(n, meta, cred, StateAlive)
	c.mu.Unlock()
	c.notify()
}

// NotifyLeave records a node that left or failed.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	c := d.c
	now := c.cfg.Now()
	c.mu.Lock()
	info, ok := c.nodes[n.Name]
	if !ok {
		c.mu.Unlock()
		return
	}
	state := StateDead
	if at, ok := c.leaving[n.Name]; ok && now.Sub(at) < leaveMemory {
		state = StateLeft
	}
	info.state, info.changed = state, now
	delete(c.coords, n.Name)
	region := info.meta.Region
	c.countAliveLocked()
	c.mu.Unlock()
	c.coord.ForgetNode(n.Name)
	if state == StateLeft {
		c.log.Info("gossip member left", "peer", n.Name, "region", region)
	} else {
		c.log.Info("gossip member failed", "peer", n.Name, "region", region)
	}
	c.notify()
}

// setNodeLocked records n as alive with meta; c.mu is held. A newer boot
// drops the node's older attachment entries.
func (c *Cluster) setNodeLocked(n *memberlist.Node, meta Meta, cred authority.NodeCredential, state State) {
	info, ok := c.nodes[n.Name]
	if !ok {
		info = &nodeInfo{}
		c.nodes[n.Name] = info
	}
	if !ok || info.state != StateAlive {
		info.changed = c.cfg.Now()
		delete(c.leaving, n.Name)
	}
	if ok && meta.Boot > info.meta.Boot {
		c.dropOlderBootLocked(n.Name, meta.Boot)
	}
	info.meta, info.cred, info.addr, info.state = meta, cred, n.Address(), state
	if n.Name == c.cfg.Meta.ID {
		info.meta = c.meta
	}
	c.countAliveLocked()
}

// countAliveLocked refreshes numAlive, counting ourselves; c.mu is held.
func (c *Cluster) countAliveLocked() {
	n := int32(0)
	for id, info := range c.nodes {
		if info.state == StateAlive && id != c.cfg.Meta.ID {
			n++
		}
	}
	c.numAlive.Store(n + 1)
}

// noteLeave records a leave announcement of boot of node id; if the node
// is already dead it becomes left. An announcement of another boot than
// the one we know (a replayed one) is ignored.
func (c *Cluster) noteLeave(id string, boot int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if info, ok := c.nodes[id]; ok && boot != 0 && info.meta.Boot != boot {
		return
	}
	c.leaving[id] = now
	if info, ok := c.nodes[id]; ok && info.state == StateDead && now.Sub(info.changed) < leaveMemory {
		info.state = StateLeft
	}
}

// AckPayload returns our Vivaldi coordinate for the prober.
func (d *delegate) AckPayload() []byte {
	b, err := json.Marshal(d.c.coord.GetCoordinate())
	if err != nil {
		return nil
	}
	return append([]byte{kindCoord}, b...)
}

// NotifyPingComplete feeds a probe's RTT and the target's coordinate into
// our Vivaldi client. Bad payloads are ignored.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	c := d.c
	if other == nil || len(payload) < 2 || payload[0] != kindCoord {
		return
	}
	c.metrics.observeRTT(rtt)
	c.mu.Lock()
	if info, ok := c.nodes[other.Name]; ok {
		info.lastRTT = rtt
	}
	c.mu.Unlock()
	var co coordinate.Coordinate
	if err := json.Unmarshal(payload[1:], &co); err != nil || !co.IsValid() ||
		!co.IsCompatibleWith(c.coord.GetCoordinate()) {
		c.log.Debug("gossip dropped bad coordinate", "peer", other.Name, "err", err)
		return
	}
	if _, err := c.coord.Update(other.Name, &co, rtt); err != nil {
		c.log.Debug("gossip coordinate update rejected", "peer", other.Name, "err", err)
		return
	}
	c.mu.Lock()
	if info, ok := c.nodes[other.Name]; ok && info.state == StateAlive {
		c.coords[other.Name] = &co
	}
	c.mu.Unlock()
}
