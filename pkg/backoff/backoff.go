// Package backoff is the one retry delay of Postern's loops that redial or
// refetch (a connector attaching to a mesh node or renewing its
// credential, the stream carrier redialling, a mesh node fetching the
// sign-in keys): exponential between a floor and a ceiling, and jittered,
// so that many clients cut off by one event do not come back in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a jittered exponential delay. Each [Backoff.Wait] waits a
// random time in [d/2, d] for the current delay d, then doubles d up to
// Max; [Backoff.Reset] brings d back to Min after a success. It is not
// safe for concurrent use: each loop owns its own.
type Backoff struct {
	min, max, cur time.Duration
}

// New returns a Backoff from lo to hi (hi below lo means lo).
func New(lo, hi time.Duration) *Backoff {
	return &Backoff{min: lo, max: max(lo, hi), cur: lo}
}

// Delay returns the current delay, before jitter: what the next Wait
// waits at most (for a log line's retry_in_ms).
func (b *Backoff) Delay() time.Duration { return b.cur }

// Wait waits the jittered current delay, or until ctx ends (false), and
// doubles the delay up to the ceiling.
func (b *Backoff) Wait(ctx context.Context) bool {
	if !Sleep(ctx, Jitter(b.cur)) {
		return false
	}
	b.cur = min(b.cur*2, b.max)
	return true
}

// Cap lowers the current delay to at most d (a node that was just lost is
// likely restarting: try it again soon).
func (b *Backoff) Cap(d time.Duration) { b.cur = min(b.cur, d) }

// Reset brings the delay back to the floor.
func (b *Backoff) Reset() { b.cur = b.min }

// Jitter returns a random duration in [d/2, d].
func Jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }

// Sleep waits d, or until ctx ends (false).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
