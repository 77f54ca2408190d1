package enroll

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiterEntries bounds the per-client table; past it the table is
// cleared, so an address-spraying client costs memory only up to here.
const maxLimiterEntries = 1 << 16

// ipLimiter is a token bucket per client address (IPv4 /32, IPv6 /64). It
// starts no goroutine; idle buckets are swept inline.
type ipLimiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration // a bucket idle this long is full again and can go

	mu        sync.Mutex // guards the following
	buckets   map[netip.Prefix]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newIPLimiter(limit rate.Limit, burst int) *ipLimiter {
	idle := time.Minute
	if limit > 0 && limit != rate.Inf {
		if d := time.Duration(float64(burst) / float64(limit) * float64(time.Second)); d > idle {
			idle = d
		}
	}
	return &ipLimiter{limit: limit, burst: burst, idle: idle, buckets: map[netip.Prefix]*bucket{}}
}

// allow takes one token for addr at now, or reports how long to wait.
func (l *ipLimiter) allow(addr netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if l.limit == rate.Inf {
		return true, 0
	}
	key := clientKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	b, found := l.buckets[key]
	if !found {
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
		return false, d
	}
	return true, 0
}

func (l *ipLimiter) sweepLocked(now time.Time) {
	if len(l.buckets) >= maxLimiterEntries {
		clear(l.buckets)
	}
	if now.Sub(l.lastSweep) < l.idle {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.seen) > l.idle {
			delete(l.buckets, k)
		}
	}
}

// clientKey groups addresses that one client plausibly controls.
func clientKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}
