package pool

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// path is a kind of path the prober keeps: *Connector or *Relay.
type path[E any] interface {
	comparable
	base() *link
	// revive returns a live new instance of the same path, for one that
	// answers probes again after it was declared dead: a lost instance's
	// context cannot be revived. now is the prober's clock.
	revive(t *http.Transport, now time.Time) E
	// attrs names the path in log lines.
	attrs() []any
}

// prober is the set of paths of one kind, by WireGuard key, and the probes
// that keep their health current. Pool and Relays embed it.
type prober[E path[E]] struct {
	cfg     Config
	logger  *slog.Logger
	kind    string // the prefix of its log events: connector, relay_path
	added   string // the log event of a new or replaced instance
	changed func() // called with mu held after every change of byKey

	mu    sync.Mutex // guards the following
	byKey map[wgkey.Public]E

	closeOnce sync.Once
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

func (p *prober[E]) init(cfg Config, kind, added string, changed func()) {
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p.cfg, p.logger, p.kind, p.added, p.changed = cfg, cfg.Logger, kind, added, changed
	p.byKey = make(map[wgkey.Public]E)
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
}

// put adds e, replacing (and losing) the instance with the same key.
func (p *prober[E]) put(e E) {
	key := e.base().Key
	p.mu.Lock()
	old, replaced := p.byKey[key]
	p.byKey[key] = e
	p.changed()
	p.mu.Unlock()
	if replaced {
		old.base().close()
	}
	p.logger.Info(p.added, append(e.attrs(), "replaced", replaced)...)
}

// Get returns the current instance of the path with key, or nil.
func (p *prober[E]) Get(key wgkey.Public) E {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byKey[key]
}

// Remove drops the path with key, abandoning its requests.
func (p *prober[E]) Remove(key wgkey.Public) {
	p.mu.Lock()
	e, ok := p.byKey[key]
	delete(p.byKey, key)
	p.changed()
	p.mu.Unlock()
	if ok {
		e.base().close()
		p.logger.Info(p.event("removed"), e.attrs()...)
	}
}

// event names a log event of this kind of path: connector_down, ...
func (p *prober[E]) event(what string) string { return p.kind + "_" + what }

func (p *prober[E]) newTransport() *http.Transport {
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

// MarkDead declares e dead: it gets no new requests and its requests in
// flight are abandoned until a probe or a re-attach brings it back.
func (p *prober[E]) MarkDead(e E, reason string) {
	l := e.base()
	if l.alive.CompareAndSwap(true, false) {
		l.markLost(ErrConnectorLost)
		l.transport.CloseIdleConnections()
		p.logger.Warn(p.event("down"), append(e.attrs(), "reason", reason)...)
	}
}

func (p *prober[E]) markAlive(e E) {
	l := e.base()
	if l.alive.Load() {
		return
	}
	p.mu.Lock()
	current := p.byKey[l.Key] == e
	p.mu.Unlock()
	if !current {
		return
	}
	// A lost instance's context cannot be revived: replace it, keeping
	// its measurements.
	n := e.revive(p.newTransport(), p.cfg.Now())
	n.base().carry(l)
	p.put(n)
	p.logger.Info(p.event("up"), e.attrs()...)
}

// Run probes every path until ctx ends or Close is called: every
// ProbeInterval, each path whose previous probe has ended gets a new
// one, so that a path that does not answer delays no other.
func (p *prober[E]) Run(ctx context.Context) {
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
		for _, e := range p.byKey {
			if e.base().probing.CompareAndSwap(false, true) {
				probes.Go(func() {
					defer e.base().probing.Store(false)
					p.probe(ctx, e)
				})
			}
		}
		p.mu.Unlock()
	}
}

// suspectAfter is how long a probe of l may go unanswered before l is
// suspect.
func (p *prober[E]) suspectAfter(l *link) time.Duration {
	return min(p.cfg.SuspectAfter+2*l.RTT(), p.cfg.ProbeTimeout)
}

func (p *prober[E]) probe(ctx context.Context, e E) {
	c := e.base()
	pctx, cancel := context.WithTimeout(ctx, p.cfg.ProbeTimeout)
	defer cancel()
	var suspect *time.Timer
	if p.cfg.SuspectAfter > 0 && c.Alive() {
		suspect = time.AfterFunc(p.suspectAfter(c), func() { p.suspect(e, "probe unanswered") })
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
			p.suspect(e, "probe failed")
		}
		if p.heardSinceLastFailure(c) {
			// The probes wait behind traffic that keeps arriving (a bulk
			// transfer on a loaded path): the path is alive, only slow,
			// and declaring it dead would cut the streams it carries.
			p.logger.Debug(p.event("probe_late"), append(e.attrs(), "reason", "traffic arrived since the last failed probe")...)
			return
		}
		c.failures++
		if c.failures >= p.cfg.DeadAfter {
			p.MarkDead(e, "no answer to "+strconv.Itoa(c.failures)+" probes")
		}
		return
	}
	c.failures = 0
	c.observe(rtt, p.cfg.Now())
	if c.setSuspect(false) {
		p.logger.Debug(p.event("trusted"), append(e.attrs(), "probe_rtt_ms", float64(rtt.Microseconds())/1000)...)
	}
	p.markAlive(e)
}

// heardSinceLastFailure reports whether bytes arrived from l's peer since
// its previous failed probe, when the Pinger can tell (ReceiveCounter) and
// there was one; it records the counter for the next failure. Only failed
// probes read the counter, so the cost stays off the healthy path.
func (p *prober[E]) heardSinceLastFailure(l *link) bool {
	rc, ok := p.cfg.Pinger.(ReceiveCounter)
	if !ok {
		return false
	}
	rx, ok := rc.Received(l.Key)
	if !ok {
		return false
	}
	prev := l.rxAtFailure
	l.rxAtFailure = rx
	return l.failures > 0 && rx > prev
}

func (p *prober[E]) suspect(e E, why string) {
	if e.base().setSuspect(true) {
		p.logger.Debug(p.event("suspect"), append(e.attrs(), "reason", why)...)
	}
}

// Close stops probing and closes every path's idle connections. It is
// idempotent.
func (p *prober[E]) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		stop := p.stop
		es := make([]E, 0, len(p.byKey))
		for _, e := range p.byKey {
			es = append(es, e)
		}
		p.mu.Unlock()
		if stop != nil {
			stop()
		}
		p.wg.Wait()
		for _, e := range es {
			e.base().transport.CloseIdleConnections()
		}
	})
}
