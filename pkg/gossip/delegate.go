package gossip

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"
	"github.com/postern/postern/pkg/authority"
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

// NotifyMsg handles one user message from another node.
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
		if err := decodeMsg(b, &ts); err != nil || len(ts) > maxTokenBatch {
			c.log.Debug("gossip dropped bad token message", "err", err, "bytes", len(b))
			return
		}
		c.metrics.message("token", "in")
		c.mergeTokens(ts)
	case kindLeave:
		var l wireLeave
		if err := decodeMsg(b, &l); err != nil || l.ID == "" || len(l.ID) > maxIDLen {
			c.log.Debug("gossip dropped bad leave message", "err", err, "bytes", len(b))
			return
		}
		c.metrics.message("leave", "in")
		c.noteLeave(l.ID, time.Now())
	default:
		c.log.Debug("gossip dropped message of unknown kind", "kind", int(b[0]), "bytes", len(b))
	}
}

// GetBroadcasts returns queued broadcasts to piggyback on gossip.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.queue.GetBroadcasts(overhead, limit)
}

// LocalState returns everything we know, for push-pull.
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
	b, err := encodeMsg(kindState, st)
	if err != nil {
		c.log.Debug("gossip could not encode state", "err", err)
		return nil
	}
	c.metrics.message("state", "out")
	return b
}

// MergeRemoteState merges another node's push-pull state.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	c := d.c
	if len(buf) == 0 {
		return
	}
	var st wireState
	if buf[0] != kindState {
		c.log.Debug("gossip dropped state of unknown kind", "kind", int(buf[0]))
		return
	}
	if err := decodeMsg(buf, &st); err != nil {
		c.log.Debug("gossip dropped bad state", "err", err, "bytes", len(buf))
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
	c.mergeTokens(st.Tokens)
}

// mergeTokens hands valid received token ids to the store.
func (c *Cluster) mergeTokens(ts []authority.UsedToken) {
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
		c.log.Warn("gossip could not merge used tokens", "count", len(good), "err", err)
	}
}

// NotifyAlive refuses nodes whose metadata does not parse or names another
// id than the node.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	m, err := decodeMeta(n.Meta)
	if err != nil {
		return fmt.Errorf("gossip: alive %q: %w", n.Name, err)
	}
	if m.ID != n.Name {
		return fmt.Errorf("gossip: alive %q: metadata names %q: %w", n.Name, m.ID, ErrInvalidArgument)
	}
	return nil
}

// NotifyJoin records a node that joined or came back.
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	c := d.c
	meta, _ := decodeMeta(n.Meta) // NotifyAlive checked it
	c.mu.Lock()
	c.setNodeLocked(n, meta, StateAlive)
	c.mu.Unlock()
	if n.Name != c.cfg.Meta.ID {
		c.log.Info("gossip member joined", "peer", n.Name, "region", meta.Region, "addr", n.Address())
	}
	c.notify()
}

// NotifyUpdate records new metadata of a node.
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	c := d.c
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.setNodeLocked(n, meta, StateAlive)
	c.mu.Unlock()
	c.notify()
}

// NotifyLeave records a node that left or failed.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	c := d.c
	now := time.Now()
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
func (c *Cluster) setNodeLocked(n *memberlist.Node, meta Meta, state State) {
	info, ok := c.nodes[n.Name]
	if !ok {
		info = &nodeInfo{}
		c.nodes[n.Name] = info
	}
	if !ok || info.state != StateAlive {
		info.changed = time.Now()
		delete(c.leaving, n.Name)
	}
	if ok && meta.Boot > info.meta.Boot {
		c.dropOlderBootLocked(n.Name, meta.Boot)
	}
	info.meta, info.addr, info.state = meta, n.Address(), state
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

// noteLeave records a leave announcement; if the node is already dead it
// becomes left.
func (c *Cluster) noteLeave(id string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
