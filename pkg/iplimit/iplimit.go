// Package iplimit bounds what one client address may cost a mesh node: a
// token bucket of requests per address ([Limiter]) and a cap on the
// connections one address holds open ([Conns], [Listen]).
//
// A client is an IPv4 address or an IPv6 /64 (one subscriber's usual
// allocation), see [Key]. Memory stays bounded whatever the number of
// addresses an attacker controls: the limiter keeps at most MaxEntries
// buckets and evicts the idle ones first, and the connection table holds
// an entry only while that address has a connection open.
//
// The edge (pkg/edge) limits its answers to unauthenticated requests with a
// Limiter, the enrolment API (pkg/enroll) its calls, and the mesh node
// (pkg/meshnode) caps the connections on its public and tunnel listeners.
// The package starts no goroutine.
package iplimit

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxEntries is a Limiter's bound on tracked clients when its
// MaxEntries is zero.
const DefaultMaxEntries = 1 << 16

// Key returns the client an address belongs to: the IPv4 address, or the
// IPv6 /64 (IPv4-mapped addresses count as IPv4).
func Key(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

// Limiter is a token bucket per client. It is safe for concurrent use.
type Limiter struct {
	limit rate.Limit
	burst int
	max   int
	idle  time.Duration // a bucket idle this long is full again and can go

	mu        sync.Mutex // guards the following
	buckets   map[netip.Prefix]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter returns a Limiter allowing each client limit events per
// second with bursts of burst; rate.Inf allows everything. maxEntries
// bounds the clients tracked at once; zero means DefaultMaxEntries.
func NewLimiter(limit rate.Limit, burst, maxEntries int) *Limiter {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	idle := time.Minute
	if limit > 0 && limit != rate.Inf {
		if d := time.Duration(float64(burst) / float64(limit) * float64(time.Second)); d > idle {
			idle = d
		}
	}
	return &Limiter{limit: limit, burst: burst, max: maxEntries, idle: idle, buckets: map[netip.Prefix]*bucket{}}
}

// Allow takes one token for addr at now, or reports how long the client
// should wait before its next try (at least a second).
func (l *Limiter) Allow(addr netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if l.limit == rate.Inf {
		return true, 0
	}
	key := Key(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if !found {
		l.makeRoomLocked(now)
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if !res.OK() {
		return false, l.idle
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, max(d, time.Second)
	}
	return true, 0
}

// Len returns the number of clients tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// makeRoomLocked drops idle buckets (they are full again, so nothing is
// forgotten) once per idle period, and when the table is still full drops
// the least recently seen eighth. An attacker spraying addresses thus
// evicts buckets, never grows the table; the bucket it gets back for an
// evicted address is one a new address would have got anyway.
func (l *Limiter) makeRoomLocked(now time.Time) {
	if now.Sub(l.lastSweep) >= l.idle || len(l.buckets) >= l.max {
		l.lastSweep = now
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.idle {
				delete(l.buckets, k)
			}
		}
	}
	if len(l.buckets) < l.max {
		return
	}
	cut := oldest(l.buckets, max(l.max/8, 1))
	for k, b := range l.buckets {
		if !b.seen.After(cut) {
			delete(l.buckets, k)
		}
	}
}

// oldest returns the n-th earliest last-seen time of the buckets: the
// buckets seen at or before it are the n least recently seen (ties may
// add a few).
func oldest(buckets map[netip.Prefix]*bucket, n int) time.Time {
	// A bounded max-heap of the n oldest times seen so far.
	h := make([]time.Time, 0, n)
	for _, b := range buckets {
		t := b.seen
		if len(h) < n {
			h = append(h, t)
			up(h, len(h)-1)
			continue
		}
		if t.Before(h[0]) {
			h[0] = t
			down(h, 0)
		}
	}
	if len(h) == 0 {
		return time.Time{}
	}
	return h[0]
}

func up(h []time.Time, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[p].Before(h[i]) {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func down(h []time.Time, i int) {
	for {
		l, r, big := 2*i+1, 2*i+2, i
		if l < len(h) && h[big].Before(h[l]) {
			big = l
		}
		if r < len(h) && h[big].Before(h[r]) {
			big = r
		}
		if big == i {
			return
		}
		h[big], h[i] = h[i], h[big]
		i = big
	}
}

// RetryAfterSeconds renders a wait for the Retry-After header: whole
// seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
