package connector

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/postern/postern/pkg/enroll"
)

// Measurement bounds.
const (
	measureTimeout  = 3 * time.Second // per node: warm-up and all pings
	measureParallel = 8               // nodes measured at once
)

// measureRTTs times GET enroll.PingPath on every URL through hc: one
// warm-up request that opens the connection, then count pings; a node's
// RTT is the fastest. A node that does not answer costs unreachable.
func measureRTTs(ctx context.Context, hc *http.Client, urls []string, count int) map[string]time.Duration {
	out := make(map[string]time.Duration, len(urls))
	var mu sync.Mutex
	sem := make(chan struct{}, measureParallel)
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			d := measureOne(ctx, &enroll.Client{BaseURL: u, HTTPClient: hc}, count)
			<-sem
			mu.Lock()
			out[u] = d
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func measureOne(ctx context.Context, cl *enroll.Client, count int) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, measureTimeout)
	defer cancel()
	if cl.Ping(ctx) != nil {
		return unreachable
	}
	best := unreachable
	for range count {
		start := time.Now()
		if err := cl.Ping(ctx); err != nil {
			continue
		}
		best = min(best, time.Since(start))
	}
	return best
}

// rttMillis renders an RTT for logs and status: -1 when unreachable.
func rttMillis(d time.Duration) float64 {
	if d == unreachable {
		return -1
	}
	return float64(d.Microseconds()) / 1000
}
