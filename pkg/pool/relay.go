package pool

import (
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// Relay is a path to the connectors of another mesh node: requests sent
// along it reach that node's relay handler, which sends each on to one of
// its own connectors. It has no drain of its own: a draining node stays a
// relay path of last resort, a rule of the route choice (see
// route.Candidate.Draining), and refuses relays once its drain is past
// them.
type Relay struct {
	link
	// Node is the relay node's id.
	Node string
	// withdrawn is set while the gossip no longer lists the node alive:
	// new requests avoid it, those in flight (streams) go on; shared by
	// every instance of the path, so a revived one stays withdrawn.
	withdrawn *atomic.Bool
}

// TryAcquire counts a request as outstanding on r unless r is lost or
// withdrawn, and reports whether it did.
func (r *Relay) TryAcquire() bool { return r.admit(r.withdrawn) }

// Usable reports whether r takes new requests: its node answers probes
// through the tunnel and is not withdrawn.
func (r *Relay) Usable() bool { return r.alive.Load() && !r.withdrawn.Load() }

// Withdrawn reports whether r is withdrawn (see Relays.Withdraw).
func (r *Relay) Withdrawn() bool { return r.withdrawn.Load() }

// Healthy reports whether r takes new requests and is not suspect.
func (r *Relay) Healthy() bool { return r.Usable() && !r.Suspected() }

// revive returns a live new instance of r.
func (r *Relay) revive(t *http.Transport, _ time.Time) *Relay {
	n := &Relay{Node: r.Node, withdrawn: r.withdrawn}
	n.init(r.Key, t, true)
	return n
}

// String returns "node/<node id>", as route.Candidate.Key names a relay.
func (r *Relay) String() string { return "node/" + r.Node }

func (r *Relay) attrs() []any { return []any{"peer_node", r.Node} }

// Relays is the set of relay paths, one per other mesh node of the
// cluster. Its methods are safe for concurrent use.
type Relays struct {
	prober[*Relay]
}

// NewRelays returns an empty set of relay paths. Call Run to start
// probing: a relay path takes no request until a first probe answers, as
// its tunnel may need a handshake first.
func NewRelays(cfg Config) *Relays {
	r := &Relays{}
	r.prober.init(cfg, "relay_path", "relay_path_added", func() {})
	return r
}

// Upsert adds the relay path to node, whose WireGuard key is key, or
// replaces an earlier instance of it (which is then lost). The new
// instance is not alive until a probe answers.
func (rs *Relays) Upsert(node string, key wgkey.Public) *Relay {
	r := &Relay{Node: node, withdrawn: new(atomic.Bool)}
	r.init(key, rs.newTransport(), false)
	rs.put(r)
	return r
}

// Withdraw stops (on == true) or resumes sending new requests along the
// relay path with key, without ending it: its requests in flight and its
// streams go on, and its probes go on (a path that stops answering is
// still declared dead, which ends them). The mesh withdraws the path of a
// node the gossip no longer lists alive while it waits to see whether
// that was a false alarm. It reports whether the path exists.
func (rs *Relays) Withdraw(key wgkey.Public, on bool) bool {
	r := rs.Get(key)
	if r == nil {
		return false
	}
	if r.withdrawn.Swap(on) != on {
		rs.logger.Info(rs.event(map[bool]string{true: "withdrawn", false: "restored"}[on]), r.attrs()...)
	}
	return true
}

// List returns every relay path, sorted by node id.
func (rs *Relays) List() []*Relay {
	rs.mu.Lock()
	out := make([]*Relay, 0, len(rs.byKey))
	for _, r := range rs.byKey {
		out = append(out, r)
	}
	rs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
