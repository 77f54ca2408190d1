// Package pool tracks the paths a mesh node sends requests along through
// its WireGuard tunnel, whether each is alive, trusted and how busy. There
// are two kinds, each with its own set and rules: a Connector attached to
// this node (Pool, by group; it drains when the connector shuts down), and
// a Relay through another mesh node that sends the request on to one of
// its own connectors (Relays, by node; it takes no request until a first
// probe answers). Both are probed the same way (see Config).
//
// Pool also picks the connector of a group that gets the next request
// (least outstanding requests among the live ones). It sits between the
// mesh node's enrolment API, which adds connectors as they attach, and the
// edge proxy; a mesh node in a cluster puts its router, which weighs local
// connectors against relays, in between.
package pool

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync/atomic"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// ErrConnectorLost is the cancellation cause of requests in flight on a
// connector that was declared dead or that re-attached as a new instance,
// and on a relay path whose node stopped answering: the connectors behind
// it are lost to this node.
var ErrConnectorLost = errors.New("connector lost")

// DialFunc dials TCP through the tunnel.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Pinger measures a round trip to a peer over the tunnel.
type Pinger interface {
	// Ping blocks until the peer answers or ctx ends.
	Ping(ctx context.Context, peer wgkey.Public) (time.Duration, error)
}

// ReceiveCounter is implemented by a Pinger that can tell how many bytes
// have arrived from a peer (WireGuard's authenticated receive counter;
// false when the peer is unknown). With it, failed probes declare a
// connector dead only when nothing arrived from it since the first of
// them: a probe stuck behind a bulk transfer on a loaded path is late, not
// proof of death.
type ReceiveCounter interface {
	Received(peer wgkey.Public) (uint64, bool)
}

// Config configures the probes of a Pool or of Relays; "connector" below
// stands for either kind of path.
type Config struct {
	// Dial dials through the tunnel. Required.
	Dial DialFunc
	// Pinger probes connectors; nil disables probing (every connector
	// stays alive until declared dead by a failed dial; a relay path,
	// which starts unproven, never takes a request).
	Pinger Pinger
	// ProbeInterval is the time between probes of one connector; zero
	// means 250ms.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe; zero means 750ms.
	ProbeTimeout time.Duration
	// SuspectAfter makes a connector suspect when a probe has gone
	// unanswered for SuspectAfter plus twice the connector's last RTT (at
	// most ProbeTimeout): new requests prefer other connectors, and
	// requests waiting on it that may be sent again are (see Suspect).
	// Zero means 150ms; negative disables suspicion.
	SuspectAfter time.Duration
	// DeadAfter is the number of failed probes in a row that declares a
	// connector dead; zero means 3.
	DeadAfter int
	// DialTimeout bounds one TCP connect to a connector through the
	// tunnel; zero means 2s. A connect that times out proves the request
	// never reached the connector, so it is retried elsewhere.
	DialTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. The probe timers are the
	// runtime's (tests run them under testing/synctest).
	Now func() time.Time
}

// Connector is one attached connector instance: a path whose peer is the
// connector itself. It drains when the connector announces its shutdown.
type Connector struct {
	link
	// ID is the connector's id; Group, its connector group.
	ID    string
	Group string

	draining atomic.Bool
	attached time.Time
}

// TryAcquire counts a request as outstanding on c unless c is draining or
// lost, and reports whether it did. A request picked just before a drain
// began thus either backs out, unsent, or is counted where the drain's
// WaitIdle sees it: the count goes up before the draining flag is read,
// and SetDraining sets the flag before WaitIdle reads the count.
func (c *Connector) TryAcquire() bool { return c.admit(&c.draining) }

// WaitIdle waits until no request is outstanding on c, or ctx ends; it
// reports whether c became idle. Call it after SetDraining: until then new
// requests keep coming.
func (c *Connector) WaitIdle(ctx context.Context) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for c.outstanding.Load() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// Draining reports whether c announced that it is shutting down: it takes
// no new requests, and those in flight finish.
func (c *Connector) Draining() bool { return c.draining.Load() }

// Usable reports whether c takes new requests: alive and not draining.
func (c *Connector) Usable() bool { return c.alive.Load() && !c.draining.Load() }

// Healthy reports whether c takes new requests and is not suspect.
func (c *Connector) Healthy() bool { return c.Usable() && !c.Suspected() }

// revive returns a live new instance of c, still draining if c was.
func (c *Connector) revive(t *http.Transport, now time.Time) *Connector {
	n := &Connector{ID: c.ID, Group: c.Group, attached: now}
	n.init(c.Key, t, true)
	n.draining.Store(c.draining.Load())
	return n
}

// String returns c's id.
func (c *Connector) String() string { return c.ID }

// EndsAtConnector marks c as a path to one connector instance (see
// edge.ConnectorPath): a re-attach or a revival replaces the instance and
// ends its Lost context.
func (*Connector) EndsAtConnector() {}

func (c *Connector) attrs() []any { return []any{"connector", c.ID, "group", c.Group} }

// Status is a snapshot of one connector, for status pages and metrics.
type Status struct {
	ID          string     `json:"id"`
	Group       string     `json:"group"`
	PublicKey   string     `json:"public_key"`
	TunnelAddr  netip.Addr `json:"tunnel_addr"`
	Alive       bool       `json:"alive"`
	Draining    bool       `json:"draining"`
	Outstanding int64      `json:"outstanding"`
	// RTT is the smoothed RTT of the connector's probes through the
	// tunnel (what the node gossips with the attachment); zero before the
	// first probe answered. Status pages print it in milliseconds
	// (meshnode.ConnectorStatus.RTTMs), so it has no JSON field of its own.
	RTT      time.Duration `json:"-"`
	Attached time.Time     `json:"attached"`
}

// Pool is the set of connectors attached to this node. Its methods are
// safe for concurrent use.
type Pool struct {
	prober[*Connector]

	groups atomic.Pointer[map[string][]*Connector] // rebuilt on every change
}

// New returns an empty Pool. Call Run to start probing.
func New(cfg Config) *Pool {
	p := &Pool{}
	p.prober.init(cfg, "connector", "connector_attached", p.rebuildLocked)
	empty := map[string][]*Connector{}
	p.groups.Store(&empty)
	return p
}

// Upsert adds the connector with key, or replaces an earlier instance of it
// (which is then lost: its requests in flight are abandoned, its idle
// connections closed). The new instance is alive at once.
func (p *Pool) Upsert(id, group string, key wgkey.Public) *Connector {
	c := &Connector{ID: id, Group: group, attached: p.cfg.Now()}
	c.init(key, p.newTransport(), true)
	p.put(c)
	return c
}

// Group returns the connectors of group, sorted by id. The slice is shared:
// callers must not modify it.
func (p *Pool) Group(group string) []*Connector { return (*p.groups.Load())[group] }

// SetDraining marks the connector with key as draining (no new requests;
// those in flight finish) or takes it back. It reports whether the
// connector is known.
func (p *Pool) SetDraining(key wgkey.Public, draining bool) bool {
	c := p.Get(key)
	if c == nil {
		return false
	}
	if c.draining.Swap(draining) != draining {
		p.logger.Info("connector_draining", "connector", c.ID, "group", c.Group, "draining", draining)
	}
	return true
}

func (p *Pool) rebuildLocked() {
	m := make(map[string][]*Connector)
	for _, c := range p.byKey {
		m[c.Group] = append(m[c.Group], c)
	}
	for _, cs := range m {
		sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	}
	p.groups.Store(&m)
}

// Pick returns the live connector of group with the fewest outstanding
// requests, skipping those in exclude and preferring those not suspect;
// nil if there is none. Ties are broken at random.
func (p *Pool) Pick(group string, exclude []*Connector) *Connector {
	cs := (*p.groups.Load())[group]
	if len(cs) == 0 {
		return nil
	}
	var best *Connector
	var bestN int64
	bestHealthy := false
	start := 0
	if len(cs) > 1 {
		start = rand.IntN(len(cs))
	}
	for i := range cs {
		c := cs[(start+i)%len(cs)]
		if !c.Usable() || contains(exclude, c) {
			continue
		}
		healthy := !c.Suspected()
		n := c.outstanding.Load()
		if best == nil || (healthy && !bestHealthy) || (healthy == bestHealthy && n < bestN) {
			best, bestN, bestHealthy = c, n, healthy
		}
	}
	return best
}

func contains(cs []*Connector, c *Connector) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// Statuses returns a snapshot of every connector, sorted by group and id.
func (p *Pool) Statuses() []Status {
	p.mu.Lock()
	out := make([]Status, 0, len(p.byKey))
	for _, c := range p.byKey {
		out = append(out, Status{ID: c.ID, Group: c.Group, PublicKey: c.Key.String(), TunnelAddr: c.Key.Addr(),
			Alive: c.alive.Load(), Draining: c.draining.Load(), Outstanding: c.outstanding.Load(), RTT: c.SmoothedRTT(), Attached: c.attached})
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].ID < out[j].ID
	})
	return out
}
