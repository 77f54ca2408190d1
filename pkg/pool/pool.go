// Package pool tracks the connectors a mesh node can reach through its
// WireGuard tunnel, whether each is alive, and how busy; it picks the
// connector of a group that gets the next request (least outstanding
// requests among the live ones).
//
// It sits between the mesh node's enrolment API, which adds connectors as
// they attach, and the edge proxy, which picks one per request.
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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/wgkey"
)

// ErrConnectorLost is the cancellation cause of requests in flight on a
// connector that was declared dead or that re-attached as a new instance.
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

// Config configures a Pool.
type Config struct {
	// Dial dials through the tunnel. Required.
	Dial DialFunc
	// Pinger probes connectors; nil disables probing (every connector
	// stays alive until declared dead by a failed dial).
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
	// ProveFirst makes a new entry take no requests until a first probe
	// answers (relay paths to other mesh nodes, whose tunnel may need a
	// handshake first); false means a new entry is alive at once.
	ProveFirst bool
	// Logger; nil discards.
	Logger *slog.Logger
}

// Connector is one attached connector instance.
type Connector struct {
	ID    string
	Group string
	Key   wgkey.Public
	// Transport carries requests to this connector only.
	Transport *http.Transport

	hostPort    string
	outstanding atomic.Int64
	alive       atomic.Bool
	draining    atomic.Bool
	rttNanos    atomic.Int64
	lost        context.Context
	markLost    context.CancelCauseFunc
	probing     atomic.Bool // a probe of c is in flight
	failures    int         // guarded by probing
	attached    time.Time
	rxAtFailure uint64 // the peer's receive counter at the last failed probe; guarded by probing

	smu      sync.Mutex         // guards the following
	suspect  context.Context    // ends when c becomes suspect
	endTrust context.CancelFunc // ends suspect
}

// HostPort returns the "[tunnel address]:port" of the connector's proxy.
func (c *Connector) HostPort() string { return c.hostPort }

// Lost returns a context that ends when this connector instance is declared
// dead or replaced; requests in flight on it should then be abandoned.
func (c *Connector) Lost() context.Context { return c.lost }

// Acquire counts a request as outstanding on c.
func (c *Connector) Acquire() { c.outstanding.Add(1) }

// TryAcquire counts a request as outstanding on c unless c is draining or
// lost, and reports whether it did. A request picked just before a drain
// began thus either backs out, unsent, or is counted where the drain's
// WaitIdle sees it: the count goes up before the draining flag is read,
// and SetDraining sets the flag before WaitIdle reads the count.
func (c *Connector) TryAcquire() bool {
	c.outstanding.Add(1)
	if c.draining.Load() || c.lost.Err() != nil {
		c.outstanding.Add(-1)
		return false
	}
	return true
}

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

// Release ends a request counted by Acquire.
func (c *Connector) Release() { c.outstanding.Add(-1) }

// Alive reports whether c answers probes. A draining connector is alive
// but takes no new requests.
func (c *Connector) Alive() bool { return c.alive.Load() }

// Draining reports whether c announced that it is shutting down: it takes
// no new requests, and those in flight finish.
func (c *Connector) Draining() bool { return c.draining.Load() }

// Usable reports whether c takes new requests: alive and not draining.
func (c *Connector) Usable() bool { return c.alive.Load() && !c.draining.Load() }

// Suspect returns a context that ends when c becomes suspect: a probe
// has gone unanswered for longer than its round trip should take. c is not
// yet declared dead (that takes DeadAfter failed probes), so requests in
// flight on it go on, but a request that is waiting for its answer and may
// safely be sent again (idempotent, without a body) should be, elsewhere.
// Once a probe answers, c is trusted again and Suspect returns a new
// context.
func (c *Connector) Suspect() context.Context {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.suspect
}

// Suspected reports whether c is suspect now.
func (c *Connector) Suspected() bool { return c.Suspect().Err() != nil }

// Healthy reports whether c takes new requests and is not suspect.
func (c *Connector) Healthy() bool { return c.Usable() && !c.Suspected() }

// setSuspect makes c suspect or trusted; it reports whether that changed.
func (c *Connector) setSuspect(on bool) bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	if (c.suspect.Err() != nil) == on {
		return false
	}
	if on {
		c.endTrust()
	} else {
		c.suspect, c.endTrust = context.WithCancel(context.Background())
	}
	return true
}

// RTT returns the last probe's round-trip time through the tunnel; zero
// before the first probe answered.
func (c *Connector) RTT() time.Duration { return time.Duration(c.rttNanos.Load()) }

// Outstanding returns the number of requests counted by Acquire and not yet
// released.
func (c *Connector) Outstanding() int64 { return c.outstanding.Load() }

// Status is a snapshot of one connector, for status pages and metrics.
type Status struct {
	ID          string        `json:"id"`
	Group       string        `json:"group"`
	PublicKey   string        `json:"public_key"`
	TunnelAddr  netip.Addr    `json:"tunnel_addr"`
	Alive       bool          `json:"alive"`
	Draining    bool          `json:"draining"`
	Outstanding int64         `json:"outstanding"`
	RTT         time.Duration `json:"rtt_ns"`
	Attached    time.Time     `json:"attached"`
}

// Pool is the set of connectors. Its methods are safe for concurrent use.
type Pool struct {
	cfg    Config
	logger *slog.Logger

	groups atomic.Pointer[map[string][]*Connector] // rebuilt on every change

	mu    sync.Mutex // guards the following
	byKey map[wgkey.Public]*Connector

	closeOnce sync.Once
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// New returns an empty Pool. Call Run to start probing.
func New(cfg Config) *Pool {
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 250 * time.Millisecond
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = 750 * time.Millisecond
	}
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = 3
	}
	if cfg.SuspectAfter == 0 {
		cfg.SuspectAfter = 150 * time.Millisecond
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	p := &Pool{cfg: cfg, logger: cfg.Logger, byKey: make(map[wgkey.Public]*Connector)}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	empty := map[string][]*Connector{}
	p.groups.Store(&empty)
	return p
}

// Upsert adds the connector with key, or replaces an earlier instance of it
// (which is then lost: its requests in flight are abandoned, its idle
// connections closed). The new instance is alive at once.
func (p *Pool) Upsert(id, group string, key wgkey.Public) *Connector {
	return p.upsert(id, group, key, !p.cfg.ProveFirst)
}

func (p *Pool) upsert(id, group string, key wgkey.Public, alive bool) *Connector {
	c := &Connector{ID: id, Group: group, Key: key, attached: time.Now(),
		hostPort: netip.AddrPortFrom(key.Addr(), tunnelhttp.Port).String()}
	c.lost, c.markLost = context.WithCancelCause(context.Background())
	c.suspect, c.endTrust = context.WithCancel(context.Background())
	c.Transport = p.newTransport()
	c.alive.Store(alive)
	p.mu.Lock()
	old := p.byKey[key]
	p.byKey[key] = c
	p.rebuildLocked()
	p.mu.Unlock()
	if old != nil {
		old.close()
	}
	p.logger.Info("connector_attached", "connector", id, "group", group, "replaced", old != nil)
	return c
}

// Get returns the current instance of the connector with key, or nil.
func (p *Pool) Get(key wgkey.Public) *Connector {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byKey[key]
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

// Remove drops the connector with key, abandoning its requests.
func (p *Pool) Remove(key wgkey.Public) {
	p.mu.Lock()
	c := p.byKey[key]
	delete(p.byKey, key)
	p.rebuildLocked()
	p.mu.Unlock()
	if c != nil {
		c.close()
		p.logger.Info("connector_removed", "connector", c.ID, "group", c.Group)
	}
}

func (c *Connector) close() {
	c.alive.Store(false)
	c.markLost(ErrConnectorLost)
	c.Transport.CloseIdleConnections()
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

func (p *Pool) newTransport() *http.Transport {
	dial := p.cfg.Dial
	timeout := p.cfg.DialTimeout
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return dial(ctx, network, addr)
		},
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
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

// MarkDead declares c dead: it gets no new requests and its requests in
// flight are abandoned until a probe or a re-attach brings it back.
func (p *Pool) MarkDead(c *Connector, reason string) {
	if c.alive.CompareAndSwap(true, false) {
		c.markLost(ErrConnectorLost)
		c.Transport.CloseIdleConnections()
		p.logger.Warn("connector_down", "connector", c.ID, "group", c.Group, "reason", reason)
	}
}

func (p *Pool) markAlive(c *Connector) {
	if c.alive.Load() {
		return
	}
	p.mu.Lock()
	current := p.byKey[c.Key] == c
	p.mu.Unlock()
	if !current {
		return
	}
	// A lost instance's context cannot be revived: replace it.
	p.upsert(c.ID, c.Group, c.Key, true).draining.Store(c.draining.Load())
	p.logger.Info("connector_up", "connector", c.ID, "group", c.Group)
}

// Statuses returns a snapshot of every connector, sorted by group and id.
func (p *Pool) Statuses() []Status {
	p.mu.Lock()
	out := make([]Status, 0, len(p.byKey))
	for _, c := range p.byKey {
		out = append(out, Status{ID: c.ID, Group: c.Group, PublicKey: c.Key.String(), TunnelAddr: c.Key.Addr(),
			Alive: c.alive.Load(), Draining: c.draining.Load(), Outstanding: c.outstanding.Load(), RTT: time.Duration(c.rttNanos.Load()), Attached: c.attached})
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

// Run probes every connector until ctx ends or Close is called: every
// ProbeInterval, each connector whose previous probe has ended gets a new
// one, so that a connector that does not answer delays no other.
func (p *Pool) Run(ctx context.Context) {
	if p.cfg.Pinger == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	p.stop = cancel
	p.mu.Unlock()
	p.wg.Add(1)
	defer p.wg.Done()
	var probes sync.WaitGroup
	defer probes.Wait()
	t := time.NewTicker(p.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		for _, c := range p.byKey {
			if c.probing.CompareAndSwap(false, true) {
				probes.Go(func() {
					defer c.probing.Store(false)
					p.probe(ctx, c)
				})
			}
		}
		p.mu.Unlock()
	}
}

// suspectAfter is how long a probe of c may go unanswered before c is
// suspect.
func (p *Pool) suspectAfter(c *Connector) time.Duration {
	return min(p.cfg.SuspectAfter+2*c.RTT(), p.cfg.ProbeTimeout)
}

func (p *Pool) probe(ctx context.Context, c *Connector) {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.ProbeTimeout)
	defer cancel()
	var suspect *time.Timer
	if p.cfg.SuspectAfter > 0 && c.Alive() {
		suspect = time.AfterFunc(p.suspectAfter(c), func() { p.suspect(c, "probe unanswered") })
	}
	rtt, err := p.cfg.Pinger.Ping(pctx, c.Key)
	if suspect != nil {
		suspect.Stop()
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		if p.cfg.SuspectAfter > 0 {
			p.suspect(c, "probe failed")
		}
		if p.heardSinceLastFailure(c) {
			// The probes wait behind traffic that keeps arriving (a bulk
			// transfer on a loaded path): the path is alive, only slow,
			// and declaring it dead would cut the streams it carries.
			p.logger.Debug("connector_probe_late", "connector", c.ID, "group", c.Group, "reason", "traffic arrived since the last failed probe")
			return
		}
		c.failures++
		if c.failures >= p.cfg.DeadAfter {
			p.MarkDead(c, "no answer to "+strconv.Itoa(c.failures)+" probes")
		}
		return
	}
	c.failures = 0
	c.rttNanos.Store(int64(rtt))
	if c.setSuspect(false) {
		p.logger.Debug("connector_trusted", "connector", c.ID, "group", c.Group, "probe_rtt_ms", float64(rtt.Microseconds())/1000)
	}
	p.markAlive(c)
}

// heardSinceLastFailure reports whether bytes arrived from c's peer since
// its previous failed probe, when the Pinger can tell (ReceiveCounter) and
// there was one; it records the counter for the next failure. Only failed
// probes read the counter, so the cost stays off the healthy path.
func (p *Pool) heardSinceLastFailure(c *Connector) bool {
	rc, ok := p.cfg.Pinger.(ReceiveCounter)
	if !ok {
		return false
	}
	rx, ok := rc.Received(c.Key)
	if !ok {
		return false
	}
	prev := c.rxAtFailure
	c.rxAtFailure = rx
	return c.failures > 0 && rx > prev
}

func (p *Pool) suspect(c *Connector, why string) {
	if c.setSuspect(true) {
		p.logger.Debug("connector_suspect", "connector", c.ID, "group", c.Group, "reason", why)
	}
}

// Close stops probing and closes every connector's idle connections. It is
// idempotent.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		stop := p.stop
		cs := make([]*Connector, 0, len(p.byKey))
		for _, c := range p.byKey {
			cs = append(cs, c)
		}
		p.mu.Unlock()
		if stop != nil {
			stop()
		}
		p.wg.Wait()
		for _, c := range cs {
			c.Transport.CloseIdleConnections()
		}
	})
}
