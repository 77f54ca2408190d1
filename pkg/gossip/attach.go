package gossip

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/postern/postern/pkg/authority"
)

// Attachment says connector Connector (group Group) is reachable through
// mesh node Node.
type Attachment struct {
	// Node is the mesh node the connector is attached to.
	Node string
	// Connector is the connector's id.
	Connector string
	// Group is the connector's group.
	Group string
	// RTT is Node's measured RTT to the connector through the tunnel.
	RTT time.Duration
	// InFlight is the number of requests in flight to the connector.
	InFlight int
	// Alive says the connector answers.
	Alive bool
	// Draining says the connector takes no new work.
	Draining bool
}

// attachKey identifies an attachment entry.
type attachKey struct {
	node, connector string
}

// entry is one attachment entry with its version, or a tombstone.
type entry struct {
	w       wireAttach
	updated time.Time     // local time of the last change, for GC
	sentRTT time.Duration // own entries: RTT last broadcast
	dirty   bool          // own entries: changed since the last broadcast
}

// significantRTT reports whether an RTT moved by more than 20% and 1 ms,
// or became known or unknown: zero is "not measured yet", which the route
// of every other node prices as a last resort (route.Options.UnknownRTT),
// so a first measurement must not wait for the refresh, however small.
func significantRTT(old, now time.Duration) bool {
	if (old == 0) != (now == 0) {
		return true
	}
	d := now - old
	if d < 0 {
		d = -d
	}
	return d > time.Millisecond && d*5 > old
}

// validateOwn checks a SetAttachments list.
func validateOwn(own []Attachment) error {
	seen := make(map[string]bool, len(own))
	for i, a := range own {
		switch {
		case a.Connector == "" || len(a.Connector) > maxIDLen:
			return fmt.Errorf("attachment %d: connector must be 1..%d bytes: %w", i, maxIDLen, ErrInvalidArgument)
		case len(a.Group) > maxIDLen:
			return fmt.Errorf("attachment %d: group longer than %d bytes: %w", i, maxIDLen, ErrInvalidArgument)
		case a.RTT < 0 || a.InFlight < 0:
			return fmt.Errorf("attachment %d: negative rtt or in-flight: %w", i, ErrInvalidArgument)
		case seen[a.Connector]:
			return fmt.Errorf("attachment %d: connector %q listed twice: %w", i, a.Connector, ErrInvalidArgument)
		}
		seen[a.Connector] = true
	}
	return nil
}

// SetAttachments replaces our list of attached connectors (the Node field
// is ignored: it is always us). Entries that were added or removed, flipped
// Alive or Draining, changed Group, got their first RTT, or moved RTT by
// more than 20% and 1 ms are broadcast at once; other changes (InFlight) ride on push-pull and on
// Run's periodic refresh. On error nothing changes.
func (c *Cluster) SetAttachments(own []Attachment) error {
	if err := validateOwn(own); err != nil {
		return fmt.Errorf("gossip: set attachments: %w", err)
	}
	now := c.cfg.Now()
	var send []wireAttach
	c.mu.Lock()
	self, boot := c.meta.ID, c.meta.Boot
	seen := make(map[string]bool, len(own))
	for _, a := range own {
		seen[a.Connector] = true
		k := attachKey{self, a.Connector}
		e, ok := c.entries[k]
		w := wireAttach{Node: self, Connector: a.Connector, Group: a.Group, Boot: boot, RTT: int64(a.RTT),
			InFlight: a.InFlight, Alive: a.Alive, Draining: a.Draining}
		if ok && !e.w.Deleted {
			old := e.w
			old.Version, old.Sig = 0, nil
			if sameEntry(old, w) {
				continue
			}
			significant := old.Alive != w.Alive || old.Draining != w.Draining || old.Group != w.Group ||
				significantRTT(e.sentRTT, a.RTT)
			w.Version = c.nextVersionLocked(now)
			w = c.signAttach(w)
			e.w, e.updated = w, now
			if significant {
				e.dirty, e.sentRTT = false, a.RTT
				send = append(send, w)
			} else {
				e.dirty = true
			}
			continue
		}
		w.Version = c.nextVersionLocked(now)
		w = c.signAttach(w)
		c.entries[k] = &entry{w: w, updated: now, sentRTT: a.RTT}
		send = append(send, w)
	}
	for k, e := range c.entries {
		if k.node == self && !e.w.Deleted && !seen[k.connector] {
			e.w = c.signAttach(wireAttach{Node: self, Connector: k.connector, Boot: boot, Version: c.nextVersionLocked(now), Deleted: true})
			e.updated, e.dirty = now, false
			send = append(send, e.w)
		}
	}
	c.mu.Unlock()
	c.broadcastEntries(send, "out")
	if len(send) > 0 {
		c.notify()
	}
	return nil
}

// nextVersionLocked returns our next entry version: max(now, last+1).
func (c *Cluster) nextVersionLocked(now time.Time) int64 {
	c.lastVersion = max(now.UnixNano(), c.lastVersion+1)
	return c.lastVersion
}

// broadcastEntries queues each entry as its own small broadcast, replacing
// any queued older version of the same entry.
func (c *Cluster) broadcastEntries(ws []wireAttach, dir string) {
	for _, w := range ws {
		msg, err := encodeMsg(kindAttachment, w)
		if err != nil || len(msg) > maxMessageBytes {
			c.log.Warn("gossip_attachment_too_large", "connector", w.Connector, "message_bytes", len(msg))
			continue
		}
		c.queue.QueueBroadcast(&keyedBroadcast{key: "a\x00" + w.Node + "\x00" + w.Connector, msg: msg})
		c.metrics.message("attachment", dir)
	}
}

// rebroadcastDirty broadcasts own entries changed only insignificantly
// since their last broadcast.
func (c *Cluster) rebroadcastDirty() {
	var send []wireAttach
	c.mu.Lock()
	for k, e := range c.entries {
		if k.node == c.meta.ID && e.dirty {
			e.dirty, e.sentRTT = false, time.Duration(e.w.RTT)
			send = append(send, e.w)
		}
	}
	c.mu.Unlock()
	c.broadcastEntries(send, "out")
}

// mergeEntries merges received entries and reports whether anything
// changed. Entries about ourselves are ignored (we are their authority),
// as are entries older than what we hold and entries from an older boot of
// their owner than its current metadata says.
func (c *Cluster) mergeEntries(ws []wireAttach) bool {
	return len(c.mergeEntriesList(ws)) > 0
}

// mergeEntriesList merges received entries and returns those accepted.
// Each must be signed by its node, a member whose credential we verified;
// the signatures are checked outside the lock, on the entries that would
// be accepted.
func (c *Cluster) mergeEntriesList(ws []wireAttach) []wireAttach {
	type candidate struct {
		w    wireAttach
		cred authority.NodeCredential
	}
	var cands []candidate
	c.mu.Lock()
	for _, w := range ws {
		if !c.acceptableLocked(w) {
			continue
		}
		info, ok := c.nodes[w.Node]
		if !ok || info.cred.IsZero() {
			c.metrics.message("attachment", "refused")
			continue // not a verified member (yet): push-pull brings it again
		}
		cands = append(cands, candidate{w, info.cred})
	}
	c.mu.Unlock()
	good := cands[:0]
	for _, cd := range cands {
		if verifySig(cd.cred, "attach", attachSigned(cd.w), cd.w.Sig) {
			good = append(good, cd)
		}
	}
	if dropped := len(cands) - len(good); dropped > 0 {
		for range dropped {
			c.metrics.message("attachment", "refused")
		}
		c.log.Debug("gossip_attachments_dropped", "reason", "bad_signature", "entries", dropped)
	}
	now := c.cfg.Now()
	var accepted []wireAttach
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cd := range good {
		w := cd.w
		if !c.acceptableLocked(w) {
			continue
		}
		if info, ok := c.nodes[w.Node]; !ok || !info.cred.NodeKey.Equal(cd.cred.NodeKey) {
			continue // the node came back with another key meanwhile
		}
		c.entries[attachKey{w.Node, w.Connector}] = &entry{w: w, updated: now}
		accepted = append(accepted, w)
	}
	return accepted
}

// acceptableLocked reports whether w would replace what we hold: not
// about us, not of an older boot or version, within the bounds. c.mu is
// held.
func (c *Cluster) acceptableLocked(w wireAttach) bool {
	if w.Node == c.meta.ID {
		return false
	}
	if info, ok := c.nodes[w.Node]; ok && info.meta.Boot > w.Boot {
		return false
	}
	e, ok := c.entries[attachKey{w.Node, w.Connector}]
	if ok && (e.w.Boot > w.Boot || (e.w.Boot == w.Boot && e.w.Version >= w.Version)) {
		return false
	}
	return ok || len(c.entries) < maxEntries
}

// sameEntry reports whether two entries say the same, signatures aside.
func sameEntry(a, b wireAttach) bool {
	a.Sig, b.Sig = nil, nil
	return a.Node == b.Node && a.Connector == b.Connector && a.Group == b.Group && a.Boot == b.Boot &&
		a.Version == b.Version && a.RTT == b.RTT && a.InFlight == b.InFlight && a.Alive == b.Alive &&
		a.Draining == b.Draining && a.Deleted == b.Deleted
}

// dropOlderBootLocked removes node's entries from boots before boot; c.mu
// is held.
func (c *Cluster) dropOlderBootLocked(node string, boot int64) {
	for k, e := range c.entries {
		if k.node == node && e.w.Boot < boot {
			delete(c.entries, k)
		}
	}
}

// allEntries returns every entry we hold, tombstones included, for
// push-pull.
func (c *Cluster) allEntries() []wireAttach {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]wireAttach, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e.w)
	}
	return out
}

// Attachments returns our own entries and those of every other node that
// is alive and whose entries are of its current boot, sorted by node then
// connector.
func (c *Cluster) Attachments() []Attachment {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Attachment, 0, len(c.entries))
	for k, e := range c.entries {
		if e.w.Deleted {
			continue
		}
		if k.node != c.meta.ID {
			info, ok := c.nodes[k.node]
			if !ok || info.state != StateAlive || info.meta.Boot != e.w.Boot {
				continue
			}
		}
		out = append(out, e.w.attachment())
	}
	slices.SortFunc(out, func(a, b Attachment) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Connector, b.Connector))
	})
	return out
}

// gc drops expired tombstones, entries of nodes gone for longer than
// tombstoneTTL, and members gone for longer than failedMemory.
func (c *Cluster) gc(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.w.Deleted && now.Sub(e.updated) > tombstoneTTL {
			delete(c.entries, k)
			continue
		}
		if k.node == c.meta.ID {
			continue
		}
		info, ok := c.nodes[k.node]
		if (!ok || info.state != StateAlive) && now.Sub(e.updated) > tombstoneTTL &&
			(!ok || now.Sub(info.changed) > tombstoneTTL) {
			delete(c.entries, k)
		}
	}
	for id, info := range c.nodes {
		if info.state != StateAlive && now.Sub(info.changed) > failedMemory {
			delete(c.nodes, id)
		}
	}
	for id, at := range c.leaving {
		if now.Sub(at) > leaveMemory {
			delete(c.leaving, id)
		}
	}
}
