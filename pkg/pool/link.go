package pool

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/pkg/tunnelhttp"
	"github.com/postern/postern/pkg/wgkey"
)

// link is what both kinds of path share: a peer of the tunnel whose HTTP
// proxy takes requests at tunnelhttp.Port, probed for liveness and trust,
// with the requests in flight on it counted. Connector and Relay embed it
// and add their own rules (a connector drains; a relay has none of its
// own, since its node's drain is a route rule).
type link struct {
	// Key is the peer's WireGuard public key; its tunnel address derives
	// from it.
	Key wgkey.Public

	transport   *http.Transport
	hostPort    string
	outstanding atomic.Int64
	alive       atomic.Bool
	rttNanos    atomic.Int64 // the last probe's RTT
	srttNanos   atomic.Int64 // the smoothed RTT (see observe)
	measuredAt  atomic.Int64 // when the last probe answered, Unix ns; zero before
	lost        context.Context
	markLost    context.CancelCauseFunc
	probing     atomic.Bool // a probe of the link is in flight
	failures    int         // guarded by probing
	rxAtFailure uint64      // the peer's receive counter at the last failed probe; guarded by probing

	smu      sync.Mutex         // guards the following
	suspect  context.Context    // ends when the link becomes suspect
	endTrust context.CancelFunc // ends suspect
}

// init sets up a new instance of the link to key.
func (l *link) init(key wgkey.Public, t *http.Transport, alive bool) {
	l.Key, l.transport = key, t
	l.hostPort = netip.AddrPortFrom(key.Addr(), tunnelhttp.Port).String()
	l.lost, l.markLost = context.WithCancelCause(context.Background())
	l.suspect, l.endTrust = context.WithCancel(context.Background())
	l.alive.Store(alive)
}

// base returns l; it lets the prober reach the link of either kind.
func (l *link) base() *link { return l }

// HostPort returns the "[tunnel address]:port" of the peer's proxy.
func (l *link) HostPort() string { return l.hostPort }

// Send sends req to the peer's proxy through the tunnel. It sets
// req.URL.Host to HostPort, so the caller must own req.URL (a copy). Like
// an http.RoundTripper it may be called concurrently.
func (l *link) Send(req *http.Request) (*http.Response, error) {
	req.URL.Host = l.hostPort
	return l.transport.RoundTrip(req)
}

// Lost returns a context that ends when this instance is declared dead or
// replaced; requests in flight on it should then be abandoned. Its cause
// is ErrConnectorLost.
func (l *link) Lost() context.Context { return l.lost }

// Acquire counts a request as outstanding.
func (l *link) Acquire() { l.outstanding.Add(1) }

// admit counts a request as outstanding unless draining (nil for a kind
// that does not drain) is set or the link is lost, and reports whether it
// did. The count goes up before the flag is read, so a drain that sets
// the flag and then waits for the count sees every request admitted.
func (l *link) admit(draining *atomic.Bool) bool {
	l.outstanding.Add(1)
	if (draining != nil && draining.Load()) || l.lost.Err() != nil {
		l.outstanding.Add(-1)
		return false
	}
	return true
}

// Release ends a request counted by Acquire or TryAcquire.
func (l *link) Release() { l.outstanding.Add(-1) }

// Alive reports whether the peer answers probes.
func (l *link) Alive() bool { return l.alive.Load() }

// Suspect returns a context that ends when the link becomes suspect: a
// probe has gone unanswered for longer than its round trip should take.
// It is not yet declared dead (that takes DeadAfter failed probes), so
// requests in flight on it go on, but a request that is waiting for its
// answer and may safely be sent again (idempotent, without a body) should
// be, elsewhere. Once a probe answers, the link is trusted again and
// Suspect returns a new context.
func (l *link) Suspect() context.Context {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.suspect
}

// Suspected reports whether the link is suspect now.
func (l *link) Suspected() bool { return l.Suspect().Err() != nil }

// setSuspect makes the link suspect or trusted; it reports whether that
// changed.
func (l *link) setSuspect(on bool) bool {
	l.smu.Lock()
	defer l.smu.Unlock()
	if (l.suspect.Err() != nil) == on {
		return false
	}
	if on {
		l.endTrust()
	} else {
		l.suspect, l.endTrust = context.WithCancel(context.Background())
	}
	return true
}

// RTT returns the last probe's round-trip time through the tunnel; zero
// before the first probe answered.
func (l *link) RTT() time.Duration { return time.Duration(l.rttNanos.Load()) }

// rttGain is the weight of a slower probe in the smoothed RTT: 1/4 takes
// about a second at the default probe interval to follow a path that
// really got slower, and damps a probe that waited for a busy CPU.
const rttGain = 4

// observe records a probe's RTT, answered at now: the last RTT, and the
// smoothed one. Delays only ever add to a round trip (a handshake before
// the first probe, a busy CPU, a queue), so a probe faster than the
// smoothed RTT is taken at once, and a slower one moves it by 1/rttGain
// of the difference: the first probe of a path, which may have waited
// for the tunnel's handshake, is forgotten at the next one.
func (l *link) observe(rtt time.Duration, now time.Time) {
	l.rttNanos.Store(int64(rtt))
	if s := l.srttNanos.Load(); s > 0 && int64(rtt) > s {
		l.srttNanos.Store(s + (int64(rtt)-s)/rttGain)
	} else {
		l.srttNanos.Store(int64(rtt))
	}
	l.measuredAt.Store(now.UnixNano())
}

// carry copies the measurements of an earlier instance of the link.
func (l *link) carry(from *link) {
	l.rttNanos.Store(from.rttNanos.Load())
	l.srttNanos.Store(from.srttNanos.Load())
	l.measuredAt.Store(from.measuredAt.Load())
}

// Measured returns the smoothed RTT of the probes through the tunnel and
// when the last one answered; zero values before the first. The route
// prefers it, while fresh, to the gossip's coordinates (see package
// route).
func (l *link) Measured() (time.Duration, time.Time) {
	at := l.measuredAt.Load()
	if at == 0 {
		return 0, time.Time{}
	}
	return time.Duration(l.srttNanos.Load()), time.Unix(0, at)
}

// SmoothedRTT returns the smoothed RTT of the probes through the tunnel;
// zero before the first probe answered.
func (l *link) SmoothedRTT() time.Duration { return time.Duration(l.srttNanos.Load()) }

// Outstanding returns the number of requests counted and not yet
// released.
func (l *link) Outstanding() int64 { return l.outstanding.Load() }

// close ends this instance: not alive, lost, idle connections closed.
func (l *link) close() {
	l.alive.Store(false)
	l.markLost(ErrConnectorLost)
	l.transport.CloseIdleConnections()
}
