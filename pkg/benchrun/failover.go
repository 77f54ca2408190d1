package benchrun

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// failoverKillAfter is when, from the start of its measurement window, the
// failover scenario kills a connector.
const failoverKillAfter = time.Second

// event is one request of the failover timeline.
type event struct {
	start, end time.Time
	ok         bool
}

// timeline records the outcome of every request of a failover row.
type timeline struct {
	mu     sync.Mutex
	events []event
	killed time.Time // zero until the kill
}

func (t *timeline) add(e event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
}

func (t *timeline) markKill(at time.Time) {
	t.mu.Lock()
	t.killed = at
	t.mu.Unlock()
}

// minStall is the shortest latency the failover scenario counts as a
// stall, whatever the latencies before the kill.
const minStall = 100 * time.Millisecond

// figures returns the failed requests that ended at or after the kill, the
// stalled ones, and the recovery time. A request is bad if it failed, or
// stalled: took longer than ten times the 99th percentile of the requests
// that ended before the kill, and at least 100 ms. The recovery time runs
// from the kill to the end of the last bad request that ended at or after
// it: 0 when there was none; -1 when no successful request started after
// it (the load never came back), or there was no kill.
func (t *timeline) figures() (failed, stalled int64, recovery time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.killed.IsZero() {
		return 0, 0, -1
	}
	var pre []time.Duration
	for _, e := range t.events {
		if e.ok && e.end.Before(t.killed) {
			pre = append(pre, e.end.Sub(e.start))
		}
	}
	stall := minStall
	if len(pre) > 0 {
		slices.Sort(pre)
		stall = max(stall, 10*pre[len(pre)*99/100])
	}
	var lastBad time.Time
	for _, e := range t.events {
		if e.end.Before(t.killed) {
			continue
		}
		switch {
		case !e.ok:
			failed++
		case e.end.Sub(e.start) > stall:
			stalled++
		default:
			continue
		}
		if e.end.After(lastBad) {
			lastBad = e.end
		}
	}
	if lastBad.IsZero() {
		return failed, stalled, 0
	}
	for _, e := range t.events {
		if e.ok && !e.start.Before(lastBad) {
			return failed, stalled, lastBad.Sub(t.killed)
		}
	}
	return failed, stalled, -1
}

// openFailover starts a separate system with two connectors, runs a steady
// closed-loop load of GET /hello through the tunnel, and kills one
// connector one second into the measurement window.
func openFailover(ctx context.Context, sys System, p Params) (*Row, error) {
	fs, err := sys.Failover(ctx)
	if err != nil {
		return nil, err
	}
	c := noRedirect(&http.Client{Transport: http1(fs.TunnelTransport(), p.Concurrency)})
	get := GetOp(c, fs.TunnelURL("/hello"), -1, nil)
	tl := &timeline{}
	var measuring atomic.Bool
	op := func(ctx context.Context, read *atomic.Int64) error {
		t0 := time.Now()
		err := get(ctx, read)
		if measuring.Load() && ctx.Err() == nil {
			tl.add(event{start: t0, end: time.Now(), ok: err == nil})
		}
		return err
	}
	var timer *time.Timer
	var killed sync.WaitGroup
	var once sync.Once
	return &Row{
		Op: op,
		OnWindow: func(start, _ time.Time) {
			measuring.Store(true)
			killed.Add(1)
			timer = time.AfterFunc(time.Until(start.Add(failoverKillAfter)), func() {
				defer killed.Done()
				tl.markKill(time.Now())
				fs.Kill()
			})
		},
		Finish: func(r *Result) {
			failed, stalled, rec := tl.figures()
			r.Failed, r.Stalled = ptr(failed), ptr(stalled)
			r.RecoveryMS = ptr(-1.0)
			if rec >= 0 {
				r.RecoveryMS = ptr(round(float64(rec.Microseconds())/1000, 3))
			}
		},
		Close: func() {
			once.Do(func() {
				if timer != nil && timer.Stop() {
					killed.Done()
				}
				killed.Wait()
				c.CloseIdleConnections()
				_ = fs.Close()
			})
		},
	}, nil
}

// noRedirect makes c return redirects as responses (a non-2xx status, so
// an error) instead of following them.
func noRedirect(c *http.Client) *http.Client {
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}
